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

from mace.runtime.opencl import fqfuse
from mace.runtime.opencl.ops.base import _ACT_IDS, gpu_op, i32
from mace.runtime.opencl.ops.quantize import fq_args, fq_options
from mace.runtime.opencl.ops.movement import (FamilyOp, coalesce, contiguous_strides, gws_of, numel,
                                              pad_dims)

OPS = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "PRelu": 4, "Pow": 5}
OP_IDS = {**OPS, "Max": 6, "Min": 7, "Mod": 8}
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
        "Cos": 10, "Erf": 11, "Softsign": 12, "Softplus": 13, "Gelu": 14, "Sign": 15, "Round": 16, "Tan": 17,
        "Asin": 18, "Acos": 19, "Atan": 20, "Sinh": 21, "Cosh": 22, "Asinh": 23, "Acosh": 24, "Atanh": 25,
        "Elu": 26, "Selu": 27, "Celu": 28, "ThresholdedRelu": 29, "Mish": 30}
#: the parameters (MATH_A, MATH_B) of the parametric ones, with ONNX's defaults
MATH_PARAMS = {"Elu": (("alpha", 1.0),), "Celu": (("alpha", 1.0),), "ThresholdedRelu": (("alpha", 1.0),),
               "Selu": (("alpha", 1.67326319217681884765625), ("gamma", 1.05070102214813232421875))}


def math_options(node) -> list[str]:
    """Build options of a unary_math node: the op and its parameters are defines."""
    opts = [f"-DMATH={MATH[node.op_type]}"]
    if node.op_type == "Gelu" and node.attrs.get("approximate", "none") == "tanh":
        opts.append("-DGELU_TANH")
    for define, (attr, default) in zip(("MATH_A", "MATH_B"), MATH_PARAMS.get(node.op_type, ())):
        opts.append(f"-D{define}={_literal(node.attrs.get(attr, default))}")
    return opts


@gpu_op
class UnaryMath(FamilyOp):
    """One work item per element; built per op (the op is a define)."""
    op_types = tuple(MATH)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        self.total = numel(out_shapes[0])
        self.kern, self.key = self.kernel("elementwise", "unary_math", math_options(node))

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
    """Add/Sub/Mul/Div/PRelu/Pow, float Mod (C's fmod, as ONNX requires for floats) and the n-ary Max/Min/Sum/Mean: one launch per operand pair,
    the first combining inputs 0 and 1 into the output, each later one the output with the next
    input (in place: every item reads and writes the same element); Mean then scales by 1/n and
    a single-input Max/Min/Sum/Mean adds 0. The fused activation is applied by the last launch."""
    op_types = tuple(OPS) + ("Max", "Min", "Mod", "Sum", "Mean")

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        try:
            [broadcast_plan(out_shapes[0], a, b) for a, b in cls._pairs(in_shapes, out_shapes[0])]
        except ValueError:
            return False
        return True

    @staticmethod
    def _pairs(in_shapes, out_shape):
        if len(in_shapes) == 1:
            return [(in_shapes[0], ())]
        return [(in_shapes[0], in_shapes[1])] + [(out_shape, s) for s in in_shapes[2:]]

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        t = node.op_type
        self.op = OP_IDS.get(t, OPS["Add"])
        pairs = self._pairs(in_shapes, out_shapes[0])
        self.plans = [broadcast_plan(out_shapes[0], a, b) for a, b in pairs]
        self.ops = [self.op] * len(pairs)
        self.extra = []  # the scalar operands of the launches after the inputs' (uploaded)
        if len(in_shapes) == 1:
            self.ops = [OP_IDS["Max"] if t in ("Max", "Min") else OPS["Add"]]
            self.extra = [rt.upload(np.full(1, -np.inf if t in ("Max", "Min") else 0.0, np.float32))]
        if t == "Mean":
            self.plans.append(broadcast_plan(out_shapes[0], out_shapes[0], ()))
            self.ops.append(OPS["Mul"])
            self.extra.append(rt.upload(np.full(1, 1.0 / len(in_shapes), np.float32)))
        self.plan = self.plans[0]
        # a FakeQuantize that alone reads the output of one same-shape pair: in the kernel (fqfuse)
        self.fq = fqfuse.grid_of(rt, node) if len(self.plans) == 1 and self.plan["kind"] == "same" else None
        self._ok = self.first_working_variant(self.variants())

    def variants(self) -> list[str]:
        """"vec4" (4 elements per work item) where every launch's broadcast pattern allows it, "scalar"."""
        can4 = all(p["total"] % 4 == 0 and (p["kind"] in ("same", "scalar")
                                            or (p["kind"] == "channel" and p["inner"] % 4 == 0)) for p in self.plans)
        both = ["vec4", "scalar"] if can4 else ["scalar"]
        return [v for v in both if v in getattr(self, "_ok", both)]

    def use_variant(self, name: str) -> None:
        super().use_variant(name)
        self._build()

    def _build(self):
        self.vec4 = self.variant == "vec4"
        last = len(self.plans) - 1
        self.kerns = [self.kernel("elementwise", "binary_" + p["kind"] + ("4" if self.vec4 else ""),
                                  self.activation_options() + (fq_options(self.fq) if self.fq else []) if k == last
                                  else [])
                      for k, p in enumerate(self.plans)]

    def bind(self, inputs, outputs):
        if self.plan["total"] == 0:
            return []
        ins, out = self.with_consts(inputs), outputs[0]
        operands = [(ins[0], ins[1] if len(ins) > 1 else self.extra[0])]
        operands += [(out, b) for b in ins[2:]] + [(out, e) for e in self.extra[len(ins) == 1:]]
        return [self._launch(p, op, k, a, b, out)
                for p, op, k, (a, b) in zip(self.plans, self.ops, self.kerns, operands)]

    def _launch(self, p, op, kern_key, a, b, out):
        kern, key = kern_key
        n = p["total"] // 4 if self.vec4 else p["total"]
        if p["kind"] == "same":
            kern.set_args(a, b, out, i32(op), *(fq_args(self.fq) if self.fq else []))
            return self.launch(kern, key, (n,))
        if p["kind"] in ("scalar", "channel"):
            full, small = (b, a) if p["swap"] else (a, b)
            extra = (i32(p["inner"]), i32(p["channels"])) if p["kind"] == "channel" else ()
            kern.set_args(full, small, out, i32(op), i32(p["swap"]), *extra)
            return self.launch(kern, key, (n,))
        kern.set_args(a, b, out, i32(op), *map(i32, p["dims"][1:]), *map(i32, p["sa"]), *map(i32, p["sb"]))
        return self.launch(kern, key, gws_of(p["dims"]))
