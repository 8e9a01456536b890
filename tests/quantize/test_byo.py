"""Quantized ONNX models written by onnxruntime's quantize_static (QDQ and QOperator) convert and
run on the CPU runtime: the same values as onnxruntime, to one quantization step."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import mace
from mace.convert import convert
from mace.errors import ConversionError, ModelFileError
from mace.ir import modelfile
from mace.ir import quantized as storage

from .conftest import calibration_inputs


def _ort(path, optimize: bool):
    so = ort.SessionOptions()
    if not optimize:  # the QDQ pairs as written, in float: the ONNX semantics exactly
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_quantized_model_matches_onnxruntime(quantized_models, tmp_path, fmt):
    path = quantized_models[fmt]
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert ("QLinearConv" in ops) == (fmt == "QOperator") and "QuantizeLinear" in ops
    graph = convert(path, tmp_path / "q.mace")
    assert set(graph.op_counts()) <= {"Conv", "Add", "MaxPool", "Concat", "GlobalAveragePool", "Flatten", "Gemm",
                                      "FakeQuantize"}
    last = next(n for n in reversed(graph.nodes) if n.op_type == "FakeQuantize")
    assert last.outputs == ["output"]
    step = last.attrs["scale"]
    engine = mace.Engine(tmp_path / "q.mace", runtime="cpu")
    exact, int8 = _ort(path, False), _ort(path, True)
    for x in calibration_inputs(8, seed=7):
        ours = engine.run({"input": x})["output"]
        for ref in (exact.run(None, {"input": x})[0], int8.run(None, {"input": x})[0]):
            diff = np.abs(ours - ref)
            assert diff.max() <= step * 1.001, (diff.max(), step)  # at most one step (rounding ties)
            assert (diff > 0).mean() <= 0.2
    engine.close()


def test_weights_stored_as_int8(quantized_models, tmp_path):
    convert(quantized_models["float"], tmp_path / "f.mace")
    q = convert(quantized_models["QDQ"], tmp_path / "q.mace")
    infos = q.meta["quantized_weights"]
    assert len(infos) == 5 and all(i["dtype"] == "int8" for i in infos.values())
    assert all(len(i["scale"]) == np.asarray(q.weights[n]).shape[0] and i["axis"] == 0
               for n, i in infos.items() if len(i["scale"]) > 1)
    stored_q, stored_f = _stored(tmp_path / "q.mace"), _stored(tmp_path / "f.mace")
    assert all(stored_q[n] == (np.asarray(q.weights[n]).size, "|i1") for n in infos)
    assert sum(stored_q[n][0] for n in infos) * 4 == sum(stored_f[n][0] for n in stored_f if n.startswith("w"))
    loaded = modelfile.load(tmp_path / "q.mace")
    for name, w in q.weights.items():
        assert loaded.weights[name].dtype == np.float32
        assert np.array_equal(loaded.weights[name], w)  # bit for bit what the converter computed
    assert (tmp_path / "q.mace").read_bytes()[8] == modelfile.MODEL_FORMAT_VERSION


def _stored(path) -> dict:
    """{weight: (bytes in the file, dtype)} from a model file's header."""
    import json
    import struct
    import zlib
    raw = path.read_bytes()
    hlen = struct.unpack_from("<Q", raw, 12)[0]
    header = json.loads(zlib.decompress(raw[20:20 + hlen]))
    return {w["name"]: (w["nbytes"], w["dtype"]) for w in header["weights"]}


def test_malformed_quantized_weight_entry_refused(quantized_models):
    import hashlib
    q = convert(quantized_models["QDQ"])
    name = next(n for n, i in q.meta["quantized_weights"].items() if len(i["scale"]) > 1)
    good = dict(q.meta["quantized_weights"][name])
    q.meta["quantized_weights"][name]["scale"] = good["scale"][:2]  # not one per output channel
    assert storage.pack(q)[name].dtype == np.float32  # does not fit: written as float
    q.meta["quantized_weights"][name] = good
    import struct
    import zlib
    data = modelfile.encode(q)
    hlen = struct.unpack_from("<Q", data, 12)[0]
    text = zlib.decompress(data[20:20 + hlen]).replace(b'"axis":0', b'"axis":9', 1)
    head = data[:12] + struct.pack("<Q", len(zlib.compress(text))) + zlib.compress(text)
    head += bytes(-len(head) % 64)
    hacked = head + data[(20 + hlen + 63) // 64 * 64:-32]
    hacked += hashlib.sha256(hacked).digest()
    with pytest.raises(ModelFileError, match="malformed"):
        modelfile.decode(hacked, source="m.mace")


def test_fake_quantize_rounds_like_onnx(rng):
    """Ties round to even, values saturate, per-axis parameters broadcast on their axis."""
    from mace.ops.quantize import fake_quantize
    s = np.array([0.5, 0.25, 0.1], np.float32)
    z = np.array([3, 128, 0], np.uint8)
    x = np.concatenate([np.arange(-4, 4, 0.25, dtype=np.float32)[None].repeat(3, 0).reshape(1, 3, -1),
                        rng.normal(0, 40, (1, 3, 32)).astype(np.float32)], axis=2)
    from onnx import TensorProto, helper, numpy_helper
    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
                           helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1)], "fq",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)],
                          initializer=[numpy_helper.from_array(s, "s"), numpy_helper.from_array(z, "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ours = fake_quantize(x, {"scale": s.tolist(), "zero_point": z.astype(int).tolist(), "qmin": 0, "qmax": 255,
                             "axis": 1})
    assert np.array_equal(ours, ref)
    graph = convert(m)
    assert graph.op_counts() == {"FakeQuantize": 1}
    assert np.array_equal(mace.Engine(graph, runtime="cpu").run({"x": x})["y"], ref)


def test_dynamic_quantization_and_integer_outputs_refused(quantized_models, tmp_path):
    from onnxruntime.quantization import quantize_dynamic
    dyn = tmp_path / "dyn.onnx"
    quantize_dynamic(str(quantized_models["float"]), str(dyn), op_types_to_quantize=["Gemm", "MatMul", "Conv"])
    with pytest.raises(ConversionError, match="dynamic quantization"):
        convert(dyn)
    m = onnx.load(quantized_models["QDQ"])
    last = next(n for n in reversed(m.graph.node) if n.op_type == "DequantizeLinear")
    m.graph.node.remove(last)
    m.graph.output[0].name = last.input[0]
    m.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.UINT8
    with pytest.raises(ConversionError, match="quantized"):
        convert(m)
