"""Softmax, ReduceMean and Resize on both runtimes against onnxruntime.

Tolerances: fp32 storage rtol 1e-4 / atol 1e-5 for Softmax and ReduceMean (float accumulation
in a different order than onnxruntime), rtol 1e-4 / atol 1e-4 for Resize (separable vs. 2-D
weighting; nearest is exact); fp16 storage (data_type fp16_fp32, GPU only) rtol 1e-2 / atol 1e-2.
Every GPU check also asserts the node ran as a GPU kernel (no CPU fallback) unless the test is
about the fallback.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import mace
from mace.convert import convert
from tests.ophelpers import OPSET, check, check_graph, make_model, rand, reference, run_with_local_sizes

TOL = dict(rtol=1e-4, atol=1e-5)
FP16 = dict(data_type="fp16_fp32", runtimes=("gpu",), rtol=1e-2, atol=1e-2)




def rshape(rng, lo_rank=1, hi_rank=5, lo=1, hi=6):
    return tuple(int(d) for d in rng.integers(lo, hi + 1, size=int(rng.integers(lo_rank, hi_rank + 1))))


def gpu_engine(model, data_type="fp32_fp32"):
    return mace.Engine(convert(model, data_type=data_type), runtime="gpu", use_program_cache=False)


# -- Softmax ----------------------------------------------------------------------------------------------
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


# -- ReduceMean -------------------------------------------------------------------------------------------
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


# -- Resize -------------------------------------------------------------------------------------------------
TRANSFORMS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def resize(x, attrs, scales=None, sizes=None, opset=OPSET, **kw):
    if scales is not None:
        inits, order = {"scales": np.array(scales, np.float32)}, ["x", "", "scales"]
    else:
        inits, order = {"sizes": np.array(sizes, np.int64)}, ["x", "", "", "sizes"]
    return check("Resize", {"x": x}, attrs, initializers=inits, input_order=order, opset=opset, **kw)


@pytest.mark.parametrize("transform", TRANSFORMS + ["tf_half_pixel_for_nn"])
@pytest.mark.parametrize("nearest_mode", NEAREST)
def test_resize_nearest(rng, transform, nearest_mode):
    attrs = {"mode": "nearest", "coordinate_transformation_mode": transform, "nearest_mode": nearest_mode}
    x = rand(rng, 2, 3, 5, 6)
    resize(x, attrs, scales=[1, 1, 2.5, 0.5])                     # up and down by scales
    resize(x, attrs, sizes=[2, 3, 7, 13])                          # by sizes (non-integer ratios)
    resize(x, attrs, scales=[1, 1, 3, 2])


def test_resize_nearest_any_axis(rng):
    resize(rand(rng, 3, 4, 5), {"mode": "nearest"}, sizes=[5, 2, 9])  # every axis, rank 3
    resize(rand(rng, 2, 3, 2, 3, 4), {"mode": "nearest", "coordinate_transformation_mode": "asymmetric"},
           scales=[2, 1, 1.5, 2, 0.5])


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_resize_linear(rng, transform):
    attrs = {"mode": "linear", "coordinate_transformation_mode": transform}
    x = rand(rng, 2, 3, 5, 6)
    resize(x, attrs, scales=[1, 1, 2, 1.5])
    resize(x, attrs, sizes=[2, 3, 3, 4])                           # downsampling
    resize(x, attrs, sizes=[2, 3, 1, 9])                           # a length-1 output axis
    resize(rand(rng, 4, 7), attrs, sizes=[9, 3])                   # rank 2


def test_resize_linear_other_layouts(rng):
    x = rand(rng, 2, 5, 6, 3)
    resize(x, {"mode": "linear"}, scales=[1, 2, 1.5, 1])          # NHWC: H and W in the middle
    resize(rand(rng, 3, 4, 5), {"mode": "linear"}, scales=[1, 1, 2])  # one trailing axis
    resize(rand(rng, 2, 3, 4, 5, 6), {"mode": "linear"}, sizes=[2, 3, 4, 7, 4])  # rank 5, last two
    # trilinear on a 3-D tensor: the GPU kernel takes at most two axes, so that node runs on the CPU
    x = rand(rng, 3, 4, 5)
    graph = resize(x, {"mode": "linear"}, scales=[2, 2, 2], gpu_native=False)
    assert mace.Engine(graph, runtime="cpu+gpu", use_program_cache=False).executor.fallback_nodes == [graph.nodes[0].name]


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("a,exclude", [(-0.75, 0), (-0.5, 1)])
def test_resize_cubic(rng, transform, a, exclude):
    attrs = {"mode": "cubic", "coordinate_transformation_mode": transform, "cubic_coeff_a": a,
             "exclude_outside": exclude}
    x = rand(rng, 1, 2, 5, 6)
    resize(x, attrs, scales=[1, 1, 2, 1.5])
    resize(x, attrs, sizes=[1, 2, 9, 7])


def test_resize_half_pixel_symmetric(rng):
    x = rand(rng, 1, 2, 5, 6)
    for mode in ("nearest", "linear"):
        resize(x, {"mode": mode, "coordinate_transformation_mode": "half_pixel_symmetric"},
               scales=[1, 1, 2, 0.6], opset=19)


def test_upsample_opset9(rng):
    x = rand(rng, 1, 2, 3, 4)
    model = make_model("Upsample", {"x": x}, {"mode": "nearest"},
                       {"scales": np.array([1, 1, 2, 3], np.float32)}, opset=9)
    graph = check_graph(model, {"x": x})
    assert graph.nodes[0].op_type == "Resize"


def test_resize_fp16(rng):
    x = rand(rng, 1, 3, 5, 6)
    resize(x, {"mode": "nearest"}, scales=[1, 1, 2, 2], **FP16)
    resize(x, {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, sizes=[1, 3, 9, 4], **FP16)
    resize(x, {"mode": "cubic"}, scales=[1, 1, 2, 2], **FP16)


def test_resize_after_conv_like_chain(rng):
    """Resize -> Add (a skip connection as in FPN / U-Net decoders), linear, both runtimes."""
    x, skip = rand(rng, 1, 4, 5, 6), rand(rng, 1, 4, 10, 12)
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["u"], mode="linear"),
             helper.make_node("Add", ["u", "skip"], ["y"])]
    g = helper.make_graph(nodes, "up", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
                                        helper.make_tensor_value_info("skip", TensorProto.FLOAT, skip.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    check_graph(m, {"x": x, "skip": skip})


@pytest.mark.parametrize("cap", [1, 3, 8])
def test_any_local_size(rng, cap):
    s = lambda *v: np.array(v, np.float32)
    cases = [("Softmax", {"x": rand(rng, 2, 5, 6)}, {"axis": 1}, None, None),
             ("ReduceMean", {"x": rand(rng, 2, 3, 4, 5)}, {"axes": [1, 3]}, None, None),
             ("ReduceMean", {"x": rand(rng, 2, 8, 40, 40)}, {"axes": [1, 2, 3]}, None, None),  # split
             ("Resize", {"x": rand(rng, 1, 2, 5, 6)}, {"mode": "nearest"}, {"s": s(1, 1, 2, 1.5)}, ["x", "", "s"]),
             ("Resize", {"x": rand(rng, 1, 2, 5, 6)}, {"mode": "cubic"}, {"s": s(1, 1, 2, 1.5)}, ["x", "", "s"]),
             ("Resize", {"x": rand(rng, 1, 5, 6, 4)}, {"mode": "linear"}, {"s": s(1, 2, 1.5, 1)}, ["x", "", "s"])]
    for op, feeds, attrs, inits, order in cases:
        model = make_model(op, feeds, attrs, inits, 1, order)
        np.testing.assert_allclose(run_with_local_sizes(model, feeds, cap)["out0"], reference(model, feeds)[0],
                                   rtol=1e-4, atol=1e-5, err_msg=op)
