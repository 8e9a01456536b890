"""Integer arithmetic with ONNX's semantics against onnxruntime (exact): truncating Div, Mod's
sign rules (fmod 0 and 1), wrap-around Add/Sub/Mul, Neg/Abs, n-ary Max/Min, Clip, BitShift,
Bitwise ops and the integer reductions; negative and positive operands of every width."""
from __future__ import annotations

import numpy as np
import pytest

from mace.convert import convert
from mace.errors import ConversionError
from tests.ophelpers import Batch, check_typed, make_model, module_rng, rand, rand_int

SIGNED = ["int8", "int16", "int32", "int64"]
ALL = SIGNED + ["uint8", "uint16", "uint32", "uint64"]


def _nonzero(rng, dtype, *shape, lo=None, hi=None):
    x = rand_int(rng, dtype, *shape, lo=lo, hi=hi)
    return np.where(x == 0, 3, x).astype(dtype)


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_binary(rng, op, dtype):
    x = rand_int(rng, dtype, 3, 4)
    y = _nonzero(rng, dtype, 4, lo=-50 if dtype in SIGNED else 1, hi=50) if op == "Div" else rand_int(rng, dtype, 4)
    check_typed(op, {"x": x, "y": y})


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint16"])
@pytest.mark.parametrize("fmod", [0, 1])
def test_mod(rng, dtype, fmod):
    lo = -40 if dtype in SIGNED else 1
    check_typed("Mod", {"x": rand_int(rng, dtype, 3, 5, lo=lo, hi=100), "y": _nonzero(rng, dtype, 5, lo=lo, hi=20)},
                {"fmod": fmod})


def test_float_mod_needs_fmod(rng):
    with pytest.raises(ConversionError, match="fmod=0"):
        convert(make_model("Mod", {"x": rand(rng, 3), "y": rand(rng, 3)}))


@pytest.mark.parametrize("op", ["Neg", "Abs", "Sign"])
def test_unary(rng, op):
    check_typed(op, {"x": rand_int(rng, "int32", 3, 4, lo=-1000, hi=1000)})


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_nary(rng, op):
    check_typed(op, {"a": rand_int(rng, "int64", 3, 1, lo=-99, hi=99), "b": rand_int(rng, "int64", 4, lo=-99, hi=99),
                     "c": rand_int(rng, "int64", 1, 4, lo=-99, hi=99)})


def test_clip(rng):
    check_typed("Clip", {"x": rand_int(rng, "int32", 4, 5, lo=-500, hi=500)},
                initializers={"lo": np.array(-100, np.int32), "hi": np.array(200, np.int32)})


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bit_shift(rng, direction):
    check_typed("BitShift", {"x": rand_int(rng, "uint32", 3, 4, lo=0, hi=1 << 20),
                             "s": rand_int(rng, "uint32", 4, lo=0, hi=8)}, {"direction": direction})


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise(rng, op):
    check_typed(op, {"x": rand_int(rng, "int32", 3, 4), "y": rand_int(rng, "int32", 3, 4)}, opset=18)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"])
def test_reduce(rng, op):
    x = rng.choice(np.array([-3, -2, -1, 1, 2, 3], np.int64), (3, 4, 5))  # no zero: products stay non-zero
    axes = sorted(int(a) for a in rng.choice(3, size=int(rng.integers(1, 3)), replace=False))
    check_typed(op, {"x": x}, {"keepdims": int(rng.integers(0, 2))}, initializers={"axes": np.array(axes)}, opset=18)


def test_float_op_on_integers_is_refused(rng):
    with pytest.raises(ConversionError, match=r"Relu.*int32.*float32"):
        convert(make_model("Relu", {"x": rand_int(rng, "int32", 3)}))


# -- the GPU kernels (opencl/ops/integer.py): every case in one model, one engine per runtime -------
@pytest.fixture(scope="module")
def integer_batch():
    """Add/Sub/Mul/Div (full range, wrapping; divisors of both signs, -1 included) broadcast,
    Mod (fmod 0 and 1), two-input Max/Min, BitShift, Bitwise ops, Neg/Abs/Sign/BitwiseNot/Clip."""
    rng = module_rng()
    b = Batch(opset=18)
    for dtype in ("int8", "int32", "int64", "uint8", "uint64"):
        signed = dtype in SIGNED
        for op in ("Add", "Sub", "Mul", "Div"):
            x = rand_int(rng, dtype, 3, 4)
            y = _nonzero(rng, dtype, 4, lo=-50 if signed else 1, hi=50) if op == "Div" else rand_int(rng, dtype, 4)
            if op == "Div" and signed:
                y[0] = -1
            b.add(f"{op}_{dtype}", op, {"x": x, "y": y})
        lo = -40 if signed else 1
        for fmod in (0, 1):
            b.add(f"Mod{fmod}_{dtype}", "Mod", {"x": rand_int(rng, dtype, 3, 5, lo=lo, hi=100),
                                                "y": _nonzero(rng, dtype, 5, lo=lo, hi=20)}, {"fmod": fmod})
    for op in ("Max", "Min"):
        b.add(op, op, {"a": rand_int(rng, "int64", 3, 1, lo=-99, hi=99), "b": rand_int(rng, "int64", 4, lo=-99, hi=99)})
    for direction in ("LEFT", "RIGHT"):
        b.add(f"BitShift_{direction}", "BitShift", {"x": rand_int(rng, "uint32", 3, 4, lo=0, hi=1 << 20),
                                                    "s": rand_int(rng, "uint32", 4, lo=0, hi=8)}, {"direction": direction})
    for op in ("BitwiseAnd", "BitwiseOr", "BitwiseXor"):
        b.add(op, op, {"x": rand_int(rng, "int32", 3, 4), "y": rand_int(rng, "int32", 1, 4)})
    for op in ("Neg", "Abs", "Sign", "BitwiseNot"):
        b.add(op, op, {"x": rand_int(rng, "int32", 3, 4, lo=-1000, hi=1000)})
    b.add("Clip", "Clip", {"x": rand_int(rng, "int32", 4, 5, lo=-500, hi=500)},
          initializers={"lo": np.array(-100, np.int32), "hi": np.array(200, np.int32)})
    return b.run()


def test_gpu_integer_matches_onnxruntime(integer_batch):
    """Exact; no node falls back to the CPU."""
    for case in integer_batch.outs:
        integer_batch.check_typed(case)
