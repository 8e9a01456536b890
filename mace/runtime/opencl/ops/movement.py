"""GPU data movement: Transpose, Slice, Split, Concat and Expand through one strided gather copy kernel
(`movement.cl:strided_copy`, one launch per input / output; none for a Concat input written in
place by its producer, see `Concat.slice_offsets`), and Pad (constant / reflect / edge /
wrap) with its own kernel. Shapes and strides are kernel arguments, so one build serves all.

Also the small helpers the other op modules of this family share (strides, dim coalescing,
padding to the 6 dims the kernels take, constant inputs).
"""
from __future__ import annotations

import numpy as np

from mace.ops.movement import PAD_MODES
from mace.runtime.opencl.ops.base import GpuOp, Launch, gpu_op, f32, i32

MAX_DIMS = 6
PAD_MODE_IDS = {m: i for i, m in enumerate(PAD_MODES)}  # movement.cl PAD_*


# -- helpers shared by this family's op modules ------------------------------------------------
def contiguous_strides(shape) -> list[int]:
    strides, acc = [], 1
    for d in reversed(list(shape)):
        strides.append(acc)
        acc *= int(d)
    return strides[::-1]


def numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def coalesce(dims, *strides) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims and merge neighbours that are contiguous in every stride list."""
    d_out: list[int] = []
    s_out: list[list[int]] = [[] for _ in strides]
    for k, n in enumerate(dims):
        n = int(n)
        if n == 1:
            continue
        if d_out and all(s[-1] == int(st[k]) * n for s, st in zip(s_out, strides)):
            d_out[-1] *= n
            for s, st in zip(s_out, strides):
                s[-1] = int(st[k])
        else:
            d_out.append(n)
            for s, st in zip(s_out, strides):
                s.append(int(st[k]))
    return d_out, s_out


def pad_dims(dims, *strides, n: int = MAX_DIMS, fill_stride: int = 0):
    """Front-pad a view to `n` dims (size 1, stride `fill_stride`); ValueError if it has more."""
    if len(dims) > n:
        raise ValueError(f"more than {n} dims after coalescing: {dims}")
    k = n - len(dims)
    return [1] * k + list(dims), [[fill_stride] * k + list(s) for s in strides]


def gws_of(dims6) -> tuple[int, int]:
    """(innermost, product of the others): the launch shape of the 6-dim kernels."""
    return int(dims6[-1]), int(np.prod(dims6[:-1], dtype=np.int64))


class FamilyOp(GpuOp):
    """Base of this family's GPU ops: constant inputs uploaded once, launches named uniformly."""

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.const_buffers = [rt.upload(c) if c is not None else None for c in consts]

    def with_consts(self, inputs):
        return [b if b is not None else c for b, c in zip(inputs, self.const_buffers)]

    def launch(self, kernel, key, gws, lws=None, **extra) -> Launch:
        return Launch(kernel, tuple(int(g) for g in gws), lws, name=f"{self.node.name}:{self.node.op_type}",
                      program_key=key, **extra)


