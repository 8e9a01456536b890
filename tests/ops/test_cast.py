"""Cast / CastLike between the run-time element types against onnxruntime (exact: every value is
representable in the target, float -> integer draws values inside the target's range)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from mace.convert import convert
from mace.errors import ConversionError
from tests.ophelpers import Batch, check_typed, make_model, module_rng, rand, rand_int

TYPES = ["float32", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool"]


def _source(rng, src, dst, shape):
    if src == "float32":
        if dst == "bool":
            x = rand(rng, *shape) * (rng.random(shape) < 0.7)
        else:
            lo, hi = (0, 100) if dst.startswith("u") else (-100, 100)
            x = rng.uniform(lo, hi, shape).astype(np.float32)
        x.flat[0] = rng.uniform(1, 50)  # a value that stays non-zero in any target (a 1-element draw can't be all 0)
        return x
    x = rand_int(rng, src, *shape)
    x.flat[0] = 1  # a non-zero value whatever else is drawn
    return np.where(x == 0, 1, x).astype(src) if dst == "bool" else x


@pytest.mark.parametrize("op", ["Cast", "CastLike"])
def test_cast_random_type_pairs(rng, op):
    for _ in range(8):
        src, dst = (str(t) for t in rng.choice(TYPES, 2))
        shape = tuple(int(d) for d in rng.integers(1, 5, size=int(rng.integers(1, 4))))
        x = _source(rng, src, dst, shape)
        if op == "Cast":
            to = helper.np_dtype_to_tensor_dtype(np.dtype(dst))
            check_typed("Cast", {"x": x}, {"to": to})
        else:
            check_typed("CastLike", {"x": x}, initializers={"like": np.zeros(1, dst)})


def test_cast_to_an_unsupported_type_is_refused(rng):
    model = make_model("Cast", {"x": rand(rng, 2, 3)}, {"to": helper.np_dtype_to_tensor_dtype(np.dtype("float16"))})
    with pytest.raises(ConversionError, match=r"Cast.*float16"):
        convert(model)


#: type pairs the GPU test always runs (what exporters emit), beside random ones
GPU_PAIRS = [("float32", "int64"), ("int64", "float32"), ("float32", "bool"), ("bool", "float32"),
             ("int32", "int64"), ("int64", "int32"), ("float32", "uint8")]


@pytest.fixture(scope="module")
def cast_batch():
    """The GPU kernel (opencl/ops/cast.py): the pairs above and two random ones, Cast and
    CastLike, in one model (one engine per runtime)."""
    rng = module_rng()
    b = Batch()
    pairs = GPU_PAIRS + [tuple(str(t) for t in rng.choice(TYPES, 2)) for _ in range(2)]
    for k, (src, dst) in enumerate(pairs):
        x = _source(rng, src, dst, (3, 5))
        b.add(f"cast{k}_{src}_{dst}", "Cast", {"x": x}, {"to": helper.np_dtype_to_tensor_dtype(np.dtype(dst))})
    b.add("castlike", "CastLike", {"x": _source(rng, "float32", "int32", (4, 3))},
          initializers={"like": np.zeros(1, "int32")})
    return b.run()


def test_gpu_cast_matches_onnxruntime(cast_batch):
    """Exact; no node falls back to the CPU."""
    for case in cast_batch.outs:
        cast_batch.check_typed(case)
