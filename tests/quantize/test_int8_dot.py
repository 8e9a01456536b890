"""Full 8-bit GPU kernels: the `int8_dot` variant of a quantized model's convs (one group), Gemms
and MatMuls where the device has 8-bit integer dot products (the probe says so: Intel's CPU
runtime, run by tests/test_implementations.py), and nowhere else (PyPI's and Debian's PoCL
report none)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

import mace
from mace.convert import convert
from mace.runtime.opencl.ops import qdot
from mace.runtime.opencl.ops.conv import ConvOp
from mace.runtime.opencl.ops.linear import GemmOp, MatMulOp

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
            launches = ex.rebind(name)
            assert "-DDOT_" in op.int8.key and op.int8.k_mm.function_name == "qgemm_u8"
            # the program cache keys each launch's program by its options, the tuner names the variant
            assert all(la.program_key.startswith("qdot|") and "-DQMAX=255" in la.program_key for la in launches)
            assert launches[-1].tune_key_extra == {"variant": qdot.VARIANT}
        got = eng.run({"input": x})["output"]
        step = float(X_SCALE) * float(np.abs(want).max())  # one input step, scaled: the bound
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert np.max(np.abs(got - want)) < step


def _qdq(x: str, scale: float, zp, inits: dict) -> tuple[list, str]:
    """Q/DQ of `x` on a per-tensor grid (int8 or uint8 by zp's type)."""
    inits[f"{x}_s"], inits[f"{x}_z"] = np.array(np.float32(scale)), np.array(zp)
    return [helper.make_node("QuantizeLinear", [x, f"{x}_s", f"{x}_z"], [f"{x}_q"]),
            helper.make_node("DequantizeLinear", [f"{x}_q", f"{x}_s", f"{x}_z"], [f"{x}_d"])], f"{x}_d"


def _weight(name: str, w: np.ndarray, axis: int, inits: dict) -> list:
    """int8 weights per channel along `axis` (symmetric), dequantized by the model."""
    red = tuple(i for i in range(w.ndim) if i != axis)
    ws = (np.abs(w).max(red) / 127).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    inits[f"{name}_q"] = np.clip(np.rint(w / ws.reshape(shape)), -127, 127).astype(np.int8)
    inits[f"{name}_s"], inits[f"{name}_z"] = ws, np.zeros(ws.size, np.int8)
    return [helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [name], axis=axis)]


#: the output grid: the tolerance is one of its steps
OUT_STEP = 1 / 64


def _layers_model(r) -> onnx.ModelProto:
    """int8-grid input -> 3x3 Conv (stride 2, asymmetric pads) -> 1x1 Conv + its input (a folded
    residual) -> grouped 3x3 Conv (not offered: two groups) -> Flatten -> Gemm (alpha, a bias row) -> MatMul of the (2, 4, 8)
    reshaped rows; every op fed by a Q/DQ pair, the output on a 1/64 grid. Biases are ramps, so
    every output column differs whatever the draw."""
    inits: dict = {}
    nodes, x = _qdq("input", 1 / 100, np.int8(-5), inits)
    nodes += _weight("w1", r.normal(0, 0.3, (8, 6, 3, 3)).astype(np.float32), 0, inits)
    inits["b1"] = np.linspace(-1, 1, 8).astype(np.float32)
    nodes.append(helper.make_node("Conv", [x, "w1", "b1"], ["c1"], pads=[1, 0, 0, 1], strides=[2, 2]))
    q, x = _qdq("c1", 1 / 20, np.uint8(100), inits)
    nodes += q + _weight("wp", r.normal(0, 0.3, (8, 8, 1, 1)).astype(np.float32), 0, inits)
    nodes += [helper.make_node("Conv", [x, "wp"], ["p"]), helper.make_node("Add", ["p", x], ["pr"])]
    q, x = _qdq("pr", 1 / 20, np.uint8(100), inits)
    nodes += q + _weight("w2", r.normal(0, 0.3, (8, 4, 3, 3)).astype(np.float32), 0, inits)
    nodes.append(helper.make_node("Conv", [x, "w2"], ["c2"], pads=[1, 1, 1, 1], group=2))
    nodes.append(helper.make_node("Flatten", ["c2"], ["f"]))
    q, x = _qdq("f", 1 / 10, np.uint8(128), inits)
    nodes += q + _weight("wg", r.normal(0, 0.05, (64, 8 * 4 * 4)).astype(np.float32), 0, inits)
    inits["bg"] = np.linspace(-3, 3, 64).astype(np.float32)
    nodes.append(helper.make_node("Gemm", [x, "wg", "bg"], ["g"], transB=1, alpha=0.5))
    inits["shape"] = np.array([2, 4, 8], np.int64)
    nodes.append(helper.make_node("Reshape", ["g", "shape"], ["gr"]))
    q, x = _qdq("gr", 1 / 20, np.int8(0), inits)
    nodes += q + _weight("wm", r.normal(0, 0.3, (8, 5)).astype(np.float32), 1, inits)
    nodes.append(helper.make_node("MatMul", [x, "wm"], ["mm"]))
    nodes += _qdq("mm", OUT_STEP, np.int8(0), inits)[0]
    nodes.append(helper.make_node("Identity", ["mm_d"], ["output"]))
    g = helper.make_graph(nodes, "layers", [helper.make_tensor_value_info("input", 1, (1, 6, 9, 9))],
                          [helper.make_tensor_value_info("output", 1, (2, 4, 5))],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_int8_dot_convs_gemm_matmul(tmp_path, rng):
    """A strided, padded 3x3 conv on an int8 grid, a 1x1 conv with a residual, a Gemm and a
    batched MatMul run `int8_dot`
    where the device has dot products (a grouped conv is not offered it), within one step of the
    output grid of the CPU runtime."""
    onnx.save(_layers_model(rng), tmp_path / "l.onnx")
    convert(tmp_path / "l.onnx", tmp_path / "l.mace")
    x = rng.uniform(-1.4, 1.4, (1, 6, 9, 9)).astype(np.float32)  # beyond the grid's range: clamps too
    with mace.Engine(tmp_path / "l.mace", runtime="cpu") as cpu:
        want = cpu.run({"input": x})["output"]
    with mace.Engine(tmp_path / "l.mace", runtime="gpu", use_program_cache=False) as eng:
        ex = eng.executor
        ops = {k: op for k, op in ex.ops.items() if isinstance(op, (ConvOp, GemmOp, MatMulOp))}
        offered = {k for k, op in ops.items() if qdot.VARIANT in op.variants()}
        has = bool(ex.caps.integer_dot)
        grouped = {k for k, op in ops.items() if isinstance(op, ConvOp) and op.g["group"] > 1}
        assert len(ops) == 5 and len(grouped) == 1 and sum(getattr(op, "residual", False) for op in ops.values()) == 1
        assert offered == (set(ops) - grouped if has else set())
        for name in offered:
            ops[name].use_variant(qdot.VARIANT)
            ex.rebind(name)
        got = eng.run({"input": x})["output"]
    assert np.ptp(want) > 4 * OUT_STEP
    assert np.max(np.abs(got - want)) <= OUT_STEP * 1.001
