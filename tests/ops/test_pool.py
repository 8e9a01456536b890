"""MaxPool, AveragePool, GlobalAveragePool (and GlobalMaxPool) on both runtimes against onnxruntime.

Random input shapes and values (`rng` fixture); covered: pads (symmetric and asymmetric),
strides, MaxPool dilations, ceil_mode, count_include_pad 0 and 1, auto_pad SAME_UPPER / VALID,
1-D pools, global pools of rank 3 and 4, fp16 storage.

Tolerances: fp32 rtol 1e-5 / atol 1e-5 (max is exact, averages of at most 49 values);
fp16 storage (GPU only) rtol 1e-2 / atol 1e-2. No GPU node may fall back to the CPU.
"""
from __future__ import annotations

import pytest

from tests.ophelpers import make_model, rand
from tests.ops.test_conv import _r, check_graph

POOL_CASES = {
    "max_3x3_s2_p1": ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "max_3x3_s2_ceil": ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    "max_2x3_dilated_asym": ("MaxPool", {"kernel_shape": [2, 3], "dilations": [2, 2], "pads": [1, 0, 0, 1]}),
    "max_2x2_s2": ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
    "max_same_upper": ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    "avg_3x3_s2_p1_include": ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                              "count_include_pad": 1}),
    "avg_3x3_s2_p1_exclude": ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                              "count_include_pad": 0}),
    "avg_ceil_asym_include": ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 2, 0, 1],
                                              "ceil_mode": 1, "count_include_pad": 1}),
    "avg_ceil_exclude": ("AveragePool", {"kernel_shape": [3, 2], "strides": [2, 2], "ceil_mode": 1}),
    "avg_valid_7x7": ("AveragePool", {"kernel_shape": [7, 7], "auto_pad": "VALID"}),
}


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pool(rng, case):
    op, attrs = POOL_CASES[case]
    x = rand(rng, _r(rng, 1, 2), _r(rng, 1, 6), _r(rng, 7, 20), _r(rng, 7, 40))
    check_graph(make_model(op, {"X": x}, attrs), {"X": x}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
    ("AveragePool", {"kernel_shape": [4], "strides": [3], "pads": [2, 1], "count_include_pad": 1, "ceil_mode": 1}),
])
def test_pool1d(rng, op, attrs):
    x = rand(rng, 1, _r(rng, 1, 5), _r(rng, 8, 50))
    check_graph(make_model(op, {"X": x}, attrs), {"X": x}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("rank", [3, 4])
def test_global_pool(rng, op, rank):
    shape = (_r(rng, 1, 2), _r(rng, 1, 40)) + tuple(_r(rng, 1, 15) for _ in range(rank - 2))
    x = rand(rng, *shape)
    check_graph(make_model(op, {"X": x}), {"X": x}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 0}),
    ("GlobalAveragePool", {}),
])
def test_pool_fp16(rng, op, attrs):
    x = rand(rng, 1, 4, _r(rng, 5, 20), _r(rng, 5, 40))
    check_graph(make_model(op, {"X": x}, attrs), {"X": x}, runtimes=("gpu",), data_type="fp16_fp32",
                rtol=1e-2, atol=1e-2)


# -- window rules (mace.ops.pool) ---------------------------------------------------------------------------
def test_window_counts_match_a_direct_count(rng):
    """The AveragePool divisor of every output equals its window's cells inside the input (or inside
    input + the model's pads), counted one window at a time."""
    import numpy as np

    from mace.ops.pool import geometry, window_counts
    for _ in range(20):
        k, s = _r(rng, 1, 4), _r(rng, 1, 3)
        n = _r(rng, k, 9)  # at least one whole window (a model with fewer cells does not convert)
        pb, pe = _r(rng, 0, k - 1), _r(rng, 0, k - 1)
        attrs = {"kernel_shape": [k], "strides": [s], "pads": [pb, pe], "ceil_mode": _r(rng, 0, 1)}
        kernel, strides, dil, pads, ends, out_sp = geometry(attrs, (1, 1, n))
        for include in (0, 1):
            got = window_counts([n], kernel, strides, dil, pads, ends, out_sp, include)
            lo, hi = (-pb, n + pe) if include else (0, n)
            want = [max(1, len([p for p in range(o * s - pb, o * s - pb + k) if lo <= p < hi]))
                    for o in range(out_sp[0])]
            np.testing.assert_array_equal(got, np.array(want, np.float32), err_msg=str((attrs, include)))
