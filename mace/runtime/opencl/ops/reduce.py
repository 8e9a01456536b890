"""GPU ReduceMean: neighbouring dims that are all kept or all reduced are merged, giving up to 3
kept and 3 reduced groups (any rank-6 input); few outputs over long reductions use one work group
per output, otherwise one work item per output."""
from __future__ import annotations

from mace.runtime.opencl.ops.base import f32, gpu_op, i32
from mace.runtime.opencl.ops.movement import FamilyOp, contiguous_strides, numel

WG = 64            # RD_WG in reduce.cl
WG_MAX_OUTPUTS = 256
WG_MIN_REDUCE = 256


def reduce_view(shape, axes) -> tuple[list, list, list, list]:
    """(kept dims, kept strides, reduced dims, reduced strides), merged; ValueError beyond 3 each."""
    axes = set(int(a) for a in axes)
    groups: list[list] = []  # [reduced?, dim, stride]
    for d, (n, s) in enumerate(zip(shape, contiguous_strides(shape))):
        if n == 1:
            continue
        red = d in axes
        if groups and groups[-1][0] == red:
            groups[-1][1] *= n
            groups[-1][2] = s
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
        self.wg = self.n_out <= WG_MAX_OUTPUTS and n_red >= WG_MIN_REDUCE
        self.empty = numel(in_shapes[0]) == 0
        self.kern, self.key = self.kernel("reduce", "reduce_mean_wg" if self.wg else "reduce_mean", [])

    def bind(self, inputs, outputs):
        if self.empty:
            return []
        self.kern.set_args(self.with_consts(inputs)[0], outputs[0], *map(i32, self.kd[1:]), *map(i32, self.ks),
                           *map(i32, self.rd), *map(i32, self.rs), f32(self.scale))
        if self.wg:
            return [self.launch(self.kern, self.key, (WG * self.n_out,), (WG,))]
        return [self.launch(self.kern, self.key, (self.n_out,))]
