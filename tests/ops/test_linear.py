"""Gemm and MatMul on both runtimes against onnxruntime.

Gemm: all four transA / transB combinations with random alpha / beta, C of every broadcastable
shape (scalar, (N,), (1, N), (M, 1), (M, N)) constant or a graph input, no C, B constant or a graph
input, fused Relu. MatMul: 2-D, 3-D, 4-D with batch broadcasting on either side, 1-D operands,
B constant or not. fp16 storage for both.

Tolerances: fp32 rtol 1e-4 / atol 1e-4 * max(1, sqrt(K) / 4) (K = reduction length, values in
[-1, 1]); fp16 storage (GPU only) rtol 1e-2 / atol 1e-2 * max(1, sqrt(K) / 4).
No GPU node may fall back to the CPU.
"""
from __future__ import annotations

import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.ophelpers import OPSET, make_model, rand
from tests.ops.test_conv import _r, _tol, check_graph


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_trans(rng, trans_a, trans_b):
    m, k, n = _r(rng, 1, 20), _r(rng, 1, 40), _r(rng, 1, 50)
    a = rand(rng, *((k, m) if trans_a else (m, k)))
    b = rand(rng, *((n, k) if trans_b else (k, n)))
    attrs = {"transA": trans_a, "transB": trans_b, "alpha": float(rng.uniform(0.2, 2)),
             "beta": float(rng.uniform(0.2, 2))}
    model = make_model("Gemm", {"A": a}, attrs, {"B": b, "C": rand(rng, n)})
    check_graph(model, {"A": a}, atol=_tol(k, 2e-4))


@pytest.mark.parametrize("c_shape", ["none", "scalar", "n", "1n", "m1", "mn"])
def test_gemm_c_broadcast(rng, c_shape):
    m, k, n = _r(rng, 2, 12), _r(rng, 1, 30), _r(rng, 2, 40)
    a, b = rand(rng, m, k), rand(rng, k, n)
    shapes = {"scalar": (), "n": (n,), "1n": (1, n), "m1": (m, 1), "mn": (m, n)}
    inits = {"B": b}
    if c_shape != "none":
        inits["C"] = rand(rng, *shapes[c_shape])
    model = make_model("Gemm", {"A": a}, {"beta": 0.5}, inits)
    check_graph(model, {"A": a}, atol=_tol(k, 1e-4))


def test_gemm_runtime_b_and_c(rng):
    m, k, n = _r(rng, 1, 12), _r(rng, 1, 30), _r(rng, 1, 40)
    a, b, c = rand(rng, m, k), rand(rng, n, k), rand(rng, m, 1)
    model = make_model("Gemm", {"A": a, "B": b, "C": c}, {"transB": 1, "alpha": 1.5, "beta": 2.0})
    check_graph(model, {"A": a, "B": b, "C": c}, atol=_tol(k, 1e-4))


def test_gemm_fused_relu_fp16(rng):
    m, k, n = 2, _r(rng, 16, 64), _r(rng, 16, 100)
    a = rand(rng, m, k)
    inits = [numpy_helper.from_array(rand(rng, n, k), "B"), numpy_helper.from_array(rand(rng, n), "C")]
    nodes = [helper.make_node("Gemm", ["A", "B", "C"], ["g"], transB=1), helper.make_node("Relu", ["g"], ["Y"])]
    g = helper.make_graph(nodes, "gemm_relu", [helper.make_tensor_value_info("A", TensorProto.FLOAT, a.shape)],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    graph = check_graph(model, {"A": a}, atol=_tol(k, 1e-4))
    assert [n.op_type for n in graph.nodes] == ["Gemm"] and graph.nodes[0].attrs["activation"] == "Relu"
    check_graph(model, {"A": a}, runtimes=("gpu",), data_type="fp16_fp32", rtol=1e-2, atol=_tol(k, 1e-2))


MATMUL_CASES = {
    "2d": ((7, 9), (9, 20)),
    "3d": ((3, 5, 8), (3, 8, 17)),
    "3d_x_2d": ((2, 6, 8), (8, 33)),
    "4d_broadcast": ((2, 1, 4, 6), (3, 6, 5)),
    "4d_broadcast_b": ((1, 3, 5, 7), (2, 1, 7, 18)),
    "1d_a": ((10,), (2, 10, 19)),
    "1d_b": ((3, 4, 10), (10,)),
}


@pytest.mark.parametrize("b_const", [False, True])
@pytest.mark.parametrize("case", sorted(MATMUL_CASES))
def test_matmul(rng, case, b_const):
    sa, sb = MATMUL_CASES[case]
    a, b = rand(rng, *sa), rand(rng, *sb)
    if b_const:
        model, feeds = make_model("MatMul", {"A": a}, {}, {"B": b}), {"A": a}
    else:
        model, feeds = make_model("MatMul", {"A": a, "B": b}), {"A": a, "B": b}
    check_graph(model, feeds, atol=_tol(sa[-1], 1e-4))


def test_matmul_fp16(rng):
    k = _r(rng, 8, 64)
    a, b = rand(rng, 2, 3, 9, k), rand(rng, k, 40)
    check_graph(make_model("MatMul", {"A": a}, {}, {"B": b}), {"A": a}, runtimes=("gpu",), data_type="fp16_fp32",
                rtol=1e-2, atol=_tol(k, 1e-2))


@pytest.mark.parametrize("case", ["gemm_tb_c", "gemm_ta_runtime", "matmul_4d", "matmul_1d", "matmul_wide"])
def test_linear_all_gpu_variants(rng, case):
    """Every variant (default, gpu_gemm, gpu_gemm_t32) of Gemm / MatMul is right on PoCL."""
    from tests.ops.test_conv import check_variants
    if case == "gemm_tb_c":
        a = rand(rng, _r(rng, 1, 20), 37)
        model = make_model("Gemm", {"A": a}, {"transB": 1, "alpha": 1.5, "beta": 0.5},
                           {"B": rand(rng, _r(rng, 30, 80), 37), "C": rand(rng, 1)})
        feeds, op, k = {"A": a}, "Gemm", 37
    elif case == "gemm_ta_runtime":
        k = _r(rng, 1, 40)
        feeds = {"A": rand(rng, k, 13), "B": rand(rng, k, 20), "C": rand(rng, 13, 1)}
        model, op = make_model("Gemm", feeds, {"transA": 1, "beta": 2.0}), "Gemm"
    elif case == "matmul_4d":
        feeds = {"A": rand(rng, 2, 1, 4, 6), "B": rand(rng, 3, 6, 5)}
        model, op, k = make_model("MatMul", feeds), "MatMul", 6
    elif case == "matmul_1d":
        feeds = {"A": rand(rng, 10)}
        model, op, k = make_model("MatMul", feeds, {}, {"B": rand(rng, 2, 10, 19)}), "MatMul", 10
    else:
        k = _r(rng, 17, 70)
        feeds = {"A": rand(rng, 2, _r(rng, 65, 90), k)}
        model, op = make_model("MatMul", feeds, {}, {"B": rand(rng, k, _r(rng, 65, 90))}), "MatMul"
    variants = check_variants(model, feeds, atol=_tol(k, 2e-4), op_type=op)
    assert "default" in variants and "gpu_gemm" in variants
    check_variants(model, feeds, rtol=1e-2, atol=_tol(k, 1e-2), data_type="fp16_fp32", op_type=op)
