"""GPU Cast and CastLike between the run-time element types (`TypedOp`): one work item per
element, built per (source, target) type pair."""
from __future__ import annotations

from mace.runtime.opencl.ops.base import TypedOp, gpu_op
from mace.runtime.opencl.ops.movement import numel


@gpu_op
class Cast(TypedOp):
    op_types = ("Cast", "CastLike")

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.total = numel(out_shapes[0])
        src, dst = self.in_types[0], self.out_types[0]
        via = ["-DVIA_LONG"] if src == "float32" and dst not in ("float32", "bool") else []
        self.kern, self.key = self.typed_kernel("cast", "cast", via, A=src, Y=dst)

    def bind(self, inputs, outputs):
        if self.total == 0:
            return []
        self.kern.set_args(self.with_consts(inputs)[0], outputs[0])
        return [self.launch(self.kern, self.key, (self.total,))]
