"""ConvTranspose on both runtimes against onnxruntime: stride 2 + output_padding + groups, pads,
dilations, kernel 4 stride 2, 1-D, and a fused Relu in fp16 storage.

Tolerances: fp32 rtol 1e-4 / atol 1e-4 * max(1, sqrt(K) / 4) where K = C*KH*KW terms can meet in one
output (float32 accumulation order differs from onnxruntime); Relu fused: atol 2e-4 in fp32,
rtol 1e-2 / atol 1e-2 in fp16 storage (data_type fp16_fp32, GPU only).
Every GPU check asserts that no node fell back to the CPU runtime.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.ophelpers import OPSET, check_graph, make_model, rand


def _tol(k_terms: int, base: float) -> float:
    return base * max(1.0, math.sqrt(k_terms) / 4)


def deconv_case(rng, x_shape, w_shape, attrs, bias=True):
    x = rand(rng, *x_shape)
    inits = {"W": rand(rng, *w_shape)}
    if bias:
        inits["B"] = rand(rng, w_shape[1] * attrs.get("group", 1))
    k_terms = int(np.prod(w_shape[2:])) * w_shape[0]
    model = make_model("ConvTranspose", {"X": x}, attrs, inits)
    return check_graph(model, {"X": x}, rtol=1e-4, atol=_tol(k_terms, 1e-4))


DECONV_CASES = {
    "s2_outpad_groups": ((1, 6, 5, 7), (6, 2, 3, 3), {"strides": [2, 2], "output_padding": [1, 1], "group": 3,
                                                       "pads": [1, 1, 1, 1]}),
    "s1_pads": ((2, 4, 6, 5), (4, 5, 3, 3), {"pads": [1, 0, 0, 1]}),
    "s2_dilated": ((1, 3, 4, 6), (3, 4, 3, 2), {"strides": [2, 3], "dilations": [2, 1], "pads": [0, 1, 1, 0]}),
    "k4_s2": ((1, 8, 5, 5), (8, 4, 4, 4), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "deconv1d": ((1, 4, 9), (4, 3, 3), {"strides": [2], "output_padding": [1]}),
}


@pytest.mark.parametrize("case", sorted(DECONV_CASES))
def test_conv_transpose(rng, case):
    x_shape, w_shape, attrs = DECONV_CASES[case]
    deconv_case(rng, x_shape, w_shape, attrs, bias=bool(rng.integers(0, 2)))


def test_conv_transpose_fp16_relu(rng):
    x = rand(rng, 1, 4, 6, 6)
    inits = [numpy_helper.from_array(rand(rng, 4, 3, 3, 3), "W")]
    nodes = [helper.make_node("ConvTranspose", ["X", "W"], ["c"], strides=[2, 2], output_padding=[1, 1]),
             helper.make_node("Relu", ["c"], ["Y"])]
    g = helper.make_graph(nodes, "deconv_relu", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    graph = check_graph(m, {"X": x}, atol=2e-4)
    assert [n.op_type for n in graph.nodes] == ["ConvTranspose"]
    check_graph(m, {"X": x}, runtimes=("gpu",), data_type="fp16_fp32", rtol=1e-2, atol=1e-2)


# -- shape rules (mace.ops.deconv) --------------------------------------------------------------------------
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "NOTSET"])
def test_pads_for_output_give_that_output(auto_pad):
    from mace.ops.deconv import full_size, out_spatial, pads_for_output
    for n in range(1, 6):
        for k in range(1, 5):
            for s in range(1, 4):
                for opad in range(s):
                    full = full_size(n, k, s, 1, opad)
                    for out in range(max(1, full - 4), full + 1):
                        pads = pads_for_output([n], [out], [k], [s], [1], [opad], auto_pad)
                        assert out_spatial([n], [k], [s], [1], pads, [opad]) == (out,)
                        assert abs(pads[0] - pads[1]) <= 1
                        assert (pads[1] >= pads[0]) == (auto_pad == "SAME_UPPER" or pads[0] == pads[1])
