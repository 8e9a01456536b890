"""GPU Gather (computed or constant indices), GatherElements, ArgMax/ArgMin and TopK on typed
values (`TypedOp`, index.cl). Axes come normalized non-negative (`mace.ops.index`); a negative
index counts from the end, and one out of range is an InputError after the run, as on the CPU
runtime (the kernel records it in a small flag buffer and clamps the read). GatherND and the
Scatter ops have no GPU kernel (CPU runtime)."""
from __future__ import annotations

import numpy as np
import pyopencl as cl

from mace.errors import InputError
from mace.runtime.opencl.ops.base import TypedOp, gpu_op, i32
from mace.runtime.opencl.ops.movement import contiguous_strides, numel, pad_dims


def _view(shape, axis: int) -> tuple[int, int, int]:
    """(outer, n, inner) of `shape` around `axis`."""
    return numel(shape[:axis]), int(shape[axis]), numel(shape[axis + 1:])


class CheckedIndices(TypedOp):
    """An op whose kernel records an out-of-range index (index.cl's `bad`): `run_check` raises
    it as the CPU runtime's InputError, after the run, and clears the record."""

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.bad = cl.Buffer(rt.ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=np.zeros(2, np.int64))

    def run_check(self, queue) -> None:
        got = np.empty(2, np.int64)
        cl.enqueue_copy(queue, got, self.bad, is_blocking=True)
        if got[1]:
            cl.enqueue_copy(queue, self.bad, np.zeros(2, np.int64), is_blocking=True)
            size = int(self.in_shapes[0][int(self.node.attrs.get("axis", 0))])
            raise InputError(f"node {self.node.name} ({self.node.op_type}): index {int(got[0])} is out of range for "
                             f"a dimension of size {size}: pass indices in [-{size}, {size})")


@gpu_op
class Gather(CheckedIndices):
    op_types = ("Gather",)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.outer, self.n, self.inner = _view(in_shapes[0], int(node.attrs.get("axis", 0)))
        self.n_idx = numel(in_shapes[1])
        self.kern, self.key = self.typed_kernel("index", "gather", A=self.in_types[0], B=self.in_types[1],
                                                Y=self.out_types[0])

    def bind(self, inputs, outputs):
        if numel(self.out_shapes[0]) == 0:
            return []
        a, idx = self.with_consts(inputs)[:2]
        self.kern.set_args(a, idx, outputs[0], self.bad, i32(self.n), i32(self.inner), i32(self.n_idx))
        return [self.launch(self.kern, self.key, (self.inner, self.n_idx, self.outer))]


@gpu_op
class GatherElements(CheckedIndices):
    op_types = ("GatherElements",)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        return len(in_shapes[1]) <= 6

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        axis = int(node.attrs.get("axis", 0))
        rank = len(in_shapes[1])
        self.n = int(in_shapes[0][axis])
        self.dims, (self.strides,) = pad_dims(list(in_shapes[1]), contiguous_strides(in_shapes[0]))
        self.axis = axis + 6 - rank
        self.kern, self.key = self.typed_kernel("index", "gather_elements", A=self.in_types[0],
                                                B=self.in_types[1], Y=self.out_types[0])

    def bind(self, inputs, outputs):
        if numel(self.out_shapes[0]) == 0:
            return []
        a, idx = self.with_consts(inputs)[:2]
        self.kern.set_args(a, idx, outputs[0], self.bad, i32(self.axis), i32(self.n), *map(i32, self.dims[1:]),
                           *map(i32, self.strides))
        return [self.launch(self.kern, self.key, (self.dims[-1], numel(self.dims[:-1])))]


@gpu_op
class ArgExtreme(TypedOp):
    op_types = ("ArgMax", "ArgMin")

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.outer, self.n, self.inner = _view(in_shapes[0], int(node.attrs.get("axis", 0)))
        self.kern, self.key = self.typed_kernel("index", "arg_extreme", A=self.in_types[0], Z=self.out_types[0])

    def bind(self, inputs, outputs):
        if numel(self.out_shapes[0]) == 0 or self.n == 0:
            return []
        self.kern.set_args(self.with_consts(inputs)[0], outputs[0], i32(self.n), i32(self.inner),
                           i32(self.node.op_type == "ArgMin"), i32(self.node.attrs.get("select_last_index", 0)))
        return [self.launch(self.kern, self.key, (self.inner, self.outer))]


@gpu_op
class TopK(TypedOp):
    op_types = ("TopK",)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.outer, self.n, self.inner = _view(in_shapes[0], int(node.attrs["axis"]))
        self.k = int(node.attrs["k"])
        self.kern, self.key = self.typed_kernel("index", "top_k", A=self.in_types[0], Y=self.out_types[0],
                                                Z=self.out_types[1])

    def bind(self, inputs, outputs):
        if numel(self.out_shapes[0]) == 0:
            return []
        self.kern.set_args(self.with_consts(inputs)[0], outputs[0], outputs[1], i32(self.n), i32(self.inner),
                           i32(self.k), i32(self.node.attrs.get("largest", 1)))
        return [self.launch(self.kern, self.key, (self.inner, self.n, self.outer))]
