"""GPU Trilu and EyeLike on typed values: one work item per output element (generate.cl)."""
from __future__ import annotations

from mace.runtime.opencl.ops.base import TypedOp, gpu_op, i32
from mace.runtime.opencl.ops.movement import numel


@gpu_op
class Trilu(TypedOp):
    op_types = ("Trilu",)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        shape = out_shapes[0]
        self.gws = (int(shape[-1]), int(shape[-2]), numel(shape[:-2]))
        self.kern, self.key = self.typed_kernel("generate", "trilu", A=self.in_types[0], Y=self.out_types[0])

    def bind(self, inputs, outputs):
        if numel(self.out_shapes[0]) == 0:
            return []
        a = self.node.attrs
        self.kern.set_args(self.with_consts(inputs)[0], outputs[0], i32(a.get("upper", 1)), i32(a.get("k", 0)))
        return [self.launch(self.kern, self.key, self.gws)]


@gpu_op
class EyeLike(TypedOp):
    """The input gives only the shape: no buffer of it is read."""
    op_types = ("EyeLike",)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.kern, self.key = self.typed_kernel("generate", "eye_like", Y=self.out_types[0])

    def bind(self, inputs, outputs):
        if numel(self.out_shapes[0]) == 0:
            return []
        self.kern.set_args(outputs[0], i32(self.node.attrs.get("k", 0)))
        rows, cols = self.out_shapes[0]
        return [self.launch(self.kern, self.key, (cols, rows))]
