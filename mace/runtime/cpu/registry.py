"""Registry of CPU kernels: ONNX op type -> function(node, inputs) -> list of outputs.

A kernel module in `mace/runtime/cpu/ops/` registers itself with `@cpu_op("Relu", ...)`;
`kernels()` imports every module of that package once, so adding an op is adding a file.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

import numpy as np

from mace.ir.graph import Node

CpuKernel = Callable[[Node, list], list]
_KERNELS: dict[str, CpuKernel] = {}
_loaded = False


def cpu_op(*op_types: str):
    def deco(fn: CpuKernel) -> CpuKernel:
        for t in op_types:
            _KERNELS[t] = fn
        return fn
    return deco


def kernels() -> dict[str, CpuKernel]:
    global _loaded
    if not _loaded:
        from mace.runtime.cpu import ops
        for mod in pkgutil.iter_modules(ops.__path__):
            importlib.import_module(f"{ops.__name__}.{mod.name}")
        _loaded = True
    return _KERNELS


def supported_ops() -> set[str]:
    return set(kernels())


def run_node(node: Node, inputs: list) -> list[np.ndarray]:
    return kernels()[node.op_type](node, inputs)
