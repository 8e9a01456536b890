"""Comparisons, bool logic, Where and IsNaN/IsInf against onnxruntime (exact: bool outputs, and
Where selects values without arithmetic), on random shapes with NumPy broadcasting."""
from __future__ import annotations

import numpy as np
import pytest

from tests.ophelpers import Batch, check_typed, module_rng, rand, rand_int


def _pair(rng):
    a = tuple(int(d) for d in rng.integers(3, 6, size=3))
    b = tuple(d if rng.random() < 0.6 else 1 for d in a)[int(rng.integers(0, 3)):]
    return a, b


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
@pytest.mark.parametrize("dtype", ["float32", "int32", "int64", "uint8"])
def test_compare(rng, op, dtype):
    a, b = _pair(rng)
    x, y = rng.integers(0, 5, a).astype(dtype), rng.integers(1, 4, b).astype(dtype)  # equal values happen
    if dtype == "float32":
        x, y = x + rand(rng, *a) * (rng.random(a) < 0.5), y + np.float32(0.5)
    x.flat[0] = y.flat[0].item() + {"Less": -1, "Greater": 1}.get(op, 0)  # one true output, whatever else is drawn
    check_typed(op, {"x": x, "y": y})


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_bool_logic(rng, op):
    a, b = _pair(rng)
    x, y = rand_int(rng, bool, *a), rand_int(rng, bool, *b)
    x.flat[0] = y.flat[0] = op != "Xor"  # a true output for And/Or, whatever else is drawn
    check_typed(op, {"x": x, "y": y})


def test_not(rng):
    check_typed("Not", {"x": rand_int(rng, bool, 3, 4)})


@pytest.mark.parametrize("dtype", ["float32", "int64", "int8", "uint8"])  # onnxruntime has no bool Where
def test_where(rng, dtype):
    a, b = _pair(rng)
    x = rand(rng, *a) if dtype == "float32" else rand_int(rng, dtype, *a)
    y = rand(rng, *b) if dtype == "float32" else rand_int(rng, dtype, *b)
    check_typed("Where", {"c": rand_int(rng, bool, *b[1:]), "x": x, "y": y})


@pytest.mark.parametrize("op,attrs", [("IsNaN", {}), ("IsInf", {}), ("IsInf", {"detect_negative": 0}),
                                      ("IsInf", {"detect_positive": 0})])
def test_is_special(rng, op, attrs):
    x = rand(rng, 4, 5)
    spots = rng.permutation(x.size)   # some of each special value at random places, finite ones between
    x.flat[spots[:4]] = np.nan
    x.flat[spots[4:8]] = np.inf
    x.flat[spots[8:12]] = -np.inf
    check_typed(op, {"x": x}, attrs, opset=20)


# -- the GPU kernels (opencl/ops/logic.py): every case in one model, one engine per runtime ---------
@pytest.fixture(scope="module")
def logic_batch():
    """Comparisons of float32/int64 inputs, And/Or/Xor/Not on bools, Where of float32/int64/
    uint8 values, IsNaN/IsInf, each with a random broadcast pattern (and a constant operand)."""
    rng = module_rng()
    b = Batch()
    for dtype in ("float32", "int64"):
        for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"):
            sa, sb = _pair(rng)
            x, y = rng.integers(0, 5, sa).astype(dtype), rng.integers(1, 4, sb).astype(dtype)
            if dtype == "float32":
                x = x + rand(rng, *sa) * (rng.random(sa) < 0.5)
            b.add(f"{op}_{dtype}", op, {"x": x, "y": y})
        b.add(f"Less_const_{dtype}", "Less", {"x": rng.integers(0, 5, (3, 4)).astype(dtype)},
              initializers={"y": np.asarray(2, dtype)})
    for op in ("And", "Or", "Xor"):
        sa, sb = _pair(rng)
        x, y = rand_int(rng, bool, *sa), rand_int(rng, bool, *sb)
        x.flat[0] = y.flat[0] = op != "Xor"  # a true output, whatever else is drawn
        b.add(op, op, {"x": x, "y": y})
    b.add("Not", "Not", {"x": rand_int(rng, bool, 3, 4, 5)})
    for dtype in ("float32", "int64", "uint8"):
        sa, sb = _pair(rng)
        x = rand(rng, *sa) if dtype == "float32" else rand_int(rng, dtype, *sa)
        y = rand(rng, *sb) if dtype == "float32" else rand_int(rng, dtype, *sb)
        b.add(f"Where_{dtype}", "Where", {"c": rand_int(rng, bool, *sb[1:]), "x": x, "y": y})
    x = rand(rng, 4, 5)
    spots = rng.permutation(x.size)
    x.flat[spots[:4]], x.flat[spots[4:8]], x.flat[spots[8:12]] = np.nan, np.inf, -np.inf
    b.add("IsNaN", "IsNaN", {"x": x})
    b.add("IsInf", "IsInf", {"x": x})
    b.add("IsInf_neg", "IsInf", {"x": x}, {"detect_positive": 0})
    return b.run()


@pytest.mark.parametrize("prefix", ["Equal", "Less", "Greater", "And", "Or", "Xor", "Not", "Where", "IsNaN", "IsInf"])
def test_gpu_logic_matches_onnxruntime(logic_batch, prefix):
    """Exact (bool outputs; Where copies values); no node falls back to the CPU."""
    cases = [c for c in logic_batch.outs if c.startswith(prefix)]
    assert cases
    for case in cases:
        logic_batch.check_typed(case)


def test_gpu_typed_kernels_with_half_storage(rng):
    """data_type fp16_fp32: float values beside bool/int64 ones are stored as half (typed.h's
    X_HALF): Where selects them (rtol 1e-3: half rounding), Less compares values half keeps apart."""
    b = Batch()
    sa, sb = _pair(rng)
    b.add("Where", "Where", {"c": rand_int(rng, bool, *sb[1:]), "x": rand(rng, *sa), "y": rand(rng, *sb)})
    x, y = rng.integers(-8, 8, sa).astype(np.float32) + np.float32(0.25), rng.integers(-8, 8, sb).astype(np.float32)
    x.flat[0] = y.flat[0] - 1  # one true output, whatever else is drawn
    b.add("Less", "Less", {"x": x, "y": y})
    b.run(runtimes=("gpu",), data_type="fp16_fp32")
    b.check_typed("Where", rtol=1e-3, atol=1e-3)
    b.check_typed("Less")
