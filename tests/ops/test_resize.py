"""Resize (and Upsample) on both runtimes against onnxruntime.

Tolerances: fp32 storage rtol 1e-4 / atol 1e-4 (separable vs. 2-D weighting; nearest is exact);
fp16 storage (data_type fp16_fp32, GPU only) rtol 1e-2 / atol 1e-2.
Every GPU check also asserts the node ran as a GPU kernel (no CPU fallback) unless the test is
about the fallback.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import mace
from tests.ophelpers import OPSET, check, check_graph, make_model, rand, reference, run_with_local_sizes

FP16 = dict(data_type="fp16_fp32", runtimes=("gpu",), rtol=1e-2, atol=1e-2)

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
    _any_local_size(rng, cap, [
        ("Resize", {"x": rand(rng, 1, 2, 5, 6)}, {"mode": "nearest"}, {"s": s(1, 1, 2, 1.5)}, ["x", "", "s"]),
        ("Resize", {"x": rand(rng, 1, 2, 5, 6)}, {"mode": "cubic"}, {"s": s(1, 1, 2, 1.5)}, ["x", "", "s"]),
        ("Resize", {"x": rand(rng, 1, 5, 6, 4)}, {"mode": "linear"}, {"s": s(1, 2, 1.5, 1)}, ["x", "", "s"])])


def _any_local_size(rng, cap, cases):
    for op, feeds, attrs, inits, order in cases:
        model = make_model(op, feeds, attrs, inits, 1, order)
        np.testing.assert_allclose(run_with_local_sizes(model, feeds, cap)["out0"], reference(model, feeds)[0],
                                   rtol=1e-4, atol=1e-5, err_msg=op)


def _graph(nodes, inits, x_shape, inputs=()):
    from onnx import numpy_helper
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape), *inputs],
                          [helper.make_empty_tensor_value_info("y")],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    return m


def test_resize_sizes_and_range_computed_from_constants_fold(rng):
    """sizes computed from the static input shape (Shape -> Cast -> Mul -> Cast) and a Range over
    the resized width fold at conversion: the model runs Resize and Add only, on both runtimes."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["sf", "scale"], ["sc"]), helper.make_node("Cast", ["sc"], ["sz"], to=TensorProto.INT64),
             helper.make_node("Resize", ["x", "", "", "sz"], ["r"], mode="linear"),
             helper.make_node("Shape", ["r"], ["rs"]), helper.make_node("Gather", ["rs", "i3"], ["w"], axis=0),
             helper.make_node("Range", ["zero", "w", "one"], ["rg"]),
             helper.make_node("Cast", ["rg"], ["rgf"], to=TensorProto.FLOAT), helper.make_node("Add", ["r", "rgf"], ["y"])]
    inits = {"scale": np.array([1, 1, 2, 1.5], np.float32), "i3": np.array(3, np.int64),
             "zero": np.array(0, np.int64), "one": np.array(1, np.int64)}
    x = rand(rng, 1, 3, 4, 6)
    graph = check_graph(_graph(nodes, inits, [1, 3, 4, 6]), {"x": x})
    assert [n.op_type for n in graph.nodes] == ["Resize", "Add"] and graph.shapes["y"] == [1, 3, 8, 9]


@pytest.mark.parametrize("op", ["Resize", "Range"])
def test_run_time_scales_or_range_bounds_are_refused_by_name(op):
    """Truly run-time scales (or Range bounds) make the output's shape unknown until run time: a
    one-line ConversionError names the input to make constant."""
    from mace.convert import convert
    from mace.errors import ConversionError
    if op == "Resize":
        nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"])]
        extra = [helper.make_tensor_value_info("scales", TensorProto.FLOAT, [4])]
        want = r"Resize.*depends on the run-time value scales \(input 2\).*make scales a constant"
    else:
        nodes = [helper.make_node("Range", ["zero", "n", "one"], ["r"]),
                 helper.make_node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT), helper.make_node("Add", ["x", "rf"], ["y"])]
        extra = [helper.make_tensor_value_info("n", TensorProto.FLOAT, [])]
        want = r"Range.*depends on the run-time value n \(input 1\).*make n a constant"
    inits = {} if op == "Resize" else {"zero": np.array(0, np.float32), "one": np.array(1, np.float32)}
    with pytest.raises(ConversionError, match=want) as info:
        convert(_graph(nodes, inits, [1, 3, 4, 4], extra))
    assert "\n" not in str(info.value)
