"""GPU kernels of the element-wise ops on integer values (`mace.ops.integer`'s semantics:
truncating Div, Mod's sign rules, wrap-around): Add/Sub/Mul/Div/Mod, BitShift, Bitwise*,
two-input Max/Min with full broadcasting (`logic.broadcast6`), and Neg/Abs/Sign/BitwiseNot/Clip.
The op is a kernel argument: one build per element type. The float kernels of the same op types
are elementwise.py's (the executor picks by the values' types)."""
from __future__ import annotations

import numpy as np

from mace.ops import integer as rules
from mace.ops.dtypes import INTEGER
from mace.runtime.opencl.ops.base import TypedOp, gpu_op, i32
from mace.runtime.opencl.ops.logic import BroadcastOp
from mace.runtime.opencl.ops.movement import numel

BINARY = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "Mod": 4, "BitShift": 6, "BitwiseAnd": 8, "BitwiseOr": 9,
          "BitwiseXor": 10, "Max": 11, "Min": 12}
UNARY = {"Neg": 0, "Abs": 1, "Sign": 2, "BitwiseNot": 3, "Clip": 4}


def _signed(t: str) -> list[str]:
    return ["-DSIGNED"] if t.startswith("int") else []


@gpu_op
class IntBinary(BroadcastOp):
    op_types = tuple(BINARY)
    value_types = INTEGER

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        return len(in_shapes) == 2 and super().supports(node, in_shapes, out_shapes)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        t = self.out_types[0]
        self.kern, self.key = self.typed_kernel("integer", "binary", _signed(t), A=t, B=t, Y=t)

    def op_id(self) -> int:
        a, t = self.node.attrs, self.node.op_type
        if t == "Mod":
            return 5 if int(a.get("fmod", 0)) else 4
        if t == "BitShift":
            return 6 if a.get("direction", "LEFT") == "LEFT" else 7
        return BINARY[t]

    def bind(self, inputs, outputs):
        a, b = self.with_consts(inputs)[:2]
        return self.bind_bcast([i32(self.op_id())], [a, b, outputs[0]])


@gpu_op
class IntUnary(TypedOp):
    op_types = tuple(UNARY)
    value_types = INTEGER

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        t = self.out_types[0]
        self.total = numel(out_shapes[0])
        self.bounds = np.zeros(2, t)
        if node.op_type == "Clip":
            self.bounds = rules.clip_bounds(np.dtype(t), float(node.attrs.get("min", -np.inf)),
                                            float(node.attrs.get("max", np.inf)))
        self.kern, self.key = self.typed_kernel("integer", "unary", _signed(t), A=t, B=t, Y=t)  # one build per type

    def bind(self, inputs, outputs):
        if self.total == 0:
            return []
        lo, hi = (np.asarray(v).reshape(()) for v in self.bounds)
        self.kern.set_args(self.with_consts(inputs)[0], outputs[0], i32(UNARY[self.node.op_type]), lo[()], hi[()])
        return [self.launch(self.kern, self.key, (self.total,))]
