"""The contract between the OpenCL executor and an op module.

An op module defines a `GpuOp` subclass per op family and registers it with `@gpu_op(...)`.
At engine init the executor constructs it once per node (compile programs, upload and re-lay
weights), then calls `bind()` once with the planned buffers; `bind` sets every kernel argument
and returns the `Launch`es the executor enqueues on every run, with no Python work per op beyond
the enqueue. Tensors are dense row-major (NCHW) buffers: float32 values in `rt.store_dtype`,
integer and bool values (for the ops whose class declares them in `value_types`) in their own
type, bool as one byte (0 or 1), as NumPy stores them.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyopencl as cl

from mace.ir.graph import Node
from mace.ops.dtypes import ANY, GPU_TYPES

_ACT_IDS = {"Relu": 1, "Clip": 2, "LeakyRelu": 3, "Sigmoid": 4, "Tanh": 5, "HardSigmoid": 6, "HardSwish": 7,
            "Gelu": 8, "GeluTanh": 9, "Silu": 10}


@dataclass
class Launch:
    """One kernel launch of one op: what the executor enqueues and the tuner tunes."""

    kernel: cl.Kernel
    gws: tuple[int, ...]
    lws: tuple[int, ...] | None = None
    name: str = ""
    program_key: str = ""
    flops: float = 0.0
    tune_key_extra: dict[str, Any] = field(default_factory=dict)


class GpuOp:
    """Base class; subclasses set `op_types` and implement `__init__` / `bind`."""

    op_types: ClassVar[tuple[str, ...]] = ()
    #: outputs share input 0's buffer (Reshape and friends): no kernel, no launch
    alias: ClassVar[bool] = False
    #: inputs the kernels bake in at init (weights): when one is computed at run time instead,
    #: the node runs on the CPU runtime (cpu+gpu) with an info line
    const_inputs: ClassVar[tuple[int, ...]] = ()
    #: the element types of the run-time values (inputs and outputs) this op's kernels compute
    #: in; an op type may have several classes (float Add, integer Add): the executor takes the
    #: first registered whose types cover the node's
    value_types: ClassVar[frozenset[str]] = GPU_TYPES
    #: what else, beyond the node's shapes and attributes, selects different code (the weights'
    #: element type): part of the tuning key
    tuning_attrs: dict = {}

    @classmethod
    def supports(cls, node: Node, in_shapes: list[tuple], out_shapes: list[tuple]) -> bool:
        """False sends the node to the CPU runtime (cpu+gpu) with an info line."""
        return True

    def __init__(self, rt, node: Node, in_shapes: list[tuple], out_shapes: list[tuple],
                 consts: list[np.ndarray | None]):
        self.rt, self.node = rt, node
        self.in_shapes, self.out_shapes, self.consts = in_shapes, out_shapes, consts

    def bind(self, inputs: list[cl.Buffer | None], outputs: list[cl.Buffer]) -> list[Launch]:
        raise NotImplementedError

    #: `run_check(queue)`, where an op defines it, runs after every run (the queue finished) and
    #: raises what the kernels recorded (an out-of-range index: InputError)
    run_check = None

    # tuning: an op module may offer alternative kernels (blocking, vector width, algorithm) --

    #: the variant in use; the first of `variants()` is the default
    variant: str = "default"

    def variants(self) -> list[str]:
        """Names of the kernel variants this op can run; the tuner times each one. Names that
        start with "gpu_" are written for GPUs and are timed on CPU devices only in exhaustive
        mode."""
        return [self.variant]

    def use_variant(self, name: str) -> None:
        """Switch to another variant (build its kernels); the executor then calls bind() again.
        Raises KernelBuildError when the device cannot build it."""
        if name not in self.variants():
            raise ValueError(f"{self.node.op_type} has no variant {name!r}")
        self.variant = name

    def first_working_variant(self, variants: list[str]) -> list[str]:
        """Use the first of `variants` whose kernels build on this device, warning (once per
        program) about each that does not, with the compiler's first lines; returns the
        variants left to offer (the failed ones dropped). Raises the last KernelBuildError when
        none builds: the executor then runs the node on the CPU runtime."""
        from mace.errors import KernelBuildError
        left, last = list(variants), None
        for name in variants:
            try:
                self.use_variant(name)
                return left
            except KernelBuildError as exc:
                left.remove(name)
                last = exc
                more = f"trying {left[0]}" if left else "no variant left"
                _warn(exc, f"{self.node.name} ({self.node.op_type}) variant {name}: {exc} "
                           f"[{'known, skipped untried' if exc.known else 'recorded'}]: {more}")
        raise last

    # helpers shared by op modules -------------------------------------------------------

    def activation_options(self) -> list[str]:
        """Build options of the fused activation (`activation` / `activation_params` attrs)."""
        act = self.node.attrs.get("activation")
        if not act:
            return []
        params = list(self.node.attrs.get("activation_params", []))
        opts = [f"-DACT={_ACT_IDS[act]}"]
        if act == "LeakyRelu":
            params = params or [0.01]
        if act == "HardSigmoid":
            params = params or [0.2, 0.5]
        for name, value in zip(("ACT_A", "ACT_B"), params):
            value = min(max(float(value), -3.4028234663852886e38), 3.4028234663852886e38)  # no "inff"
            opts.append(f"-D{name}={value!r}f")
        return opts

    def kernel(self, program: str, kernel_name: str, options: list[str]) -> tuple[cl.Kernel, str]:
        """Build (or fetch) `ops/<program>.cl` with options; returns the kernel and its program key.
        Raises KernelBuildError when the device cannot build it (the executor then tries the
        op's next variant, then the CPU runtime)."""
        return self.rt.builder.kernel(program, sorted(set(options + self.rt.dtype_options)), kernel_name)


class TypedOp(GpuOp):
    """Base of the ops on integer and bool values (and float ones beside them): `types` holds the
    element type of each input and output, constant inputs are uploaded once in their own type
    (float32 ones in the storage type), and typed.h's operands are built with `type_options`."""

    value_types: ClassVar[frozenset[str]] = ANY

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        # a float constant of another width (a folded float64 scalar) is computed in float32
        consts = [c.astype(np.float32) if c is not None and c.dtype.kind == "f" else c for c in consts]
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        g = rt.graph
        self.in_types = [str(c.dtype) if c is not None else g.dtypes.get(v, "float32") if v else None
                         for v, c in zip(node.inputs, consts)]
        self.out_types = [g.dtypes.get(v, "float32") for v in node.outputs if v]
        self.const_buffers = [None if c is None else rt.upload(c, dtype=None if c.dtype == np.float32 else c.dtype)
                              for c in consts]

    def with_consts(self, inputs):
        return [b if b is not None else c for b, c in zip(inputs, self.const_buffers)]

    def typed_kernel(self, program: str, kernel_name: str, options=(), **slots: str) -> tuple[cl.Kernel, str]:
        """`kernel` with typed.h's operand types (A="int64", Y="bool", ...)."""
        return self.kernel(program, kernel_name, list(options) + type_options(self.rt, **slots))

    def launch(self, kernel, key, gws, lws=None) -> Launch:
        return Launch(kernel, tuple(int(g) for g in gws), lws, name=f"{self.node.name}:{self.node.op_type}",
                      program_key=key)


def _warn(exc, message: str) -> None:
    """A build failure is a warning the first time per program key, debug after."""
    import logging
    level = logging.DEBUG if exc.known else logging.WARNING
    logging.getLogger("mace.opencl").log(level, "%s", message)


_REGISTRY: dict[str, type[GpuOp]] = {}
_CLASSES: dict[str, list[type[GpuOp]]] = {}
_loaded = False


def gpu_op(cls: type[GpuOp]) -> type[GpuOp]:
    for t in cls.op_types:
        _REGISTRY.setdefault(t, cls)
        _CLASSES.setdefault(t, []).append(cls)
    return cls


def registry() -> dict[str, type[GpuOp]]:
    """op type -> its first registered class (the float32 one where there are several)."""
    global _loaded
    if not _loaded:
        from mace.runtime.opencl import ops
        for mod in pkgutil.iter_modules(ops.__path__):
            if mod.name != "base":
                importlib.import_module(f"{ops.__name__}.{mod.name}")
        _loaded = True
    return _REGISTRY


def op_class(op_type: str, types: set[str]) -> type[GpuOp] | None:
    """The class that computes `op_type` on values of `types`, or None (no GPU kernel for them)."""
    registry()
    return next((c for c in _CLASSES.get(op_type, ()) if types <= c.value_types), None)


#: OpenCL C types of the element types (bool: one byte, 0 or 1)
CL_TYPES = {"float32": "float", "int8": "char", "uint8": "uchar", "int16": "short", "uint16": "ushort",
            "int32": "int", "uint32": "uint", "int64": "long", "uint64": "ulong", "bool": "uchar"}


def type_options(rt, **slots: str) -> list[str]:
    """Build options naming the element type of each typed operand (typed.h): `A="int64"` gives
    -DA_T=long; a float32 value under half storage also -DA_HALF (loads and stores convert)."""
    opts = []
    for slot, t in sorted(slots.items()):
        opts.append(f"-D{slot}_T={CL_TYPES[t]}")
        if t == "float32" and rt.store_dtype.itemsize == 2:
            opts.append(f"-D{slot}_HALF")
        if t == "bool":
            opts.append(f"-D{slot}_BOOL")
    return opts


def wide_width(caps) -> int:
    """The vector width of the streaming kernels (pool, batchnorm): the widest the device's
    probe accepted (16, 8 or 4), or 1 (scalar loops only)."""
    return caps.max_vector_width if caps.max_vector_width in (4, 8, 16) else 1


def i32(v) -> np.int32:
    return np.int32(v)


def f32(v) -> np.float32:
    return np.float32(v)
