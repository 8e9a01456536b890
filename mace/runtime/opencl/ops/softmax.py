"""GPU Softmax and LogSoftmax (softmax.cl, -DLOG_SOFTMAX): the input is viewed as [outer, n, inner] around `axis` (with `legacy_flatten`,
opset < 13: [prod(dims before axis), prod(dims from axis)]); one work item per (outer, inner)
pair runs max, sum and normalization over the n elements of its row (`mace.ops.softmax`)."""
from __future__ import annotations

from mace.ops.softmax import softmax_view
from mace.runtime.opencl.ops.base import gpu_op, i32
from mace.runtime.opencl.ops.movement import FamilyOp


@gpu_op
class Softmax(FamilyOp):
    op_types = ("Softmax", "LogSoftmax")

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        shape = in_shapes[0]
        axis = int(node.attrs.get("axis", -1)) % max(len(shape), 1)
        self.outer, self.n, self.inner = softmax_view(shape, axis, bool(node.attrs.get("legacy_flatten", 0)))
        self.kern, self.key = self.kernel("softmax", "softmax",
                                           ["-DLOG_SOFTMAX"] if node.op_type == "LogSoftmax" else [])

    def bind(self, inputs, outputs):
        if self.outer * self.n * self.inner == 0:
            return []
        self.kern.set_args(self.with_consts(inputs)[0], outputs[0], i32(self.n), i32(self.inner))
        return [self.launch(self.kern, self.key, (self.outer * self.inner,))]