# -- the strided copy --------------------------------------------------------------------------
class CopyPlan:
    """One gather copy dst[view] = src[view], prepared at init, its arguments set at bind."""

    def __init__(self, op: FamilyOp, view, src_strides, dst_strides, src_off=0, dst_off=0):
        dims, (ss, ds) = coalesce(view, src_strides, dst_strides)
        self.op, self.src_off, self.dst_off = op, int(src_off), int(dst_off)
        self.total = numel(view)
        self.vec4 = len(dims) <= 1 and (not dims or (ss[0] == 1 and ds[0] == 1)) and self.total % 4 == 0
        if self.total == 0:
            self.kernel = None
        elif self.vec4:
            self.kernel, self.key = op.kernel("movement", "copy4", [])
        else:
            self.dims, (self.ss, self.ds) = pad_dims(dims, ss, ds)
            self.kernel, self.key = op.kernel("movement", "strided_copy", [])

    @staticmethod
    def fits(view, src_strides, dst_strides) -> bool:
        return len(coalesce(view, src_strides, dst_strides)[0]) <= MAX_DIMS

    def bind(self, src, dst) -> list[Launch]:
        if self.kernel is None:
            return []
        if self.vec4:
            self.kernel.set_args(src, dst, i32(self.src_off), i32(self.dst_off))
            return [self.op.launch(self.kernel, self.key, (self.total // 4,))]
        self.kernel.set_args(src, dst, i32(self.src_off), i32(self.dst_off), *map(i32, self.dims[1:]),
                             *map(i32, self.ss), *map(i32, self.ds))
        return [self.op.launch(self.kernel, self.key, gws_of(self.dims))]


def _transpose_view(in_shape, perm):
    st = contiguous_strides(in_shape)
    view = [in_shape[p] for p in perm]
    return view, [st[p] for p in perm], contiguous_strides(view)


def _slice_view(in_shape, starts, steps, out_shape):
    st = contiguous_strides(in_shape)
    return list(out_shape), [s * k for s, k in zip(st, steps)], contiguous_strides(out_shape), \
        sum(s * b for s, b in zip(st, starts))


@gpu_op
class Transpose(FamilyOp):
    op_types = ("Transpose",)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        return CopyPlan.fits(*_transpose_view(in_shapes[0], node.attrs["perm"]))

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.plan = CopyPlan(self, *_transpose_view(in_shapes[0], node.attrs["perm"]))

    def bind(self, inputs, outputs):
        return self.plan.bind(self.with_consts(inputs)[0], outputs[0])


@gpu_op
class Slice(FamilyOp):
    op_types = ("Slice",)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        v = _slice_view(in_shapes[0], node.attrs["starts"], node.attrs["steps"], out_shapes[0])
        return CopyPlan.fits(*v[:3])

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        view, ss, ds, off = _slice_view(in_shapes[0], node.attrs["starts"], node.attrs["steps"], out_shapes[0])
        self.plan = CopyPlan(self, view, ss, ds, src_off=off)

    def bind(self, inputs, outputs):
        return self.plan.bind(self.with_consts(inputs)[0], outputs[0])


def _expand_view(in_shape, out_shape):
    """Expand as a copy: the output's view, the input's strides with 0 on broadcast dims."""
    in_shape = [1] * (len(out_shape) - len(in_shape)) + list(in_shape)
    st = contiguous_strides(in_shape)
    return list(out_shape), [0 if d == 1 else s for d, s in zip(in_shape, st)], contiguous_strides(out_shape)


@gpu_op
class Expand(FamilyOp):
    op_types = ("Expand",)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        return CopyPlan.fits(*_expand_view(in_shapes[0], out_shapes[0]))

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.plan = CopyPlan(self, *_expand_view(in_shapes[0], out_shapes[0]))

    def bind(self, inputs, outputs):
        return self.plan.bind(self.with_consts(inputs)[0], outputs[0])


@gpu_op
class Split(FamilyOp):
    op_types = ("Split",)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        axis = int(node.attrs["axis"])
        st = contiguous_strides(in_shapes[0])
        self.plans, off = [], 0
        for shape in out_shapes:
            self.plans.append(CopyPlan(self, shape, st, contiguous_strides(shape), src_off=off * st[axis]))
            off += shape[axis]

    def bind(self, inputs, outputs):
        src = self.with_consts(inputs)[0]
        return [ln for plan, dst in zip(self.plans, outputs) for ln in plan.bind(src, dst)]


@gpu_op
class Concat(FamilyOp):
    op_types = ("Concat",)
    #: inputs whose producers write straight into their slice of the output (set by the
    #: executor before bind, see `slice_offsets`): nothing to copy for them
    in_place: frozenset[int] = frozenset()

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        axis = int(node.attrs["axis"])
        st = contiguous_strides(out_shapes[0])
        self.plans, off = [], 0
        for shape in in_shapes:
            self.plans.append(CopyPlan(self, shape, contiguous_strides(shape), st, dst_off=off * st[axis]))
            off += shape[axis]

    def slice_offsets(self) -> list[int] | None:
        """Where each input starts in the output (elements) when every input is one contiguous
        range of it (the dims before the axis are all 1, e.g. a batch-1 NCHW channel concat),
        so a producer can write there directly; None otherwise."""
        out = self.out_shapes[0]
        if numel(out[:int(self.node.attrs["axis"]) % len(out)]) != 1:
            return None
        starts = np.cumsum([0] + [numel(s) for s in self.in_shapes[:-1]])
        return [int(x) for x in starts]

    def bind(self, inputs, outputs):
        return [ln for k, (plan, src) in enumerate(zip(self.plans, self.with_consts(inputs)))
                if k not in self.in_place for ln in plan.bind(src, outputs[0])]


@gpu_op
class Pad(FamilyOp):
    op_types = ("Pad",)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        return len(in_shapes[0]) <= MAX_DIMS and node.attrs.get("mode", "constant") in PAD_MODES

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        in_shape, out_shape = list(in_shapes[0]), list(out_shapes[0])
        rank = len(in_shape)
        begins = [int(p) for p in node.attrs["pads"][:rank]]
        front = MAX_DIMS - rank
        self.dims = [1] * front + out_shape
        self.n = [1] * front + in_shape
        self.s = [0] * front + contiguous_strides(in_shape)
        self.p = [0] * front + begins
        self.mode = PAD_MODE_IDS[node.attrs.get("mode", "constant")]
        self.value = float(node.attrs.get("value", 0.0))
        self.empty = numel(out_shape) == 0
        self.kern, self.key = self.kernel("movement", "pad", [])

    def bind(self, inputs, outputs):
        if self.empty:
            return []
        self.kern.set_args(self.with_consts(inputs)[0], outputs[0], i32(self.mode), f32(self.value),
                           *map(i32, self.dims[1:]), *map(i32, self.n), *map(i32, self.s), *map(i32, self.p))
        return [self.launch(self.kern, self.key, gws_of(self.dims))]
