"""GPU reductions: the Reduce* family and LayerNormalization.

Reduce*: neighbouring dims that are all kept or all reduced are merged, giving up to 3 kept and 3
reduced groups (covers any rank-6 input). One work item per output element, or, for few outputs
over long reductions (a global mean), a split reduction: `parts` partial results per output into
a float scratch buffer, then a second launch combines them. The reduction is a define (one build
per op type). Empty `axes` (noop_with_empty_axes) reduces each element alone (|x| for ReduceL2, as
onnxruntime and ONNX's reference compute it).

LayerNormalization: one work item per normalized row (the trailing dims from `axis` are
contiguous), scale and bias applied on the way out.
"""
from __future__ import annotations

import numpy as np
import pyopencl as cl

from mace.runtime.opencl.ops.base import f32, gpu_op, i32
from mace.runtime.opencl.ops.movement import FamilyOp, contiguous_strides, numel

SPLIT_MAX_OUTPUTS = 64     # at most this many outputs ...
SPLIT_MIN_REDUCE = 4096    # ... each reducing at least this many elements: split reduction
MAX_PARTS = 256

#: op type -> reduce.cl RED id
REDUCTIONS = {"ReduceMean": 0, "ReduceSum": 1, "ReduceMax": 2, "ReduceMin": 3, "ReduceProd": 4, "ReduceL1": 5,
              "ReduceL2": 6, "ReduceSumSquare": 7, "ReduceLogSum": 8, "ReduceLogSumExp": 9}


def reduce_view(shape, axes) -> tuple[list, list, list, list]:
    """(kept dims, kept strides, reduced dims, reduced strides), merged and front-padded to 3;
    ValueError when more than 3 groups of either kind remain."""
    axes = set(int(a) for a in axes)
    groups: list[list] = []  # [reduced?, dim, stride]
    for d, (n, s) in enumerate(zip(shape, contiguous_strides(shape))):
        if n == 1:
            continue
        red = d in axes
        if groups and groups[-1][0] == red:
            groups[-1][1] *= int(n)
            groups[-1][2] = int(s)
        else:
            groups.append([red, int(n), int(s)])
    kept = [(n, s) for r, n, s in groups if not r]
    red = [(n, s) for r, n, s in groups if r]
    if len(kept) > 3 or len(red) > 3:
        raise ValueError("reduction view needs more than 3 kept or reduced groups")
    kept = [(1, 0)] * (3 - len(kept)) + kept
    red = [(1, 0)] * (3 - len(red)) + red
    return [n for n, _ in kept], [s for _, s in kept], [n for n, _ in red], [s for _, s in red]


@gpu_op
class Reduce(FamilyOp):
    op_types = tuple(REDUCTIONS)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        try:
            reduce_view(in_shapes[0], node.attrs.get("axes", []))
        except ValueError:
            return False
        return True

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        axes = node.attrs.get("axes", [])
        self.kd, self.ks, self.rd, self.rs = reduce_view(in_shapes[0], axes)
        self.n_out = numel(self.kd)
        n_red = numel(self.rd)
        self.scale = 1.0 / n_red if n_red else float("nan")
        self.empty = numel(out_shapes[0]) == 0
        self.parts = min(MAX_PARTS, n_red // 256) if self.n_out <= SPLIT_MAX_OUTPUTS \
            and n_red >= SPLIT_MIN_REDUCE and node.op_type != "ReduceLogSumExp" else 0
        opts = [f"-DRED={REDUCTIONS[node.op_type]}"]
        if self.parts:
            self.part_buf = cl.Buffer(rt.ctx, cl.mem_flags.READ_WRITE, size=4 * self.parts * self.n_out)
            self.kern, self.key = self.kernel("reduce", "reduce_partial", opts)
            self.kern2, self.key2 = self.kernel("reduce", "reduce_finish", opts)
        else:
            self.kern, self.key = self.kernel("reduce", "reduce", opts)

    def _view_args(self):
        return (*map(i32, self.kd[1:]), *map(i32, self.ks), *map(i32, self.rd), *map(i32, self.rs))

    def bind(self, inputs, outputs):
        if self.empty:
            return []
        x = self.with_consts(inputs)[0]
        if self.parts:
            self.kern.set_args(x, self.part_buf, *self._view_args(), i32(self.parts))
            self.kern2.set_args(self.part_buf, outputs[0], i32(self.parts), f32(self.scale))
            return [self.launch(self.kern, self.key, (self.parts, self.n_out)),
                    self.launch(self.kern2, self.key2, (self.n_out,))]
        self.kern.set_args(x, outputs[0], *self._view_args(), f32(self.scale))
        return [self.launch(self.kern, self.key, (self.n_out,))]


def _norm_param(value, norm_shape) -> np.ndarray | None:
    """A constant scale or bias as the n values of a row (None when it does not broadcast)."""
    try:
        return np.ascontiguousarray(np.broadcast_to(np.asarray(value, np.float32), norm_shape)).reshape(-1)
    except ValueError:
        return None


@gpu_op
class LayerNorm(FamilyOp):
    op_types = ("LayerNormalization",)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        shape = list(in_shapes[0])
        norm = shape[int(node.attrs.get("axis", -1)) % max(len(shape), 1):]
        # a scale / bias computed at run time must already have the row's shape
        return len(out_shapes) == 1 and all(list(s)[-len(norm):] == norm and numel(s) == numel(norm)
                                            for v, s in zip(node.inputs[1:3], in_shapes[1:3]) if v)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        shape = list(in_shapes[0])
        norm = shape[int(node.attrs.get("axis", -1)) % max(len(shape), 1):]
        consts = [c if c is None or k == 0 else _norm_param(c, norm) for k, c in enumerate(consts)]
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.n, self.rows = numel(norm), numel(shape[:len(shape) - len(norm)])
        self.has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
        opts = ["-DLAYER_NORM"] + (["-DHAS_BIAS"] if self.has_bias else [])
        self.kern, self.key = self.kernel("reduce", "layer_norm", opts)

    def bind(self, inputs, outputs):
        if self.rows * self.n == 0:
            return []
        ins = self.with_consts(inputs)
        params = ins[1:3] if self.has_bias else ins[1:2]
        self.kern.set_args(ins[0], *params, outputs[0], i32(self.n), f32(float(self.node.attrs.get("epsilon", 1e-5))))
        return [self.launch(self.kern, self.key, (self.rows,))]
