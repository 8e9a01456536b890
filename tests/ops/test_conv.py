"""Conv on both runtimes against onnxruntime (ConvTranspose: test_deconv.py).

Shapes and values are random (the `rng` fixture: a fresh seed per test, printed on failure);
the kernel geometry of each case is fixed so that the GPU compiles few distinct programs.
Covered: pointwise 1x1 (GEMM variant), 1x1 strided, 3x3 / 5x5 / 7x7 direct, strided, dilated,
asymmetric pads, auto_pad SAME_UPPER / SAME_LOWER / VALID, grouped, depthwise (stride 1 and 2,
dilated, channel multiplier), tiny spatial sizes (vector width 1 paths), batch > 1, with and
without bias, 1-D conv, fused activations (Conv -> Relu / Clip(0, 6) / LeakyRelu converted into one
node), residual Conv -> Add (-> Relu) folded into one Conv (and the cases that must not fold),
fp16 storage, the Winograd F(2x2,3x3) variants `winograd` and `gpu_winograd` forced (pads, partial
tiles, ragged channels, batch, Relu, residual, fp16), the 128x128-tile GEMM variants forced (partial
tiles in M and N, K not a multiple of 16, stride 2, batch 2, Relu, residual, fp16), the variant
lists a GPU gets (device faked).

Tolerances: fp32 rtol 1e-4 / atol 1e-4 * max(1, sqrt(K) / 4) where K = Cg*KH*KW terms in a sum of
products of values in [-1, 1] (float32 accumulation order differs from onnxruntime);
fp16 storage (data_type fp16_fp32, GPU only): rtol 1e-2 / atol 1e-2 * max(1, sqrt(K) / 4).
The `winograd` variant keeps these tolerances: its transforms (sums of up to 4 inputs, 9 products)
change the rounding, but over 25 random 3x3 convs its worst error beyond rtol was 1% of atol in
fp32 and 27% in fp16 (4x the direct kernel's: V and the GEMM outputs are rounded to half between
its launches), so the formula still leaves a 3.5x margin.
Every GPU check asserts that no node fell back to the CPU runtime.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import mace
from mace.convert import convert
from tests.ophelpers import OPSET, make_model, rand, reference


def _tol(k_terms: int, base: float) -> float:
    return base * max(1.0, math.sqrt(k_terms) / 4)


def check_graph(model, feeds, runtimes=("cpu", "gpu"), rtol=1e-4, atol=1e-4, data_type="fp32_fp32"):
    """Convert once, run on each runtime, compare with onnxruntime; no GPU fallback allowed."""
    want = reference(model, feeds)
    graph = convert(model, data_type=data_type)
    for rt in runtimes:
        engine = mace.Engine(graph, runtime=rt, use_program_cache=False)
        if rt == "gpu":
            assert not engine.executor.fallback_nodes, f"fell back to the CPU: {engine.executor.fallback_nodes}"
        outs = engine.run(feeds)
        got = [outs[o] for o in graph.outputs]
        for g, w in zip(got, want):
            assert g.shape == w.shape, f"{rt}: shape {g.shape} != {w.shape}"
            np.testing.assert_allclose(g, w.astype(np.float32), rtol=rtol, atol=atol, err_msg=f"runtime={rt}")
    return graph


def conv_case(rng, x_shape, w_shape, attrs, bias=True, runtimes=("cpu", "gpu"), **kw):
    x = rand(rng, *x_shape)
    inits = {"W": rand(rng, *w_shape)}
    if bias:
        inits["B"] = rand(rng, w_shape[0])
    k_terms = int(np.prod(w_shape[1:]))
    model = make_model("Conv", {"X": x}, attrs, inits)
    tol = dict(rtol=1e-4, atol=_tol(k_terms, 1e-4))
    tol.update(kw)
    return check_graph(model, {"X": x}, runtimes, **tol)


def _r(rng, lo, hi):
    return int(rng.integers(lo, hi + 1))


CONV_CASES = {
    # name: (x shape (lambda rng), w shape (lambda c), attrs, bias)
    "pointwise": (lambda r: (1, _r(r, 3, 24), _r(r, 5, 20), _r(r, 5, 20)), lambda c: (12, c, 1, 1), {}, True),
    "pointwise_nobias_batch2": (lambda r: (2, _r(r, 3, 16), _r(r, 4, 12), _r(r, 4, 12)), lambda c: (5, c, 1, 1), {}, False),
    "1x1_stride2": (lambda r: (1, 8, _r(r, 6, 20), _r(r, 6, 20)), lambda c: (10, c, 1, 1), {"strides": [2, 2]}, True),
    "3x3_pad1": (lambda r: (1, _r(r, 2, 12), _r(r, 5, 20), _r(r, 5, 40)), lambda c: (16, c, 3, 3), {"pads": [1, 1, 1, 1]}, True),
    "3x3_s2_asym": (lambda r: (2, 5, _r(r, 6, 20), _r(r, 6, 40)), lambda c: (7, c, 3, 3),
                    {"strides": [2, 2], "pads": [0, 1, 2, 0]}, False),
    "3x3_dilated": (lambda r: (1, 4, _r(r, 8, 16), _r(r, 8, 24)), lambda c: (9, c, 3, 3),
                    {"dilations": [2, 3], "pads": [2, 3, 1, 2]}, True),
    "5x5_s1": (lambda r: (1, 3, _r(r, 5, 18), _r(r, 5, 18)), lambda c: (6, c, 5, 5), {"pads": [2, 2, 2, 2]}, True),
    "7x7_s2": (lambda r: (1, 3, _r(r, 16, 40), _r(r, 16, 40)), lambda c: (8, c, 7, 7),
               {"strides": [2, 2], "pads": [3, 3, 3, 3]}, True),
    "3x3_s3_gather": (lambda r: (1, 4, _r(r, 9, 30), _r(r, 9, 30)), lambda c: (6, c, 3, 3), {"strides": [3, 3]}, True),
    "grouped": (lambda r: (1, 12, _r(r, 5, 14), _r(r, 5, 30)), lambda c: (18, 4, 3, 3),
                {"group": 3, "pads": [1, 1, 1, 1]}, True),
    "grouped_1x1": (lambda r: (1, 8, _r(r, 4, 10), _r(r, 4, 20)), lambda c: (6, 4, 1, 1), {"group": 2}, True),
    "depthwise_s1": (lambda r: (1, 10, _r(r, 4, 20), _r(r, 4, 40)), lambda c: (10, 1, 3, 3),
                     {"group": 10, "pads": [1, 1, 1, 1]}, True),
    "depthwise_s2_asym_batch2": (lambda r: (2, 6, _r(r, 7, 20), _r(r, 7, 40)), lambda c: (6, 1, 3, 3),
                                 {"group": 6, "strides": [2, 2], "pads": [0, 0, 1, 1]}, False),
    "depthwise_5x5_dilated": (lambda r: (1, 5, _r(r, 10, 20), _r(r, 10, 30)), lambda c: (5, 1, 5, 5),
                              {"group": 5, "dilations": [2, 2], "pads": [4, 4, 4, 4]}, True),
    "depthwise_multiplier2": (lambda r: (1, 4, _r(r, 5, 12), _r(r, 5, 20)), lambda c: (8, 1, 3, 3),
                              {"group": 4, "pads": [1, 1, 1, 1]}, True),
    "depthwise_tiny": (lambda r: (1, 3, _r(r, 1, 3), _r(r, 1, 3)), lambda c: (3, 1, 3, 3),
                       {"group": 3, "pads": [1, 1, 1, 1]}, True),
    # strides other than 1 and 2 (and SH != SW) take depthwise.cl's lane-by-lane body
    "depthwise_s3_s1": (lambda r: (1, 4, _r(r, 9, 24), _r(r, 5, 24)), lambda c: (4, 1, 3, 3),
                        {"group": 4, "strides": [3, 1], "pads": [1, 0, 2, 1]}, True),
    "tiny_spatial": (lambda r: (1, 6, _r(r, 1, 3), _r(r, 1, 3)), lambda c: (5, c, 3, 3), {"pads": [1, 1, 1, 1]}, True),
    "same_upper": (lambda r: (1, 4, _r(r, 5, 17), _r(r, 5, 17)), lambda c: (6, c, 4, 4),
                   {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, True),
    "same_lower": (lambda r: (1, 4, _r(r, 5, 17), _r(r, 5, 17)), lambda c: (6, c, 4, 4),
                   {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, True),
    "valid": (lambda r: (1, 4, _r(r, 5, 17), _r(r, 5, 17)), lambda c: (6, c, 3, 3), {"auto_pad": "VALID"}, True),
    "conv1d": (lambda r: (2, 4, _r(r, 8, 40)), lambda c: (6, c, 3), {"pads": [1, 2], "strides": [2]}, True),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv(rng, case):
    xs, ws, attrs, bias = CONV_CASES[case]
    x_shape = xs(rng)
    conv_case(rng, x_shape, ws(x_shape[1]), attrs, bias)


def test_conv_gpu_variants(rng):
    """Depthwise convs get the depthwise kernel, 1x1 the GEMM one; other convs offer the tuner
    `direct` and `im2col`, and both are right."""
    from mace.runtime.opencl.ops.conv import ConvOp
    x = rand(rng, 1, 6, _r(rng, 5, 12), _r(rng, 5, 40))
    cases = (((6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}, ["depthwise", "gpu_depthwise"]),
             ((4, 6, 1, 1), {}, ["pointwise", "gpu_gemm", "gpu_gemm_t32", "gpu_gemm_t128"]),
             ((9, 6, 3, 3), {"pads": [1, 0, 1, 2], "strides": [1, 2]},
              ["direct", "im2col", "gpu_direct", "gpu_direct_t32", "gpu_im2col", "gpu_direct_t128"]))
    for w_shape, attrs, want in cases:
        model = make_model("Conv", {"X": x}, attrs, {"W": rand(rng, *w_shape), "B": rand(rng, w_shape[0])})
        ref = reference(model, {"X": x})[0]
        eng = mace.Engine(convert(model), runtime="gpu", use_program_cache=False)
        (name, op), = [(k, v) for k, v in eng.executor.ops.items() if isinstance(v, ConvOp)]
        assert sorted(op.variants()) == sorted(want)
        for variant in want:
            op.use_variant(variant)
            eng.executor.rebind(name)
            got = eng.run({"X": x})[eng.graph.outputs[0]]
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=_tol(54, 1e-4), err_msg=variant)


#: 128x128-tile builds compile slowest on PoCL (~2 s each) and differ from the 64x64 one only in TM:
#: check_variants leaves them to their own tests (test_conv_gpu_t128)
T128 = ("gpu_gemm_t128", "gpu_direct_t128")


def check_variants(model, feeds, atol, rtol=1e-4, data_type="fp32_fp32", op_type="Conv"):
    """Run every variant the GPU op offers but T128 (on PoCL: the CPU-style defaults and the
    GPU-style local-memory ones) against onnxruntime; returns the variant names."""
    want = reference(model, feeds)[0].astype(np.float32)
    eng = mace.Engine(convert(model, data_type=data_type), runtime="gpu", use_program_cache=False)
    assert not eng.executor.fallback_nodes
    (name, op), = [(k, v) for k, v in eng.executor.ops.items() if v.node.op_type == op_type]
    variants = [v for v in op.variants() if v not in T128]
    for variant in variants:
        op.use_variant(variant)
        eng.executor.rebind(name)
        got = eng.run(feeds)[eng.graph.outputs[0]]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"variant={variant}")
    return variants


GPU_VARIANT_CASES = ["pointwise", "pointwise_nobias_batch2", "1x1_stride2", "3x3_s2_asym", "3x3_dilated", "7x7_s2",
                     "3x3_s3_gather", "grouped", "grouped_1x1", "depthwise_s2_asym_batch2", "depthwise_5x5_dilated",
                     "depthwise_multiplier2", "depthwise_tiny", "tiny_spatial", "same_lower", "conv1d"]


@pytest.mark.parametrize("case", GPU_VARIANT_CASES)
def test_conv_all_gpu_variants(rng, case):
    """Every variant (gpu_gemm / gpu_gemm_t32 for 1x1, gpu_direct / gpu_direct_t32 / gpu_im2col for
    the others, gpu_depthwise) is right on PoCL, tile edges and zero padding included."""
    xs, ws, attrs, bias = CONV_CASES[case]
    x = rand(rng, *xs(rng))
    w_shape = ws(x.shape[1])
    inits = {"W": rand(rng, *w_shape)}
    if bias:
        inits["B"] = rand(rng, w_shape[0])
    model = make_model("Conv", {"X": x}, attrs, inits)
    variants = check_variants(model, {"X": x}, atol=_tol(int(np.prod(w_shape[1:])), 1e-4))
    assert any(v.startswith("gpu_") for v in variants), variants


def test_conv_gpu_variants_wide(rng):
    """Several tiles along M, P and K (Mg > 64, P > 64, K > 16 not a multiple of 16), batch 2."""
    x = rand(rng, 2, 37, _r(rng, 9, 13), _r(rng, 9, 13))
    for w_shape, attrs in (((70, 37, 1, 1), {}), ((67, 37, 3, 3), {"pads": [1, 1, 1, 1]})):
        model = make_model("Conv", {"X": x}, attrs, {"W": rand(rng, *w_shape), "B": rand(rng, w_shape[0])})
        check_variants(model, {"X": x}, atol=_tol(int(np.prod(w_shape[1:])), 1e-4))


@pytest.mark.parametrize("w_shape,attrs", [
    ((16, 6, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((12, 6, 1, 1), {}),
])
def test_conv_gpu_variants_fp16_act(rng, w_shape, attrs):
    """Every variant with fp16 storage and a fused Clip(0, 6)."""
    x = rand(rng, 1, 6, _r(rng, 5, 20), _r(rng, 5, 40), lo=-3, hi=3)
    model = _conv_act_model(rng, x, w_shape, attrs, _relu6)
    k = int(np.prod(w_shape[1:]))
    check_variants(model, {"X": x}, rtol=1e-2, atol=_tol(k, 3e-2), data_type="fp16_fp32")


def _conv_act_model(rng, x, w_shape, attrs, act_nodes):
    """Conv -> activation node(s) as a 2-node ONNX model."""
    inits = [numpy_helper.from_array(rand(rng, *w_shape), "W"), numpy_helper.from_array(rand(rng, w_shape[0]), "B")]
    nodes = [helper.make_node("Conv", ["X", "W", "B"], ["c"], **attrs)]
    nodes += act_nodes("c", "Y", inits)
    g = helper.make_graph(nodes, "conv_act", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    return m


def _relu(i, o, inits):
    return [helper.make_node("Relu", [i], [o])]


def _relu6(i, o, inits):
    inits += [numpy_helper.from_array(np.array(0.0, np.float32), "lo"), numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    return [helper.make_node("Clip", [i, "lo", "hi"], [o])]


def _leaky(i, o, inits):
    return [helper.make_node("LeakyRelu", [i], [o], alpha=0.1)]


@pytest.mark.parametrize("act,attrs,w_shape", [
    (_relu, {"pads": [1, 1, 1, 1]}, (8, 5, 3, 3)),
    (_relu6, {"group": 5, "pads": [1, 1, 1, 1]}, (5, 1, 3, 3)),
    (_relu6, {}, (8, 5, 1, 1)),
    (_leaky, {"strides": [2, 2]}, (4, 5, 3, 3)),
])
def test_conv_fused_activation(rng, act, attrs, w_shape):
    x = rand(rng, 1, 5, _r(rng, 6, 14), _r(rng, 6, 30), lo=-3, hi=3)
    model = _conv_act_model(rng, x, w_shape, attrs, act)
    graph = check_graph(model, {"X": x}, atol=_tol(int(np.prod(w_shape[1:])), 3e-4))
    assert [n.op_type for n in graph.nodes] == ["Conv"]
    assert graph.nodes[0].attrs["activation"] in ("Relu", "Clip", "LeakyRelu")


@pytest.mark.parametrize("w_shape,attrs", [
    ((16, 6, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((12, 6, 1, 1), {}),
])
def test_conv_fp16(rng, w_shape, attrs):
    x = rand(rng, 1, 6, _r(rng, 5, 20), _r(rng, 5, 40))
    k = int(np.prod(w_shape[1:]))
    conv_case(rng, x.shape, w_shape, attrs, runtimes=("gpu",), data_type="fp16_fp32",
              rtol=1e-2, atol=_tol(k, 1e-2))


# -- residual Add folded into the producing Conv (fuse_residual_add) --------------------------

def _residual_model(rng, x, w_shape, attrs, relu_after=True, bias=True, conv_relu=False, res_shape=None,
                    conv_read_twice=False, swap=False):
    """X -> Conv -> c;  X -> Conv(1x1 side branch, or a broadcast input R) -> r;  Add(c, r) [-> Relu] -> Y."""
    m = w_shape[0]
    inits = [numpy_helper.from_array(rand(rng, *w_shape), "W")]
    conv_in = ["X", "W"]
    if bias:
        inits.append(numpy_helper.from_array(rand(rng, m), "B"))
        conv_in.append("B")
    nodes = [helper.make_node("Conv", conv_in, ["c0"], **attrs)]
    c = "c0"
    if conv_relu:
        nodes.append(helper.make_node("Relu", ["c0"], ["c"]))
        c = "c"
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape)]
    feeds = {"X": x}
    if res_shape is not None:  # a broadcast graph input
        feeds["R"] = rand(rng, *res_shape)
        inputs.append(helper.make_tensor_value_info("R", TensorProto.FLOAT, res_shape))
        r = "R"
    else:  # a side branch of the same shape as the conv output, produced AFTER the conv
        inits.append(numpy_helper.from_array(rand(rng, 1, x.shape[1], 1, 1), "Ws"))
        nodes.append(helper.make_node("Mul", ["X", "Ws"], ["xs"]))
        r = "xs"
    add_in = [r, c] if swap else [c, r]
    nodes.append(helper.make_node("Add", add_in, ["s"] if relu_after else ["Y"]))
    if relu_after:
        nodes.append(helper.make_node("Relu", ["s"], ["Y"]))
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)]
    if conv_read_twice:
        nodes.append(helper.make_node("Sigmoid", [c], ["Z"]))
        outputs.append(helper.make_tensor_value_info("Z", TensorProto.FLOAT, None))
    g = helper.make_graph(nodes, "conv_residual", inputs, outputs, initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model, feeds


RESIDUAL_CASES = [
    # (w shape for C=6, attrs): residual shape must equal the conv output -> same spatial size
    ((6, 6, 3, 3), {"pads": [1, 1, 1, 1]}),                     # direct / im2col / gpu_direct*
    ((6, 6, 1, 1), {}),                                         # pointwise / gpu_gemm*
    ((6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),         # depthwise / gpu_depthwise
    ((6, 3, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}),         # grouped
]


@pytest.mark.parametrize("w_shape,attrs", RESIDUAL_CASES)
@pytest.mark.parametrize("relu_after", [True, False])
def test_conv_residual_fused(rng, w_shape, attrs, relu_after):
    """Conv -> Add (-> Relu) becomes one Conv with `residual` (and the Relu), right on both runtimes
    and every GPU variant."""
    x = rand(rng, 1, 6, _r(rng, 5, 12), _r(rng, 5, 40))
    model, feeds = _residual_model(rng, x, w_shape, attrs, relu_after=relu_after, bias=relu_after,
                                   swap=not relu_after)
    k = int(np.prod(w_shape[1:]))
    graph = check_graph(model, feeds, atol=_tol(k, 2e-4))
    ops = [n.op_type for n in graph.nodes]
    assert "Add" not in ops and "Relu" not in ops, ops
    (conv,) = [n for n in graph.nodes if n.op_type == "Conv"]
    assert conv.attrs.get("residual") == 1 and len(conv.inputs) == 4
    assert conv.attrs.get("activation") == ("Relu" if relu_after else None)
    variants = check_variants(model, feeds, atol=_tol(k, 2e-4))
    assert any(v.startswith("gpu_") for v in variants) and any(not v.startswith("gpu_") for v in variants)


@pytest.mark.parametrize("w_shape,attrs", RESIDUAL_CASES[:3])
def test_conv_residual_fp16(rng, w_shape, attrs):
    x = rand(rng, 1, 6, _r(rng, 5, 12), _r(rng, 5, 40))
    model, feeds = _residual_model(rng, x, w_shape, attrs)
    k = int(np.prod(w_shape[1:]))
    graph = check_graph(model, feeds, runtimes=("gpu",), data_type="fp16_fp32", rtol=1e-2, atol=_tol(k, 2e-2))
    assert "Add" not in [n.op_type for n in graph.nodes]
    check_variants(model, feeds, rtol=1e-2, atol=_tol(k, 2e-2), data_type="fp16_fp32")


def test_conv_residual_wide_batch2(rng):
    """Several GEMM tiles along M and P, batch 2, every variant."""
    x = rand(rng, 2, 37, _r(rng, 9, 13), _r(rng, 9, 13))
    for w_shape, attrs in (((37, 37, 1, 1), {}), ((37, 37, 3, 3), {"pads": [1, 1, 1, 1]})):
        model, feeds = _residual_model(rng, x, w_shape, attrs)
        k = int(np.prod(w_shape[1:]))
        graph = check_graph(model, feeds, atol=_tol(k, 2e-4))
        assert "Add" not in [n.op_type for n in graph.nodes]
        check_variants(model, feeds, atol=_tol(k, 2e-4))


@pytest.mark.parametrize("kind", ["broadcast", "read_twice", "conv_relu"])
def test_conv_residual_not_fused(rng, kind):
    """An Add that broadcasts, a conv output with a second reader, a conv with its own Relu: the
    Add stays."""
    x = rand(rng, 1, 6, _r(rng, 5, 12), _r(rng, 5, 20))
    kw = {"broadcast": dict(res_shape=(1, 6, 1, 1)), "read_twice": dict(conv_read_twice=True),
          "conv_relu": dict(conv_relu=True)}[kind]
    model, feeds = _residual_model(rng, x, (6, 6, 3, 3), {"pads": [1, 1, 1, 1]}, **kw)
    graph = check_graph(model, feeds, atol=_tol(54, 2e-4))
    assert "Add" in [n.op_type for n in graph.nodes]
    assert not any(n.attrs.get("residual") for n in graph.nodes)


def test_conv_with_runtime_weights_falls_back_to_the_cpu(rng, caplog):
    """Weights computed at run time (a graph input here) cannot be baked into the GPU kernels:
    the node runs on the CPU runtime with an info line, and the result still matches."""
    import logging

    import mace
    from mace.convert import convert
    from tests.ophelpers import make_model, reference
    x = rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
    w = rng.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
    model = make_model("Conv", {"x": x, "w": w}, {"pads": [1, 1, 1, 1]})
    graph = convert(model)
    with caplog.at_level(logging.INFO, logger="mace"):
        engine = mace.Engine(graph, runtime="cpu+gpu", use_program_cache=False)
    assert engine.executor.fallback_nodes == [graph.nodes[0].name]
    assert "falls back to the CPU runtime" in caplog.text
    got = engine.run({"x": x, "w": w})[graph.outputs[0]]
    np.testing.assert_allclose(got, reference(model, {"x": x, "w": w})[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cin, residual, data_type", [(32, False, "fp32_fp32"), (21, True, "fp32_fp32"),
                                                      (40, True, "fp16_fp32")])
def test_conv_split_k_variant(rng, cin, residual, data_type):
    """gpu_direct_splitk (K cut into slices whose partial sums a second kernel adds, with bias,
    residual and activation) matches onnxruntime, K not a multiple of the slice included."""
    from onnx import TensorProto, helper, numpy_helper
    x = rng.uniform(-1, 1, (1, cin, 9, 7)).astype(np.float32)
    w = rng.uniform(-0.3, 0.3, (24, cin, 3, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, (24,)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)]
    feeds = {"x": x}
    if residual:
        r = rng.uniform(-1, 1, (1, 24, 9, 7)).astype(np.float32)
        nodes += [helper.make_node("Add", ["c", "r"], ["a"]), helper.make_node("Relu", ["a"], ["y"])]
        inputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, r.shape))
        feeds["r"] = r
    else:
        nodes += [helper.make_node("Relu", ["c"], ["y"])]
    g = helper.make_graph(nodes, "splitk", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    tol = 1e-2 if data_type == "fp16_fp32" else 1e-4
    assert "gpu_direct_splitk" in check_variants(m, feeds, atol=tol, rtol=tol, data_type=data_type)


# -- Winograd F(2x2,3x3) (variant `winograd`, offered to the tuner, never the default) -----------

def check_forced(model, feeds, variant, kernels, atol, rtol=1e-4, data_type="fp32_fp32", default=False):
    """Force `variant` on the model's Conv and compare with onnxruntime (with `default`, the default
    variant first); the output buffer is filled with NaN first, so every element must be written,
    and the op's launches must run `kernels`. `gpu_winograd`, offered on GPUs only, is added to a
    CPU device's list here. Returns the op."""

    from mace.runtime.opencl.ops.conv import ConvOp
    want = reference(model, feeds)[0].astype(np.float32)
    eng = mace.Engine(convert(model, data_type=data_type), runtime="gpu", use_program_cache=False)
    assert not eng.executor.fallback_nodes
    (name, op), = [(k, v) for k, v in eng.executor.ops.items() if isinstance(v, ConvOp)]
    out = eng.graph.outputs[0]
    if default:
        np.testing.assert_allclose(eng.run(feeds)[out], want, rtol=rtol, atol=atol, err_msg=op.variant)
    if variant in WINOGRAD_VARIANTS and op.rt.caps.max_vector_width < 8:
        assert variant not in op.variants()  # its transforms need 8-wide vectors
        return None
    if variant == "gpu_winograd" and op.rt.caps.is_cpu:
        assert variant not in op.variants()
        op._variants.append(variant)
    op.use_variant(variant)
    eng.executor.rebind(name)
    assert [l.kernel.function_name for l in eng.executor.launches_of(name)] == kernels
    eng.executor.write_value(out, np.full(want.shape, np.nan, np.float32))
    got = eng.run(feeds)[out]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=variant)
    return op


