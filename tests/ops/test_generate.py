"""Trilu (upper/lower, random diagonal offsets, any element type) and EyeLike against
onnxruntime (exact: values are kept or zeroed, never computed)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.ophelpers import Batch, check_typed, module_rng, rand, rand_int


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_trilu(rng, upper, dtype):
    shape = tuple(int(d) for d in rng.integers(2, 6, size=int(rng.integers(2, 5))))
    x = rand(rng, *shape) if dtype == "float32" else rand_int(rng, dtype, *shape, lo=1, hi=99)
    k = int(rng.integers(-shape[-2] + 1, shape[-1])) if shape[-2] > 1 or shape[-1] > 1 else 0
    inits = {} if rng.random() < 0.3 else {"k": np.array(k, np.int64)}
    check_typed("Trilu", {"x": x}, {"upper": upper}, initializers=inits, opset=14)


@pytest.mark.parametrize("dtype", [1, 6, 7])  # float, int32, int64 (onnxruntime has no bool EyeLike)
def test_eye_like(rng, dtype):
    n, m = (int(d) for d in rng.integers(2, 6, size=2))
    check_typed("EyeLike", {"x": rand(rng, n, m)}, {"k": int(rng.integers(-1, 2)), "dtype": dtype})


@pytest.fixture(scope="module")
def generate_batch():
    """The GPU kernels (opencl/ops/generate.py): Trilu of float32/int64/bool values (upper and
    lower, random offsets) and EyeLike to float32/int64, in one model per runtime."""
    rng = module_rng()
    b = Batch(opset=14)
    for dtype in ("float32", "int64", "bool"):
        for upper in (0, 1):
            shape = tuple(int(d) for d in rng.integers(2, 6, size=int(rng.integers(2, 5))))
            x = (rng.random(shape) < 0.8 if dtype == "bool" else
                 rand(rng, *shape) if dtype == "float32" else rand_int(rng, dtype, *shape, lo=1, hi=99))
            k = int(rng.integers(-shape[-2] + 1, shape[-1]))
            if dtype == "bool":  # the corners Trilu always keeps are True: never an all-false reference
                x[..., -1, 0] = x[..., 0, -1] = True
            b.add(f"trilu_{dtype}_{upper}", "Trilu", {"x": x}, {"upper": upper}, initializers={"k": np.array(k, np.int64)})
    for dtype in (1, 7):
        n, m = (int(d) for d in rng.integers(2, 6, size=2))
        b.add(f"eye_{dtype}", "EyeLike", {"x": rand(rng, n, m)}, {"k": int(rng.integers(-1, 2)), "dtype": dtype})
    return b.run()


def test_gpu_generate_matches_onnxruntime(generate_batch):
    """Exact; no node falls back to the CPU."""
    for case in generate_batch.outs:
        generate_batch.check_typed(case)
