"""`quantize: 1` leaves the model's outputs float: the QuantizeLinear -> DequantizeLinear pair that
onnxruntime's quantizer puts after the last layer only rounds the logits to 256 levels."""
from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

import mace
from mace.convert import convert
from mace.ir import modelfile
from mace.quantize.options import QuantizeOptions
from mace.quantize.quantizer import float_outputs

from .conftest import calibration_inputs


def _eval_inputs(n: int) -> list[np.ndarray]:
    seed = int(np.random.SeedSequence().entropy % (2 ** 32))
    print("eval inputs seed", seed)
    r = np.random.default_rng(seed)
    return [r.uniform(0, 1, (1, 3, 16, 16)).astype(np.float32) for _ in range(n)]  # never all zero


def test_float_outputs_drops_the_output_pair(quantized_models):
    qdq = onnx.load(str(quantized_models["QDQ"]))
    before = {n.op_type: 0 for n in qdq.graph.node}
    for n in qdq.graph.node:
        before[n.op_type] += 1
    dq = next(n for n in qdq.graph.node if "output" in n.output)
    q = next(n for n in qdq.graph.node if dq.input[0] in n.output)
    assert (dq.op_type, q.op_type) == ("DequantizeLinear", "QuantizeLinear")  # what onnxruntime writes
    inits = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
    scale, zp = float(inits[q.input[1]]), float(inits[q.input[2]])

    fixed = float_outputs(copy.deepcopy(qdq))
    assert next(n for n in fixed.graph.node if "output" in n.output).op_type == "Gemm"
    assert len(fixed.graph.node) == len(qdq.graph.node) - 2
    onnx.checker.check_model(fixed)
    s_q = ort.InferenceSession(qdq.SerializeToString(), providers=["CPUExecutionProvider"])
    s_f = ort.InferenceSession(fixed.SerializeToString(), providers=["CPUExecutionProvider"])
    for x in _eval_inputs(8):
        got, grid = s_f.run(None, {"input": x})[0], s_q.run(None, {"input": x})[0]
        # the pair rounded to the grid (scale, zero point) and nothing else: within half a step of it
        np.testing.assert_allclose(grid / scale + zp, np.rint(grid / scale + zp), atol=1e-3)
        assert np.max(np.abs(got - grid)) <= scale / 2 + 1e-5
        off = np.abs(got / scale + zp - np.rint(got / scale + zp))
        assert off.max() > 0.05  # no longer on the grid


def test_quantize_full_keeps_outputs_float(quantized_models, tmp_path):
    cal = tmp_path / "cal"
    cal.mkdir()
    for k, x in enumerate(calibration_inputs(8)):
        np.save(cal / f"{k}.npy", x)
    out = tmp_path / "q.mace"
    convert(quantized_models["float"], out, input_ranges={"input": (0.0, 1.0)},
            quantize=QuantizeOptions(calibration=cal))
    graph = modelfile.load(out)
    writer = next(n for n in graph.nodes if "output" in n.outputs)
    assert writer.op_type != "FakeQuantize" and sum(n.op_type == "FakeQuantize" for n in graph.nodes) >= 5
    f = ort.InferenceSession(str(quantized_models["float"]), providers=["CPUExecutionProvider"])
    xs = _eval_inputs(8)
    with mace.Engine(out, runtime="cpu") as e:
        outs = np.concatenate([e.run({"input": x})["output"] for x in xs])
    ref = np.concatenate([f.run(None, {"input": x})[0] for x in xs])
    assert all(len(np.unique(row)) == row.size for row in outs)  # no two logits of an input tied on a grid
    cos = float((outs * ref).sum() / np.linalg.norm(outs) / np.linalg.norm(ref))
    assert cos > 0.99