WINOGRAD_VARIANTS = ("winograd", "gpu_winograd")


def check_winograd(model, feeds, atol, rtol=1e-4, data_type="fp32_fp32", variant="winograd"):
    """Force a Winograd variant (its 16 GEMMs: conv.cl's conv2d or gpu_conv.cl's gemm_conv) after
    the default variant ran; both compared with onnxruntime."""
    gemm = "conv2d" if variant == "winograd" else "gemm_conv"
    op = check_forced(model, feeds, variant, ["winograd_input", gemm, "winograd_output"], atol, rtol, data_type,
                      default=True)
    assert op is None or ("winograd" in op.variants() and op.variants()[0] not in WINOGRAD_VARIANTS)


WINOGRAD_CASES = {
    # name: (x shape (lambda rng), M, pads); the widths pick the transforms' paths: rows of fewer
    # than 4 tiles (partial steps), 4..7 (4-tile vectors), 8+ (8-tile vectors, strips inside the image)
    "pads1": (lambda r: (1, _r(r, 2, 12), _r(r, 5, 20), _r(r, 18, 40)), 16, [1, 1, 1, 1]),
    "no_pads": (lambda r: (1, 6, _r(r, 4, 20), _r(r, 20, 40)), 8, [0, 0, 0, 0]),
    "asym_pads": (lambda r: (1, 4, _r(r, 5, 20), _r(r, 8, 40)), 6, [0, 2, 1, 0]),
    "odd_output": (lambda r: (1, 3, 2 * _r(r, 2, 8) + 1, 2 * _r(r, 9, 20) + 1), 5, [0, 0, 0, 0]),
    "ragged_channels": (lambda r: (1, 13, _r(r, 6, 15), _r(r, 30, 45)), 11, [1, 1, 1, 1]),
    "batch2": (lambda r: (2, 7, _r(r, 5, 12), _r(r, 9, 15)), 9, [1, 0, 1, 1]),
    "narrow": (lambda r: (1, 5, _r(r, 1, 6), _r(r, 1, 6)), 3, [1, 1, 1, 1]),
    "wide_channels": (lambda r: (1, 70, _r(r, 6, 9), _r(r, 6, 9)), 37, [1, 1, 1, 1]),
    "many_outputs": (lambda r: (1, 9, _r(r, 13, 17), _r(r, 13, 17)), 70, [1, 1, 1, 1]),  # 2 GEMM tiles in M and T
}


