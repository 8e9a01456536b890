"""The command line with source models: the short form tells the framework from the file,
validate --reference takes the source model, and what mace cannot read is one line, exit 2."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mace.cli import cli


def test_short_form_detects_and_validates_against_source(tf_models, tmp_path):
    out = tmp_path / "r.mace"
    res = CliRunner().invoke(cli, ["convert", str(tf_models["tflite"]), "-o", str(out), "--input-format", "NCHW",
                                   "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["models"][0]["output"] == str(out)
    res = CliRunner().invoke(cli, ["validate", str(out), "--reference", str(tf_models["tflite"]), "--runtime", "cpu",
                                   "--threshold", "0.999", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["passed"] and all(o["cosine"] >= 0.999 for o in doc["outputs"].values())


@pytest.mark.parametrize("name,content,message", [
    ("net.prototxt", b"name: 'net'\n", "no maintained Caffe parser exists): convert the model to ONNX"),
    ("weights.bin", b"\x00\x01garbage", "cannot tell the framework from the file name"),
    ("broken.tflite", b"\x00\x00\x00\x00TFL3\x00\x00", "not a readable TFLite flatbuffer"),
    ("broken.pt2", b"not a zip", "not a PyTorch archive"),
])
def test_unreadable_sources_are_one_line_exit_2(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    res = CliRunner().invoke(cli, ["convert", str(tmp_path / name), "-o", str(tmp_path / "x.mace")])
    assert res.exit_code == 2, res.output
    assert message in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_short_form_options_refused_with_config(tmp_path):
    res = CliRunner().invoke(cli, ["convert", "--config", str(tmp_path / "mace.yml"), "--platform", "tflite"])
    assert res.exit_code == 2 and "are for the short form" in res.stderr


def test_onnx_model_with_nhwc_inputs_validates_against_onnxruntime(tmp_path):
    """input_data_formats on an ONNX model: mace takes NHWC, onnxruntime gets NCHW from validate."""
    from pathlib import Path
    onnx_file = Path(__file__).resolve().parents[2] / "mace" / "examples" / "digits" / "digits_cnn.onnx"
    out = tmp_path / "d.mace"
    res = CliRunner().invoke(cli, ["convert", str(onnx_file), "-o", str(out), "--input-format", "NHWC"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["validate", str(out), "--reference", str(onnx_file), "--runtime", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["passed"] and doc["outputs"]["output"]["cosine"] >= 0.999
