"""The Reduce* family and LayerNormalization (and its op-by-op pattern, fused) on both runtimes
against onnxruntime, on random inputs from a fresh seed per test or module (printed).

Tolerances: fp32 storage rtol 1e-4 / atol 1e-5 (float accumulation in a different order than
onnxruntime); fp16 storage (data_type fp16_fp32, GPU only) rtol 1e-2 / atol 1e-2.
Every GPU check also asserts the node ran as a GPU kernel (no CPU fallback) unless the test is
about the fallback.
"""
from __future__ import annotations

import numpy as np
import pytest

import mace
from mace.convert import convert
from tests.ophelpers import Batch, check, check_graph, make_model, module_rng, rand, reference, run_with_local_sizes

TOL = dict(rtol=1e-4, atol=1e-5)
FP16 = dict(data_type="fp16_fp32", runtimes=("gpu",), rtol=1e-2, atol=1e-2)


def rshape(rng, lo_rank=1, hi_rank=5, lo=1, hi=6):
    return tuple(int(d) for d in rng.integers(lo, hi + 1, size=int(rng.integers(lo_rank, hi_rank + 1))))


def gpu_engine(model, data_type="fp32_fp32"):
    return mace.Engine(convert(model, data_type=data_type), runtime="gpu", use_program_cache=False)


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5, 6])
def test_reduce_mean_random_axes(rng, rank, keepdims):
    for _ in range(3):
        shape = rshape(rng, rank, rank, hi=5)
        axes = sorted(int(a) for a in rng.choice(rank, size=int(rng.integers(1, rank + 1)), replace=False))
        axes = [a - rank if rng.random() < 0.5 else a for a in axes]
        check("ReduceMean", {"x": rand(rng, *shape)}, {"axes": axes, "keepdims": keepdims}, **TOL)


def test_reduce_mean_defaults_and_axes_input(rng):
    x = rand(rng, 2, 3, 4, 5)
    check("ReduceMean", {"x": x}, **TOL)                                  # all axes, keepdims=1
    check("ReduceMean", {"x": x}, {"keepdims": 0}, **TOL)
    check("ReduceMean", {"x": x}, {"keepdims": 0}, initializers={"axes": np.array([-1, 1])}, opset=18, **TOL)
    check("ReduceMean", {"x": x}, {"noop_with_empty_axes": 1}, opset=18, **TOL)  # no axes: identity


def test_reduce_mean_global_pool_and_split_reduction(rng):
    x = rand(rng, 2, 16, 7, 7)
    check("ReduceMean", {"x": x}, {"axes": [2, 3], "keepdims": 1}, **TOL)
    big = rand(rng, 3, 8, 40, 40)  # 3 outputs of 12800 elements each: split into partial sums
    model = make_model("ReduceMean", {"x": big}, {"axes": [1, 2, 3], "keepdims": 0})
    check_graph(model, {"x": big}, **TOL)
    kernels = [ln.kernel.function_name for ln in gpu_engine(model).executor.launches]
    assert kernels == ["reduce_partial", "reduce_finish"]


def test_reduce_mean_fp16(rng):
    check("ReduceMean", {"x": rand(rng, 2, 8, 5, 5)}, {"axes": [-1, -2]}, **FP16)
    check("ReduceMean", {"x": rand(rng, 1, 8, 40, 40)}, {"keepdims": 0}, **FP16)


@pytest.mark.parametrize("cap", [1, 3, 8])
def test_any_local_size(rng, cap):
    _any_local_size(rng, cap, [
        ("ReduceMean", {"x": rand(rng, 2, 3, 4, 5)}, {"axes": [1, 3]}, None, None),
        ("ReduceMean", {"x": rand(rng, 2, 8, 40, 40)}, {"axes": [1, 2, 3]}, None, None)])  # split


def _any_local_size(rng, cap, cases):
    for op, feeds, attrs, inits, order in cases:
        model = make_model(op, feeds, attrs, inits, 1, order)
        np.testing.assert_allclose(run_with_local_sizes(model, feeds, cap)["out0"], reference(model, feeds)[0],
                                   rtol=1e-4, atol=1e-5, err_msg=op)


# -- the whole Reduce* family and LayerNormalization: one model per family, one engine per runtime --
REDUCE_OPS = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]
SPLIT_OPS = ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum"]


@pytest.fixture(scope="module")
def reductions():
    rng = module_rng()
    b = Batch(opset=18)
    for op in REDUCE_OPS:
        for keep in (0, 1):
            rank = int(rng.integers(2, 6))
            shape = rshape(rng, rank, rank, lo=2, hi=5)
            axes = sorted(int(a) for a in rng.choice(rank, size=int(rng.integers(1, rank + 1)), replace=False))
            axes = [a - rank if rng.random() < 0.5 else a for a in axes]
            lo, hi = (0.5, 1.5) if op in ("ReduceProd", "ReduceLogSum") else (-2.0, 2.0)
            b.add(f"{op}_keepdims{keep}", op, {"x": rand(rng, *shape, lo=lo, hi=hi)}, {"keepdims": keep},
                  initializers={"axes": np.array(axes, np.int64)})
        b.add(f"{op}_all", op, {"x": rand(rng, 3, 4, 5, lo=0.5, hi=1.5)})
    for op in SPLIT_OPS:  # 3 outputs of 12800 elements each: split into partial results
        b.add(f"{op}_split", op, {"x": rand(rng, 3, 8, 40, 40, lo=0.5, hi=1.5)}, {"keepdims": 0},
              initializers={"axes": np.array([1, 2, 3], np.int64)})
    b.add("ReduceL2_noop", "ReduceL2", {"x": rand(rng, 2, 3, 4)}, {"noop_with_empty_axes": 1})
    return b.run()


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reductions_match_onnxruntime(reductions, op):
    for case in (f"{op}_keepdims0", f"{op}_keepdims1", f"{op}_all"):
        reductions.check(case, **TOL)


