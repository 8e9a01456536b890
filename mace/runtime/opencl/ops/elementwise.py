"""GPU element-wise ops: standalone activations and broadcasting binary ops (+ PRelu).

Binary ops pick a kernel from the (static) broadcast pattern after merging adjacent dims that
broadcast alike: same shape, one scalar operand, one per-channel operand, or the general strided
kernel (up to 6 merged dims; more: CPU fallback). The op itself is a kernel argument, so
Add/Sub/Mul/Div/PRelu share one build per fused activation. Tuning variants: "vec4" (4 elements
per work item; the default where the sizes allow) and "scalar". No kernel depends on its local
size, so any local size the tuner picks is valid.
"""
from __future__ import annotations

import numpy as np

from mace.runtime.opencl.ops.base import _ACT_IDS, gpu_op, i32
from mace.runtime.opencl.ops.movement import (FamilyOp, coalesce, contiguous_strides, gws_of, numel,
                                              pad_dims)

OPS = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "PRelu": 4}
_FLT_MAX = float(np.finfo(np.float32).max)


def _literal(v: float) -> str:
    return f"{min(max(float(v), -_FLT_MAX), _FLT_MAX)!r}f"


def standalone_activation_options(node) -> list[str]:
    """Build options for an activation node run on its own (same defines as a fused one)."""
    a = node.attrs
    params = {"Clip": lambda: [a.get("min", -_FLT_MAX), a.get("max", _FLT_MAX)],
              "LeakyRelu": lambda: [a.get("alpha", 0.01)],
              "HardSigmoid": lambda: [a.get("alpha", 0.2), a.get("beta", 0.5)]}.get(node.op_type, list)()
    return [f"-DACT={_ACT_IDS[node.op_type]}"] + [f"-D{n}={_literal(v)}" for n, v in zip(("ACT_A", "ACT_B"), params)]


@gpu_op
class Activation(FamilyOp):
    op_types = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish")

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.total = numel(out_shapes[0])
        self._ok = self.first_working_variant(self.variants())

    def variants(self) -> list[str]:
        both = ["vec4", "scalar"] if self.total % 4 == 0 else ["scalar"]
        return [v for v in both if v in getattr(self, "_ok", both)]

    def use_variant(self, name: str) -> None:
        super().use_variant(name)
        self._build()

    def _build(self):
        self.vec4 = self.variant == "vec4"
        self.kern, self.key = self.kernel("elementwise", "unary4" if self.vec4 else "unary",
                                          standalone_activation_options(self.node))

    def bind(self, inputs, outputs):
        if self.total == 0:
            return []
        self.kern.set_args(self.with_consts(inputs)[0], outputs[0])
        return [self.launch(self.kern, self.key, (self.total // 4 if self.vec4 else self.total,))]


#: float unary ops with a GPU kernel (elementwise.cl's unary_math): op type -> MATH id
MATH = {"Abs": 1, "Neg": 2, "Exp": 3, "Log": 4, "Sqrt": 5, "Reciprocal": 6, "Floor": 7, "Ceil": 8, "Sin": 9,
        "Cos": 10, "Erf": 11, "Softsign": 12, "Softplus": 13, "Gelu": 14}


@gpu_op
class UnaryMath(FamilyOp):
    """One work item per element; built per op (the op is a define)."""
    op_types = tuple(MATH)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.total = numel(out_shapes[0])
        opts = [f"-DMATH={MATH[node.op_type]}"]
        if node.op_type == "Gelu" and node.attrs.get("approximate", "none") == "tanh":
            opts.append("-DGELU_TANH")
        self.kern, self.key = self.kernel("elementwise", "unary_math", opts)

    def bind(self, inputs, outputs):
        if self.total == 0:
            return []
        self.kern.set_args(self.with_consts(inputs)[0], outputs[0])
        return [self.launch(self.kern, self.key, (self.total,))]


def broadcast_plan(out_shape, a_shape, b_shape) -> dict:
    """Classify the broadcast of a and b to out_shape: {"kind": same|scalar|channel|bcast, ...}."""
    r = len(out_shape)

    def bstrides(shape):
        shape = [1] * (r - len(shape)) + list(shape)
        st = contiguous_strides(shape)
        return [0 if d == 1 and o != 1 else s for d, s, o in zip(shape, st, out_shape)]

    dims, (sa, sb) = coalesce(out_shape, bstrides(a_shape), bstrides(b_shape))
    dense = contiguous_strides(dims)
    total = numel(out_shape)
    if sa == dense and sb == dense:
        return {"kind": "same", "total": total}
    for full, small, swap in ((sa, sb, 0), (sb, sa, 1)):
        if full != dense:
            continue
        if not any(small):
            return {"kind": "scalar", "total": total, "swap": swap}
        nz = [k for k, s in enumerate(small) if s]
        if len(nz) == 1 and small[nz[0]] == 1:
            return {"kind": "channel", "total": total, "swap": swap,
                    "inner": numel(dims[nz[0] + 1:]), "channels": dims[nz[0]]}
    dims6, (sa6, sb6) = pad_dims(dims, sa, sb)
    return {"kind": "bcast", "total": total, "dims": dims6, "sa": sa6, "sb": sb6}


@gpu_op
class Binary(FamilyOp):
    op_types = ("Add", "Sub", "Mul", "Div", "PRelu")

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        try:
            broadcast_plan(out_shapes[0], in_shapes[0], in_shapes[1])
        except ValueError:
            return False
        return True

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.op = OPS[node.op_type]
        self.plan = broadcast_plan(out_shapes[0], in_shapes[0], in_shapes[1])
        self._ok = self.first_working_variant(self.variants())

    def variants(self) -> list[str]:
        """"vec4" (4 elements per work item) where the broadcast pattern allows it, "scalar"."""
        p = self.plan
        can4 = p["total"] % 4 == 0 and (p["kind"] in ("same", "scalar")
                                        or (p["kind"] == "channel" and p["inner"] % 4 == 0))
        both = ["vec4", "scalar"] if can4 else ["scalar"]
        return [v for v in both if v in getattr(self, "_ok", both)]

    def use_variant(self, name: str) -> None:
        super().use_variant(name)
        self._build()

    def _build(self):
        self.vec4 = self.variant == "vec4"
        name = "binary_" + self.plan["kind"] + ("4" if self.vec4 else "")
        self.kern, self.key = self.kernel("elementwise", name, self.activation_options())

    def bind(self, inputs, outputs):
        p = self.plan
        if p["total"] == 0:
            return []
        a, b = self.with_consts(inputs)[:2]
        out, op = outputs[0], i32(self.op)
        n = p["total"] // 4 if self.vec4 else p["total"]
        if p["kind"] == "same":
            self.kern.set_args(a, b, out, op)
            return [self.launch(self.kern, self.key, (n,))]
        if p["kind"] in ("scalar", "channel"):
            full, small = (b, a) if p["swap"] else (a, b)
            extra = (i32(p["inner"]), i32(p["channels"])) if p["kind"] == "channel" else ()
            self.kern.set_args(full, small, out, op, i32(p["swap"]), *extra)
            return [self.launch(self.kern, self.key, (n,))]
        self.kern.set_args(a, b, out, op, *map(i32, p["dims"][1:]), *map(i32, p["sa"]), *map(i32, p["sb"]))
        return [self.launch(self.kern, self.key, gws_of(p["dims"]))]
