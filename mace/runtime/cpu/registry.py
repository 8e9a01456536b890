"""Registry of CPU kernels: ONNX op type -> function(node, inputs) -> list of outputs.

A kernel module in `mace/runtime/cpu/ops/` registers itself with `@cpu_op("Relu", ...)`;
`kernels()` imports every module of that package once, so adding an op is adding a file.

A kernel computes in float32 unless it declares more element types (`types=`, names from
`mace.ops.dtypes`): `@cpu_op("Add", types=INTEGER)` registers a kernel that `kernel_for` picks
when an input of the node is not float32. What an op computes in (`op_types`) is the union of
its kernels' declarations, the set the converter checks every run-time value of the node against.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

import numpy as np

from mace.ir.graph import Node

CpuKernel = Callable[[Node, list], list]
_KERNELS: dict[str, CpuKernel] = {}
_TYPED: dict[str, CpuKernel] = {}
_TYPES: dict[str, frozenset[str]] = {}
_loaded = False


def cpu_op(*op_types: str, types=None):
    """Register a kernel; with `types`, the kernel for inputs other than float32 (it may also
    take float32 where an op registers no float32 kernel of its own)."""
    def deco(fn: CpuKernel) -> CpuKernel:
        for t in op_types:
            if types is None:
                _KERNELS[t] = fn
            else:
                _TYPED[t] = fn
                _KERNELS.setdefault(t, fn)
                _TYPES[t] = frozenset(types) | _TYPES.get(t, frozenset())
        return fn
    return deco


def _load() -> None:
    global _loaded
    if not _loaded:
        from mace.runtime.cpu import ops
        for mod in pkgutil.iter_modules(ops.__path__):
            importlib.import_module(f"{ops.__name__}.{mod.name}")
        _loaded = True


def kernels() -> dict[str, CpuKernel]:
    _load()
    return _KERNELS


def supported_ops() -> set[str]:
    return set(kernels())


def op_types(op_type: str) -> frozenset[str]:
    """The element types the op's kernels compute in (float32 for every op)."""
    _load()
    return _TYPES.get(op_type, frozenset()) | {"float32"}


def kernel_for(op_type: str, input_dtypes) -> CpuKernel:
    """The typed kernel when an input is not float32 (and the op has one), else the op's kernel."""
    _load()
    typed = _TYPED.get(op_type)
    if typed is not None and any(d is not None and np.dtype(d) != np.float32 for d in input_dtypes):
        return typed
    return _KERNELS[op_type]


def run_node(node: Node, inputs: list) -> list[np.ndarray]:
    return kernel_for(node.op_type, [None if x is None else np.asarray(x).dtype for x in inputs])(node, inputs)