@pytest.mark.parametrize("variant", WINOGRAD_VARIANTS)
@pytest.mark.parametrize("case", sorted(WINOGRAD_CASES))
def test_conv_winograd(rng, case, variant):
    xs, m, pads = WINOGRAD_CASES[case]
    x = rand(rng, *xs(rng))
    model = make_model("Conv", {"X": x}, {"pads": pads}, {"W": rand(rng, m, x.shape[1], 3, 3), "B": rand(rng, m)})
    check_winograd(model, {"X": x}, atol=_tol(9 * x.shape[1], 1e-4), variant=variant)


def test_conv_winograd_offered_only_where_exact(rng):
    """3x3 stride-1 single-group 2-D convs offer `winograd` (after the others, never the default) on
    devices with 8-wide vectors; strided, dilated, grouped, 1x1, 5x5 and 1-D convs do not."""
    from mace.runtime.opencl.ops.conv import ConvOp
    x = rand(rng, 1, 4, 9, 11)
    cases = [((6, 4, 3, 3), {"pads": [1, 1, 1, 1]}, True), ((6, 4, 3, 3), {}, True),
             ((6, 4, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, False),
             ((6, 4, 3, 3), {"strides": [1, 2]}, False), ((6, 4, 3, 3), {"dilations": [2, 2]}, False),
             ((6, 2, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}, False),
             ((4, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}, False),
             ((6, 4, 1, 1), {}, False), ((6, 4, 5, 5), {"pads": [2, 2, 2, 2]}, False)]
    for w_shape, attrs, offered in cases:
        model = make_model("Conv", {"X": x}, attrs, {"W": rand(rng, *w_shape)})
        eng = mace.Engine(convert(model), runtime="gpu", use_program_cache=False)
        (op,) = [v for v in eng.executor.ops.values() if isinstance(v, ConvOp)]
        wino = [v for v in op.variants() if v.endswith("winograd")]
        assert ("winograd" in wino) == (offered and op.rt.caps.max_vector_width >= 8), (w_shape, attrs, op.variants())
        assert not op.variants()[0].endswith("winograd")
        if offered:  # appended after every other variant (on GPUs: winograd, then gpu_winograd)
            assert op.variants()[-len(wino):] == wino
    x1 = rand(rng, 1, 4, 20)
    model = make_model("Conv", {"X": x1}, {"pads": [1, 1]}, {"W": rand(rng, 6, 4, 3)})
    eng = mace.Engine(convert(model), runtime="gpu", use_program_cache=False)
    (op,) = [v for v in eng.executor.ops.values() if isinstance(v, ConvOp)]
    assert "winograd" not in op.variants()


@pytest.mark.parametrize("act", [_relu, _relu6])
def test_conv_winograd_fused_activation(rng, act):
    """Bias + a fused Relu / Clip(0, 6), applied by the output transform."""
    x = rand(rng, 1, 5, _r(rng, 6, 14), _r(rng, 6, 30), lo=-3, hi=3)
    model = _conv_act_model(rng, x, (8, 5, 3, 3), {"pads": [1, 1, 1, 1]}, act)
    assert [n.op_type for n in convert(model).nodes] == ["Conv"]
    check_winograd(model, {"X": x}, atol=_tol(45, 3e-4))


@pytest.mark.parametrize("variant", WINOGRAD_VARIANTS)
@pytest.mark.parametrize("relu_after", [True, False])
def test_conv_winograd_residual(rng, relu_after, variant):
    """Conv -> Add (-> Relu) folded into one Conv: residual added by the output transform (odd
    output width: its masked edge path too)."""
    x = rand(rng, 1, 6, _r(rng, 5, 12), 2 * _r(rng, 4, 12) + 1)
    model, feeds = _residual_model(rng, x, (6, 6, 3, 3), {"pads": [1, 1, 1, 1]}, relu_after=relu_after,
                                   bias=relu_after, swap=not relu_after)
    graph = convert(model)
    assert [n.attrs.get("residual") for n in graph.nodes if n.op_type == "Conv"] == [1]
    check_winograd(model, feeds, atol=_tol(54, 2e-4), variant=variant)


@pytest.mark.parametrize("variant", WINOGRAD_VARIANTS)
@pytest.mark.parametrize("residual", [False, True])
def test_conv_winograd_fp16(rng, residual, variant):
    """fp16 storage: the transforms and GEMM outputs are half between the launches."""
    x = rand(rng, 1, 6, _r(rng, 5, 20), _r(rng, 5, 40))
    if residual:
        model, feeds = _residual_model(rng, x, (6, 6, 3, 3), {"pads": [1, 1, 1, 1]})
    else:
        model = make_model("Conv", {"X": x}, {"pads": [1, 1, 1, 1]}, {"W": rand(rng, 10, 6, 3, 3), "B": rand(rng, 10)})
        feeds = {"X": x}
    check_winograd(model, feeds, rtol=1e-2, atol=_tol(54, 2e-2 if residual else 1e-2), data_type="fp16_fp32",
                   variant=variant)


# -- 128x128-tile GEMM variants (forced) and the variant lists of a GPU ---------------------------

@pytest.mark.parametrize("variant,w_shape,attrs,batch,c,hw", [
    # M = 136: a full and a partial 128-row tile; P = OH*OW 121..225: a full and a partial column
    # tile; K = 37 / 45: a partial 16-deep K tile
    ("gpu_gemm_t128", (136, 37, 1, 1), {}, 2, 37, (11, 13)),
    ("gpu_direct_t128", (136, 5, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}, 2, 5, (23, 29)),
])
def test_conv_gpu_t128(rng, variant, w_shape, attrs, batch, c, hw):
    """The 8x8 micro-tile build of the tiled GEMM (pointwise and implicit direct), bias + Relu."""
    x = rand(rng, batch, c, _r(rng, *hw), _r(rng, *hw), lo=-3, hi=3)
    model = _conv_act_model(rng, x, w_shape, attrs, _relu)
    check_forced(model, {"X": x}, variant, ["gemm_conv"], atol=_tol(int(np.prod(w_shape[1:])), 3e-4))


@pytest.mark.parametrize("variant,w_shape,data_type", [
    ("gpu_gemm_t128", (136, 136, 1, 1), "fp32_fp32"),
    ("gpu_direct_t128", (12, 12, 3, 3), "fp16_fp32"),
])
def test_conv_gpu_t128_residual(rng, variant, w_shape, data_type):
    """A folded residual Add + Relu in the 128x128-tile epilogue, fp32 and fp16 storage."""
    x = rand(rng, 1, w_shape[1], _r(rng, 12, 14), _r(rng, 12, 14))
    model, feeds = _residual_model(rng, x, w_shape, {"pads": [1, 1, 1, 1]} if w_shape[2] == 3 else {})
    k = int(np.prod(w_shape[1:]))
    tol = dict(rtol=1e-2, atol=_tol(k, 2e-2)) if data_type == "fp16_fp32" else dict(atol=_tol(k, 2e-4))
    check_forced(model, feeds, variant, ["gemm_conv"], data_type=data_type, **tol)


class _GpuLike:
    """A runtime whose device caps say GPU (H100-like limits, `local_mem` bytes of local memory):
    the variant lists ConvOp builds there; kernels still build on the real device."""

    def __init__(self, rt, local_mem: int):
        from dataclasses import replace
        self._rt = rt
        self.caps = replace(rt.caps, is_cpu=False, compute_units=132, max_work_group_size=1024, max_vector_width=16,
                            max_work_item_sizes=(1024, 1024, 64), local_mem_size=local_mem)

    def __getattr__(self, name):
        return getattr(self._rt, name)


def test_conv_gpu_device_variant_lists(rng):
    """On a GPU the GPU variants come first in their usual order (32x32 tiles first for small
    maps), the 128x128-tile ones after them (only where 16 KiB of local memory fits), the
    Winograd ones last; gpu_winograd's GEMMs take 32x32 tiles when 64x64 ones would not fill the
    device."""
    from mace.runtime.opencl.ops.conv import ConvOp
    x = rand(rng, 1, 8, 9, 11)
    cases = [((6, 8, 1, 1), {}, ["gpu_gemm_t32", "gpu_gemm", "gpu_gemm_t128", "pointwise"]),
             ((6, 8, 3, 3), {"pads": [1, 1, 1, 1]},
              ["gpu_direct_t32", "gpu_direct", "gpu_im2col", "gpu_direct_splitk", "gpu_direct_t128", "im2col",
               "direct", "winograd", "gpu_winograd"]),
             ((6, 8, 3, 3), {"strides": [2, 2]},
              ["gpu_direct_t32", "gpu_direct", "gpu_im2col", "gpu_direct_splitk", "gpu_direct_t128", "im2col",
               "direct"])]
    for w_shape, attrs, want in cases:
        model = make_model("Conv", {"X": x}, attrs, {"W": rand(rng, *w_shape)})
        eng = mace.Engine(convert(model), runtime="gpu", use_program_cache=False)
        (op,) = [v for v in eng.executor.ops.values() if isinstance(v, ConvOp)]
        args = (op.node, op.in_shapes, op.out_shapes, op.consts)
        gpu = ConvOp(_GpuLike(op.rt, 48 * 1024), *args)
        assert gpu.variants() == want
        assert gpu.variant == want[0]
        small = ConvOp(_GpuLike(op.rt, 12 * 1024), *args)
        assert small.variants() == [v for v in want if not v.endswith("_t128")]
        if "gpu_winograd" in want:
            assert gpu._tile("gpu_winograd") == 2


# -- shape rules (mace.ops.conv) ----------------------------------------------------------------------------
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_auto_pads_give_ceil_of_input_over_stride(auto_pad):
    """SAME pads make out = ceil(n / s) for every size, kernel, stride and dilation; the odd pad
    goes to the end (SAME_UPPER) or the begin (SAME_LOWER)."""
    from mace.ops.conv import auto_pads, out_spatial
    for n in range(1, 12):
        for k in range(1, 6):
            for s in range(1, 4):
                for d in range(1, 3):
                    pads = auto_pads(auto_pad, [n], [k], [s], [d])
                    assert out_spatial([n], [k], [s], [d], pads) == (math.ceil(n / s),), (n, k, s, d)
                    big, small = (pads[1], pads[0]) if auto_pad == "SAME_UPPER" else pads
                    assert 0 <= big - small <= 1
    assert auto_pads("VALID", [7, 7], [3, 3], [1, 1], [1, 1]) == [0, 0, 0, 0]
    assert auto_pads("NOTSET", [7], [3], [1], [1]) is None


def test_out_size_ceil_mode_drops_a_window_that_starts_in_the_end_padding():
    from mace.ops.conv import out_size
    assert out_size(5, 2, 2, 1, 0, 0) == 2 and out_size(5, 2, 2, 1, 0, 0, ceil_mode=True) == 3
    # n=4, k=2, s=2, end pad 1: a 3rd window would start at 4, inside the end padding only
    assert out_size(4, 2, 2, 1, 0, 1, ceil_mode=True) == 2
    assert out_size(4, 2, 2, 1, 1, 1, ceil_mode=True) == 3  # with a begin pad it starts at input index 3
