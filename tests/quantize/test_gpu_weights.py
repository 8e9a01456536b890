"""Weight-only 8-bit on the GPU runtime: the 8-bit weights of a model file stay 8-bit in device
memory and are dequantized in the kernels (-DWQ, -DWZP), in every Conv / Gemm / MatMul variant
that offers it, with the values of the CPU runtime (which computes on the dequantized weights)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import mace
from mace.convert import convert
from mace.quantize.options import QuantizeOptions
from mace.runtime.opencl import shared
from mace.runtime.opencl.ops import qweights
from mace.tuning import records

SHAPE = (1, 3, 12, 20)
#: weight -> output-channel axis; all >= 128 elements (quantize_large_weights' minimum)
WEIGHTS = {"w1": ((16, 3, 3, 3), 0), "w2": ((16, 1, 3, 3), 0), "w3": ((16, 16, 1, 1), 0),
           "wg": ((24, 16), 0), "wm": ((24, 12), 1)}


def _model(weights: dict, extra_nodes=()) -> onnx.ModelProto:
    """conv 3x3 (direct) -> depthwise 3x3 -> pointwise (M = 16: oc16) -> GAP -> Gemm(transB) ->
    MatMul(constant B); `weights`: {name: array}, or a DequantizeLinear output name."""
    r = np.random.default_rng(3)
    b = {k: r.normal(0, 0.1, n).astype(np.float32) for k, n in (("b1", 16), ("b2", 16), ("b3", 16), ("bg", 24))}
    nodes = list(extra_nodes) + [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=16),
        helper.make_node("Conv", ["c2", "w3", "b3"], ["c3"]),
        helper.make_node("GlobalAveragePool", ["c3"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "wg", "bg"], ["g"], transB=1),
        helper.make_node("MatMul", ["g", "wm"], ["output"]),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in {**weights, **b}.items()]
    g = helper.make_graph(nodes, "wq", [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, SHAPE)],
                          [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, (1, 12))],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _float_weights() -> dict:
    r = np.random.default_rng(2)
    return {k: (r.normal(0, 1, s) / np.sqrt(np.prod(s[1:]))).astype(np.float32) for k, (s, _) in WEIGHTS.items()}


def _asymmetric_qdq() -> onnx.ModelProto:
    """The same network with uint8 weights and a zero point per output channel (DequantizeLinear)."""
    nodes, inits = [], {}
    for k, w in _float_weights().items():
        axis = WEIGHTS[k][1]
        red = tuple(a for a in range(w.ndim) if a != axis)
        lo, hi = np.minimum(w.min(axis=red), 0), np.maximum(w.max(axis=red), 0)
        scale = ((hi - lo) / 255).astype(np.float32)
        zp = np.clip(np.rint(-lo / scale), 0, 255).astype(np.uint8)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.rint(w / scale.reshape(shape)) + zp.reshape(shape), 0, 255).astype(np.uint8)
        inits.update({f"{k}_q": q, f"{k}_s": scale, f"{k}_z": zp})
        nodes.append(helper.make_node("DequantizeLinear", [f"{k}_q", f"{k}_s", f"{k}_z"], [k], axis=axis))
    model = _model({}, nodes)
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in inits.items())
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("wq")
    src = d / "float.onnx"
    onnx.save(_model(_float_weights()), src)
    out = {"float": d / "f.mace", "int8": d / "w.mace", "uint8": d / "a.mace"}
    convert(src, out["float"])
    convert(src, out["int8"], quantize=QuantizeOptions(mode="weights"))
    onnx.save(_asymmetric_qdq(), d / "asym.onnx")
    convert(d / "asym.onnx", out["uint8"])
    return out


def _inputs(n: int) -> list[np.ndarray]:
    r = np.random.default_rng(5)
    return [r.uniform(0, 1, SHAPE).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("kind,every_variant", [("int8", True), ("uint8", False)])
def test_gpu_keeps_8bit_weights_and_matches_cpu(models, kind, every_variant):
    """Every quantized weight is 8-bit on the device; each variant (but the 32x32 / 128x128 tiles,
    the 64x64 kernel with another TM; the uint8 model: the default and the first GPU-style one)
    gives the CPU runtime's values."""
    x = _inputs(1)[0]
    with mace.Engine(models[kind], runtime="cpu") as cpu:
        want = cpu.run({"input": x})["output"]
    with mace.Engine(models[kind], runtime="gpu", use_program_cache=False) as eng:
        ex = eng.executor
        ops = {k: op for k, op in ex.ops.items() if op is not None and op.node.op_type in ("Conv", "Gemm", "MatMul")}
        assert len(ops) == 5
        for name, op in ops.items():
            assert op.qw is not None and op.qw.dtype is np.dtype(kind).type, name
            assert (op.qw.zero_point is not None) == (kind == "uint8"), name
            assert "winograd" not in op.variants() and "gpu_winograd" not in op.variants()
        np.testing.assert_allclose(eng.run({"input": x})["output"], want, rtol=1e-4, atol=1e-4)
        for name, op in ops.items():
            variants = [v for v in op.variants() if not v.endswith(("_t32", "_t128"))]
            if not every_variant:
                variants = [variants[0]] + [v for v in variants if v.startswith("gpu_")][:1]
            for v in variants:
                op.use_variant(v)
                ex.rebind(name)
                assert f"-DWQ={1 if kind == 'int8' else 2}" in op.key, (name, v)
                got = eng.run({"input": x})["output"]
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"{name} {v}")


def test_device_memory_and_keys(models, monkeypatch):
    """A quarter of the weight bytes on the device; program and tuning keys tell 8-bit weights
    from float ones; MACE_GPU_INT8_WEIGHTS=0 keeps them float."""
    x = _inputs(1)[0]
    used, keys = {}, {}
    for kind, env in (("float", "1"), ("int8", "1"), ("int8", "0")):
        monkeypatch.setenv("MACE_GPU_INT8_WEIGHTS", env)
        before = shared.device_bytes()["bytes"]
        with mace.Engine(models[kind], runtime="gpu", use_program_cache=False) as eng:
            eng.run({"input": x})
            used[kind, env] = shared.device_bytes()["bytes"] - before
            op = next(op for op in eng.executor.ops.values() if op is not None and op.node.op_type == "Gemm")
            keys[kind, env] = (op.key, records.op_key(op, "fp32_fp32"), op.qw)
    weight_bytes = sum(int(np.prod(s)) * 4 for s, _ in WEIGHTS.values())
    saved = used["float", "1"] - used["int8", "1"]
    assert saved >= 0.7 * weight_bytes, (used, weight_bytes)  # 3/4 of the weights, less the scales
    assert abs(used["int8", "0"] - used["float", "1"]) < 0.01 * used["float", "1"]
    assert keys["int8", "0"][2] is None and keys["int8", "1"][2] is not None
    assert keys["int8", "1"][0] != keys["float", "1"][0] and keys["int8", "1"][1] != keys["float", "1"][1]
    assert keys["int8", "0"][:2] == keys["float", "1"][:2]
    monkeypatch.setenv("MACE_GPU_INT8_WEIGHTS", "maybe")
    with pytest.raises(mace.errors.SettingsError):
        qweights.enabled()
