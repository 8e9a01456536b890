"""`mace validate` on a quantized model: per-layer cosine / SQNR against the float model, end-to-end
agreement, Top-1 / Top-5 on labelled data side by side, and the report's table."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import mace
from mace.cli import cli
from mace.convert import convert

from .conftest import calibration_inputs, convert_quantized


@pytest.fixture(scope="module")
def quantized_cnn(quantized_models, tmp_path_factory):
    d = tmp_path_factory.mktemp("qval")
    convert_quantized(quantized_models["float"], d, 8)
    xs = np.concatenate(calibration_inputs(24, seed=9))
    labels = mace.Engine(convert(quantized_models["float"]), runtime="cpu").run({"input": xs[:1]})  # warm check
    assert labels["output"].shape == (1, 10)
    fl = mace.Engine(convert(quantized_models["float"]), runtime="cpu")
    y = np.array([int(np.argmax(fl.run({"input": xs[k:k + 1]})["output"])) for k in range(len(xs))])
    np.savez(d / "labelled.npz", x=xs, y=y)
    return d


def _validate(*args):
    res = CliRunner().invoke(cli, ["validate", *map(str, args), "--runtime", "cpu", "--json"])
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.output[res.output.index("{"):])


def test_validate_quantized_against_float(quantized_models, quantized_cnn):
    doc = _validate(quantized_cnn / "q.mace", "--reference", quantized_models["float"], "--seed", 1,
                    "--accuracy", quantized_cnn / "labelled.npz", "--samples", 8)
    assert doc["threshold"] == 0.98
    q = doc["quantization"]
    layers = q["per_layer"]
    assert len(layers) >= 8 and {"Conv", "MaxPool", "Concat", "Gemm"} <= {r["op"] for r in layers}
    assert all(0.5 < r["cosine"] <= 1.0 + 1e-9 and r["sqnr_db"] > 0 for r in layers)
    e = q["end_to_end"]
    assert e["inputs"] == 8 and 0.9 < e["cosine_min"] <= e["cosine_mean"] <= 1.0
    assert 0 <= e["top1_agreement"] <= e["top5_agreement"] <= 1
    a = q["accuracy"]
    assert a["samples"] == 24 and a["float"] == {"top1": 1.0, "top5": 1.0}  # labels are the float model's
    assert a["quantized"]["top1"] == pytest.approx(e["top1_agreement"], abs=0.5) and a["quantized"]["top5"] >= 0.9
    from mace.tools.report.sections import _quantization
    blocks = _quantization(q)
    tables = [b for b in blocks if b[0] == "table"]
    assert len(tables) == 3 and len(tables[0][2]) == len(layers) and tables[2][2][0][0] == "float"


def test_validate_needs_a_float_model(quantized_models, quantized_cnn, tmp_path):
    byo = tmp_path / "byo.mace"
    convert(quantized_models["QDQ"], byo)
    doc = _validate(byo, "--reference", quantized_models["QDQ"])
    assert "--float" in doc["quantization"]["note"]
    doc = _validate(byo, "--reference", quantized_models["QDQ"], "--float", quantized_models["float"], "--samples", 2)
    assert doc["quantization"]["end_to_end"]["inputs"] == 2
    res = CliRunner().invoke(cli, ["validate", str(byo), "--reference", str(quantized_models["QDQ"]), "--float",
                                   str(quantized_models["QDQ"]), "--runtime", "cpu"])
    assert res.exit_code == 2 and "give the float model" in res.output
    fl = tmp_path / "f.mace"
    convert(quantized_models["float"], fl)
    res = CliRunner().invoke(cli, ["validate", str(fl), "--reference", str(quantized_models["float"]), "--accuracy",
                                   str(quantized_cnn / "labelled.npz"), "--runtime", "cpu"])
    assert res.exit_code == 2 and "not quantized" in res.output
