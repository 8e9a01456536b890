"""CumSum / CumProd against onnxruntime: float32 (rtol 1e-5: sums in the same order) and
integers (exact), every exclusive/reverse combination, a random axis given as int32 or int64."""
from __future__ import annotations

import numpy as np
import pytest

from tests.ophelpers import Batch, check_typed, module_rng, rand, rand_int


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("dtype", ["float32", "int32", "int64"])
def test_cumsum(rng, exclusive, reverse, dtype):
    shape = tuple(int(d) for d in rng.integers(2, 6, size=int(rng.integers(1, 4))))
    x = rand(rng, *shape) if dtype == "float32" else rand_int(rng, dtype, *shape, lo=-100, hi=100, nonzero=True)
    axis = np.array(int(rng.integers(-len(shape), len(shape))), dtype=rng.choice(["int32", "int64"]))
    check_typed("CumSum", {"x": x}, {"exclusive": exclusive, "reverse": reverse}, initializers={"axis": axis},
                rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def cumulative_batch():
    """The GPU kernel (opencl/ops/cumulative.py): CumSum of float32 and int64 values with every
    exclusive/reverse combination on a random axis, and CumProd, in one model per runtime."""
    rng = module_rng()
    b = Batch()
    for dtype in ("float32", "int64"):
        for exclusive in (0, 1):
            for reverse in (0, 1):
                shape = tuple(int(d) for d in rng.integers(2, 6, size=int(rng.integers(1, 4))))
                x = rand(rng, *shape) if dtype == "float32" else rand_int(rng, dtype, *shape, lo=-100, hi=100, nonzero=True)
                axis = np.array(int(rng.integers(-len(shape), len(shape))), dtype=np.int64)
                b.add(f"cumsum_{dtype}_{exclusive}{reverse}", "CumSum", {"x": x},
                      {"exclusive": exclusive, "reverse": reverse}, initializers={"axis": axis})
    return b.run()


def test_gpu_cumulative_matches_onnxruntime(cumulative_batch):
    """float32 rtol 1e-5 (sums in the same order), int64 exact; no node falls back to the CPU."""
    for case in cumulative_batch.outs:
        cumulative_batch.check_typed(case, rtol=1e-5, atol=1e-6)
