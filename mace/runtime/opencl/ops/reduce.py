"""GPU ReduceMean: neighbouring dims that are all kept or all reduced are merged, giving up to 3
kept and 3 reduced groups (covers any rank-6 input). One work item per output element, or, for
few outputs over long reductions (a global mean), a split reduction: `parts` partial sums per
output into a float scratch buffer, then a second launch adds them up."""
from __future__ import annotations

import pyopencl as cl

from mace.runtime.opencl.ops.base import f32, gpu_op, i32
from mace.runtime.opencl.ops.movement import FamilyOp, contiguous_strides, numel

SPLIT_MAX_OUTPUTS = 64     # at most this many outputs ...
SPLIT_MIN_REDUCE = 4096    # ... each reducing at least this many elements: split reduction
MAX_PARTS = 256


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
        raise ValueError("ReduceMean view needs more than 3 kept or reduced groups")
    kept = [(1, 0)] * (3 - len(kept)) + kept
    red = [(1, 0)] * (3 - len(red)) + red
    return [n for n, _ in kept], [s for _, s in kept], [n for n, _ in red], [s for _, s in red]


@gpu_op
class ReduceMean(FamilyOp):
    op_types = ("ReduceMean",)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        try:
            reduce_view(in_shapes[0], node.attrs.get("axes", []))
        except ValueError:
            return False
        return True

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.kd, self.ks, self.rd, self.rs = reduce_view(in_shapes[0], node.attrs.get("axes", []))
        self.n_out = numel(self.kd)
        n_red = numel(self.rd)
        self.scale = 1.0 / n_red if n_red else float("nan")
        self.empty = numel(in_shapes[0]) == 0
        self.parts = min(MAX_PARTS, n_red // 256) if self.n_out <= SPLIT_MAX_OUTPUTS \
            and n_red >= SPLIT_MIN_REDUCE else 0
        if self.parts:
            self.part_buf = cl.Buffer(rt.ctx, cl.mem_flags.READ_WRITE, size=4 * self.parts * self.n_out)
            self.kern, self.key = self.kernel("reduce", "reduce_partial", [])
            self.kern2, self.key2 = self.kernel("reduce", "reduce_finish", [])
        else:
            self.kern, self.key = self.kernel("reduce", "reduce_mean", [])

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
