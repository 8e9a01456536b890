"""Full 8-bit GPU kernels: the `int8_dot` variant of a quantized model's 1x1 conv where the device
has 8-bit integer dot products (the probe says so: Intel's CPU runtime, run by
tests/test_implementations.py), and nowhere else (PyPI's and Debian's PoCL report none)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

import mace
from mace.convert import convert
from mace.runtime.opencl.ops import qdot
from mace.runtime.opencl.ops.conv import ConvOp

C, M, HW = 20, 12, 9  # K = 20 (five char4s), M and P not multiples of the 4x4 tile
X_SCALE, X_ZP = np.float32(1 / 200), np.uint8(30)


def _qdot_model() -> onnx.ModelProto:
    """uint8 QDQ input -> 1x1 Conv (int8 weights per output channel, bias) -> Relu: the float
    output is the conv's own."""
    r = np.random.default_rng(8)
    w = r.normal(0, 0.3, (M, C, 1, 1)).astype(np.float32)
    ws = (np.abs(w).reshape(M, -1).max(1) / 127).astype(np.float32)
    wq = np.clip(np.rint(w / ws.reshape(M, 1, 1, 1)), -127, 127).astype(np.int8)
    inits = {"xs": np.array(X_SCALE), "xz": np.array(X_ZP), "wq": wq, "ws": ws, "wz": np.zeros(M, np.int8),
             "b": r.normal(0, 0.1, M).astype(np.float32)}
    nodes = [helper.make_node("QuantizeLinear", ["input", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
             helper.make_node("Conv", ["xd", "w", "b"], ["c"]),
             helper.make_node("Relu", ["c"], ["output"])]
    g = helper.make_graph(nodes, "qdot", [helper.make_tensor_value_info("input", 1, (1, C, HW, HW))],
                          [helper.make_tensor_value_info("output", 1, (1, M, HW, HW))],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_int8_dot_where_the_device_has_dot_products(tmp_path):
    """int8 x int8 -> int32 with the float epilogue gives the CPU runtime's values (float
    arithmetic on the same grids) to float rounding, far within one step of the input grid."""
    onnx.save(_qdot_model(), tmp_path / "q.onnx")
    convert(tmp_path / "q.onnx", tmp_path / "q.mace")
    x = np.random.default_rng(2).uniform(-0.3, 1.3, (1, C, HW, HW)).astype(np.float32)  # clamps too
    with mace.Engine(tmp_path / "q.mace", runtime="cpu") as cpu:
        want = cpu.run({"input": x})["output"]
    with mace.Engine(tmp_path / "q.mace", runtime="gpu", use_program_cache=False) as eng:
        ex = eng.executor
        (name, op), = [(k, op) for k, op in ex.ops.items() if isinstance(op, ConvOp)]
        has = bool(ex.caps.integer_dot)
        if "portable computing" in ex.caps.device.lower():
            assert not has  # neither PyPI's nor Debian's PoCL offers the extension
        if "Intel(R) OpenCL" in ex.caps.device:
            assert has  # cl_khr_integer_dot_product, with -cl-std=CL3.0
        assert (qdot.VARIANT in op.variants()) == has and op.variant != qdot.VARIANT  # the tuner's choice
        if has:
            op.use_variant(qdot.VARIANT)
            ex.rebind(name)
            assert "-DDOT_" in op.int8.key
        got = eng.run({"input": x})["output"]
        step = float(X_SCALE) * float(np.abs(want).max())  # one input step, scaled: the bound
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert np.max(np.abs(got - want)) < step
