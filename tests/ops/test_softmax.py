"""Softmax and LogSoftmax on both runtimes against onnxruntime.

Tolerances: fp32 storage rtol 1e-4 / atol 1e-5 (float accumulation in a different order than
onnxruntime); fp16 storage (data_type fp16_fp32, GPU only) rtol 1e-2 / atol 1e-2.
Every GPU check also asserts the node ran as a GPU kernel (no CPU fallback) unless the test is
about the fallback.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.ophelpers import Batch, check, check_typed, make_model, module_rng, rand, reference, run_with_local_sizes

TOL = dict(rtol=1e-4, atol=1e-5)
FP16 = dict(data_type="fp16_fp32", runtimes=("gpu",), rtol=1e-2, atol=1e-2)


def rshape(rng, lo_rank=1, hi_rank=5, lo=1, hi=6):
    return tuple(int(d) for d in rng.integers(lo, hi + 1, size=int(rng.integers(lo_rank, hi_rank + 1))))


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
def test_softmax_every_axis(rng, rank):
    shape = rshape(rng, rank, rank)
    x = rand(rng, *shape, lo=-4, hi=4)
    for axis in range(-rank, rank):
        check("Softmax", {"x": x}, {"axis": axis}, **TOL)


def test_softmax_default_axis_and_long_rows(rng):
    check("Softmax", {"x": rand(rng, 2, 3, 7, lo=-4, hi=4)}, **TOL)
    check("Softmax", {"x": rand(rng, 1, 1000, lo=-8, hi=8)}, **TOL)          # a classifier
    check("Softmax", {"x": rand(rng, 2, 300, 3, lo=-8, hi=8)}, {"axis": 1}, **TOL)


@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -3])
def test_softmax_legacy_flatten(rng, axis):
    """opset < 13: the input is flattened to 2-D at `axis` (default 1) and normalized per row."""
    attrs = {} if axis is None else {"axis": axis}
    check("Softmax", {"x": rand(rng, 2, 3, 4, 5, lo=-4, hi=4)}, attrs, opset=11, **TOL)


def test_softmax_fp16(rng):
    check("Softmax", {"x": rand(rng, 2, 5, 6, lo=-4, hi=4)}, {"axis": 1}, **FP16)
    check("Softmax", {"x": rand(rng, 3, 200, lo=-4, hi=4)}, opset=11, **FP16)


@pytest.fixture(scope="module")
def log_softmax():
    """LogSoftmax on every axis of random shapes, long rows, large logits and the opset-11 flattening."""
    rng = module_rng()
    b = Batch()
    for rank in (1, 2, 3, 4):
        shape = rshape(rng, rank, rank, lo=2)
        for axis in range(-rank, rank):
            b.add(f"r{rank}_axis{axis}", "LogSoftmax", {"x": rand(rng, *shape, lo=-4, hi=4)}, {"axis": axis})
    b.add("classifier", "LogSoftmax", {"x": rand(rng, 1, 1000, lo=-8, hi=8)})
    b.add("large", "LogSoftmax", {"x": rand(rng, 3, 50, lo=-8, hi=8) + 1000})
    legacy = Batch(opset=11)
    legacy.add("legacy", "LogSoftmax", {"x": rand(rng, 2, 3, 4, 5, lo=-4, hi=4)}, {"axis": 2})
    return b.run(), legacy.run()


def test_log_softmax(log_softmax):
    for b in log_softmax:
        for case in b.outs:
            b.check(case, **TOL)
        assert set(b.gpu_kernels) == {"softmax"}


@pytest.mark.parametrize("cap", [1, 3, 8])
def test_any_local_size(rng, cap):
    _any_local_size(rng, cap, [("Softmax", {"x": rand(rng, 2, 5, 6)}, {"axis": 1}, None, None)])


def _any_local_size(rng, cap, cases):
    for op, feeds, attrs, inits, order in cases:
        model = make_model(op, feeds, attrs, inits, 1, order)
        np.testing.assert_allclose(run_with_local_sizes(model, feeds, cap)["out0"], reference(model, feeds)[0],
                                   rtol=1e-4, atol=1e-5, err_msg=op)


def test_hardmax(rng):
    """Hardmax (CPU only) against onnxruntime: exact (0/1 at the first largest value)."""
    x = np.round(rand(rng, 3, 4, 5) * 3)  # ties: the first largest wins
    check_typed("Hardmax", {"x": x}, {"axis": int(rng.integers(-3, 3))})