@pytest.mark.parametrize("op", SPLIT_OPS)
def test_split_reductions_match_onnxruntime(reductions, op):
    reductions.check(f"{op}_split", rtol=2e-4, atol=1e-5)


def test_reductions_ran_as_gpu_kernels(reductions):
    k = reductions.gpu_kernels
    assert k.count("reduce_partial") == len(SPLIT_OPS) == k.count("reduce_finish")
    reductions.check("ReduceL2_noop", **TOL)  # no axes with noop_with_empty_axes: per element, |x|


@pytest.fixture(scope="module")
def layer_norms():
    rng = module_rng()
    b = Batch(opset=17)
    for axis, shape in ((-1, (2, 3, 4, 8)), (-2, (2, 3, 4, 8)), (1, (2, 3, 4, 8)), (-1, (1, 49, 96)), (3, (1, 7, 7, 64))):
        x = rand(rng, *shape) * 3 + 1
        norm = shape[axis % len(shape):]
        for bias in (True, False):
            inits = {"scale": rand(rng, *norm)} | ({"bias": rand(rng, *norm)} if bias else {})
            b.add(f"ln_axis{axis}_{len(shape)}d_bias{int(bias)}", "LayerNormalization", {"x": x},
                  {"axis": axis, "epsilon": float(rng.choice([1e-5, 1e-6]))}, initializers=inits)
    x = rand(rng, 2, 5, 16)
    b.add("ln_runtime_scale", "LayerNormalization", {"x": x, "scale": rand(rng, 16), "bias": rand(rng, 16)})
    return b.run()


def test_layer_norm_matches_onnxruntime(layer_norms):
    for case in layer_norms.outs:
        layer_norms.check(case, **TOL)
    assert layer_norms.gpu_kernels == ["layer_norm"] * len(layer_norms.outs)


def test_layer_norm_statistics_outputs(rng):
    """The optional Mean and InvStdDev outputs (shape x.shape[:axis] + 1s) on the CPU runtime."""
    axis = int(rng.integers(-3, 3))
    x = rand(rng, 2, 3, 6) * 3 + 1
    norm = x.shape[axis % 3:]
    check("LayerNormalization", {"x": x}, {"axis": axis}, initializers={"scale": rand(rng, *norm)},
          n_outputs=3, runtimes=("cpu",), **TOL)


def test_rms_norm(rng):
    """RMSNormalization (opset 23) on the CPU runtime."""
    axis = int(rng.integers(-3, 3))
    x = rand(rng, 2, 3, 6) * 3
    check("RMSNormalization", {"x": x}, {"axis": axis}, initializers={"scale": rand(rng, *x.shape[axis % 3:])},
          runtimes=("cpu",), opset=23, **TOL)


def _decomposed_layer_norm(rng, c, with_affine=True, pow_square=True):
    from onnx import TensorProto, helper, numpy_helper
    consts = {"axes": np.array([-1], np.int64), "two": np.array(2.0, np.float32),
              "eps": np.array(1e-5, np.float32)}
    nodes = [helper.make_node("ReduceMean", ["x", "axes"], ["m"]), helper.make_node("Sub", ["x", "m"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["p"]) if pow_square else helper.make_node("Mul", ["d", "d"], ["p"]),
             helper.make_node("ReduceMean", ["p", "axes"], ["v"]), helper.make_node("Add", ["v", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["s"]), helper.make_node("Div", ["d", "s"], ["y" if not with_affine else "n"])]
    if with_affine:
        consts.update(gamma=rand(rng, c), beta=rand(rng, c))
        nodes += [helper.make_node("Mul", ["n", "gamma"], ["g"]), helper.make_node("Add", ["g", "beta"], ["y"])]
    g = helper.make_graph(nodes, "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, c])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8  # readable by older onnxruntime releases too
    return m


@pytest.mark.parametrize("with_affine, pow_square", [(True, True), (False, True), (True, False)])
def test_layer_norm_pattern_is_fused(rng, with_affine, pow_square):
    model = _decomposed_layer_norm(rng, 16, with_affine, pow_square)
    x = rand(rng, 2, 5, 16) * 4 - 1
    graph = check_graph(model, {"x": x}, **TOL)
    assert [n.op_type for n in graph.nodes] == ["LayerNormalization"]


@pytest.mark.parametrize("p", [1, 2])
def test_lp_normalization(rng, p):
    x = rand(rng, 3, 4, 5)
    check("LpNormalization", {"x": x}, {"axis": int(rng.integers(-3, 3)), "p": p}, runtimes=("cpu",), **TOL)
