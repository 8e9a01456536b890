"""FakeQuantize (a QuantizeLinear -> DequantizeLinear pair on a run-time value) on both runtimes
against onnxruntime. Tolerance: the CPU runtime is exact; the GPU runtime multiplies by the float
inverse of the scale (the math of the conv epilogue it is fused into), so a value within an ulp of
a rounding tie may land one step away (at most 0.1 % of the values)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import mace
from mace.convert import convert


def qdq_model(shape, scale, zp, axis=1):
    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=axis),
                           helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=axis)], "qdq",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
                          initializer=[numpy_helper.from_array(np.asarray(scale, np.float32), "s"),
                                       numpy_helper.from_array(np.asarray(zp), "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("case", ["uint8_tensor", "int8_channel", "uint8_channel_axis2"])
def test_fake_quantize_both_runtimes(rng, case):
    shape = (2, 5, 7, 9)
    if case == "uint8_tensor":
        scale, zp, axis = np.float32(0.05), np.uint8(100), 1
    elif case == "int8_channel":
        scale, zp, axis = rng.uniform(0.01, 0.2, 5).astype(np.float32), np.zeros(5, np.int8), 1
    else:
        scale, zp, axis = rng.uniform(0.01, 0.2, 7).astype(np.float32), rng.integers(0, 255, 7).astype(np.uint8), 2
    model = qdq_model(shape, scale, zp, axis)
    x = rng.normal(0, 5, shape).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    graph = convert(model)
    assert graph.op_counts() == {"FakeQuantize": 1}
    assert np.array_equal(mace.Engine(graph, runtime="cpu").run({"x": x})["y"], want)
    engine = mace.Engine(graph, runtime="gpu", use_program_cache=False)
    assert not engine.executor.fallback_nodes
    got = engine.run({"x": x})["y"]
    step = np.broadcast_to(np.asarray(scale).reshape([-1 if k == axis else 1 for k in range(4)]
                                                     if np.ndim(scale) else []), shape)
    diff = np.abs(got - want)
    assert np.all(diff <= step * 1.001) and (diff > 0).mean() <= 1e-3
    engine.close()
