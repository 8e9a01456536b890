"""GPU CumSum and CumProd (`mace.ops.cumulative`'s semantics) on float32 and integer values: one
work item per line along the axis (sequential, as the CPU runtime sums)."""
from __future__ import annotations

from mace.ops.dtypes import NUMERIC
from mace.runtime.opencl.ops.base import TypedOp, gpu_op, i32
from mace.runtime.opencl.ops.movement import numel


@gpu_op
class Cumulative(TypedOp):
    op_types = ("CumSum", "CumProd")
    value_types = NUMERIC

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        shape, axis = in_shapes[0], int(node.attrs["axis"])
        self.outer, self.n, self.inner = numel(shape[:axis]), int(shape[axis]), numel(shape[axis + 1:])
        prod = ["-DPROD"] if node.op_type == "CumProd" else []
        self.kern, self.key = self.typed_kernel("cumulative", "cumulate", prod, A=self.in_types[0],
                                                Y=self.out_types[0])

    def bind(self, inputs, outputs):
        if numel(self.out_shapes[0]) == 0:
            return []
        a = self.node.attrs
        self.kern.set_args(self.with_consts(inputs)[0], outputs[0], i32(self.n), i32(self.inner),
                           i32(a.get("exclusive", 0)), i32(a.get("reverse", 0)))
        return [self.launch(self.kern, self.key, (self.inner, self.outer))]
