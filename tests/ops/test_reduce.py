"""ReduceMean on both runtimes against onnxruntime.

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
from tests.ophelpers import check, check_graph, make_model, rand, reference, run_with_local_sizes

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


# -- the other reductions, LayerNormalization and its fusion (CPU runtime; the GPU runtime has no
#    kernel for them yet: runtime "gpu" refuses them, cpu+gpu runs them on the CPU) ------------

@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                                "ReduceSumSquare", "ReduceLogSumExp"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_other_reductions_match_onnxruntime(rng, op, keepdims):
    x = rand(rng, 2, 3, 4, 5, lo=0.5, hi=1.5)
    axes = sorted(int(a) for a in rng.choice(4, size=int(rng.integers(1, 4)), replace=False))
    check(op, {"x": x}, {"keepdims": keepdims}, initializers={"axes": np.array(axes, np.int64)}, opset=18,
          runtimes=("cpu",), **TOL)


@pytest.mark.parametrize("axis", [-1, -2, 1])
def test_layer_norm_matches_onnxruntime(rng, axis):
    x = rand(rng, 2, 3, 4, 8) * 3 + 1
    norm = x.shape[axis % 4:]
    check("LayerNormalization", {"x": x}, {"axis": axis, "epsilon": 1e-5},
          initializers={"scale": rand(rng, *norm), "bias": rand(rng, *norm)}, runtimes=("cpu", "gpu"),
          gpu_native=False, **TOL)


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
    graph = check_graph(model, {"x": x}, runtimes=("cpu",), **TOL)
    assert [n.op_type for n in graph.nodes] == ["LayerNormalization"]
