"""A small float CNN (conv + relu, depthwise conv, residual add, max pool, concat, global average
pool, Gemm) and its onnxruntime quantize_static versions (QDQ and QOperator), made once."""
from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

SHAPE = (1, 3, 16, 16)


def float_cnn(seed: int = 0) -> onnx.ModelProto:
    r = np.random.default_rng(seed)
    w = lambda *s: (r.normal(0, 1, s) / np.sqrt(np.prod(s[1:]))).astype(np.float32)  # noqa: E731
    b = lambda n: r.normal(0, 0.1, n).astype(np.float32)  # noqa: E731
    inits = {"w1": w(8, 3, 3, 3), "b1": b(8), "w2": w(8, 1, 3, 3), "b2": b(8), "w3": w(8, 8, 1, 1), "b3": b(8),
             "w4": w(4, 8, 3, 3), "b4": b(4), "wf": w(10, 12), "bf": b(10)}
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"]),
        helper.make_node("Add", ["c3", "r1"], ["a3"]),
        helper.make_node("MaxPool", ["a3"], ["p3"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p3", "w4", "b4"], ["c4"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c4"], ["r4"]),
        helper.make_node("Concat", ["p3", "r4"], ["cat"], axis=1),
        helper.make_node("GlobalAveragePool", ["cat"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["output"], transB=1),
    ]
    g = helper.make_graph(nodes, "small_cnn", [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, SHAPE)],
                          [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, (1, 10))],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def calibration_inputs(n: int, seed: int = 1) -> list[np.ndarray]:
    r = np.random.default_rng(seed)
    return [r.uniform(0, 1, SHAPE).astype(np.float32) for _ in range(n)]


def convert_quantized(float_model, d, n_calibration: int):
    """`float_model` converted with `quantize: 1` to d/q.mace, calibrated on `n_calibration`
    .npy inputs written to d/cal; returns the .mace path."""
    from mace.convert import convert
    from mace.quantize.options import QuantizeOptions
    cal = d / "cal"
    cal.mkdir()
    for k, x in enumerate(calibration_inputs(n_calibration)):
        np.save(cal / f"{k}.npy", x)
    convert(float_model, d / "q.mace", input_ranges={"input": (0.0, 1.0)}, quantize=QuantizeOptions(calibration=cal))
    return d / "q.mace"


@pytest.fixture(scope="session")
def quantized_models(tmp_path_factory):
    """{"float": path, "QDQ": path, "QOperator": path} (per-channel int8 weights, uint8 activations)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter({"input": x} for x in calibration_inputs(16))

        def get_next(self):
            return next(self.it, None)

    d = tmp_path_factory.mktemp("quantized")
    paths = {"float": d / "float.onnx"}
    onnx.save(float_cnn(), paths["float"])
    logging.getLogger().setLevel(logging.ERROR)  # quantize_static's advice to pre-process
    for fmt in ("QDQ", "QOperator"):
        paths[fmt] = d / f"{fmt}.onnx"
        quantize_static(str(paths["float"]), str(paths[fmt]), Reader(), quant_format=getattr(QuantFormat, fmt),
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return paths
