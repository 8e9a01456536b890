"""`quantize: 1` / `quantize_large_weights: 1` (mace.yml and the CLI): calibration from .npy or
image folders, minmax or percentile, per-channel or per-tensor weights, range files."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from click.testing import CliRunner

import mace
from mace.cli import cli
from mace.convert import convert
from mace.errors import ConversionError, InputError
from mace.quantize.options import QuantizeOptions

from .conftest import calibration_inputs


def _cos(a, b):
    a, b = a.ravel(), b.ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib")
    xs = calibration_inputs(16)
    for k, x in enumerate(xs[:8]):
        np.save(d / f"{k:02d}.npy", x)
    np.save(d / "batch.npy", np.concatenate(xs[8:]))  # a batch along the leading dimension
    return d


def _outputs(graph_or_path, xs):
    e = mace.Engine(graph_or_path, runtime="cpu")
    return np.concatenate([e.run({"input": x})["output"] for x in xs])


def _yml(tmp_path, model, **fields):
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    extra = "".join(f"    {k}: {v}\n" for k, v in fields.items())
    (tmp_path / "mace.yml").write_text(
        f"library_name: lib\nmodels:\n  m:\n    platform: onnx\n    model_file_path: {model}\n"
        f"    model_sha256_checksum: {sha}\n    input_tensors: [input]\n    input_shapes: ['1,3,16,16']\n"
        f"    input_ranges: ['0,1']\n    output_tensors: [output]\n    output_shapes: ['1,10']\n{extra}")
    return tmp_path / "mace.yml"


def test_quantize_full_from_config_and_range_file(quantized_models, calib_dir, tmp_path):
    fl = quantized_models["float"]
    yml = _yml(tmp_path, fl, quantize=1, quantize_range_file="ranges.txt", quantize_stat="percentile")
    res = CliRunner().invoke(cli, ["convert", "--config", str(yml), "--calibration", str(calib_dir), "--json"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "build" / "lib" / "model" / "m.mace"
    graph = mace.Engine(out, runtime="cpu").graph
    assert graph.op_counts()["FakeQuantize"] >= 6 and graph.meta["quantize"]["stat"] == "percentile"
    assert all(len(i["scale"]) > 1 for i in graph.meta["quantized_weights"].values())  # per channel
    ranges = (tmp_path / "ranges.txt").read_text()
    assert "input@@" in ranges and "output@@" in ranges
    xs = calibration_inputs(8, seed=5)
    ref = _outputs(convert(fl), xs)
    assert _cos(_outputs(out, xs), ref) > 0.99
    # the range file alone gives the same model
    again = convert(fl, quantize=QuantizeOptions(range_file=tmp_path / "ranges.txt", stat="percentile"))
    assert np.array_equal(_outputs(again, xs), _outputs(out, xs))


def test_weights_only_and_per_tensor(quantized_models, tmp_path):
    fl = quantized_models["float"]
    xs = calibration_inputs(4, seed=3)
    ref = _outputs(convert(fl), xs)
    for per_channel in (True, False):
        g = convert(fl, tmp_path / "w.mace", quantize=QuantizeOptions(mode="weights", per_channel=per_channel))
        assert "FakeQuantize" not in g.op_counts()
        infos = g.meta["quantized_weights"]
        assert infos and all((len(i["scale"]) > 1) == per_channel for i in infos.values())
        assert _cos(_outputs(tmp_path / "w.mace", xs), ref) > 0.999


def test_image_calibration(quantized_models, tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for k in range(4):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / f"{k}.png")
    g = convert(quantized_models["float"], quantize=QuantizeOptions(calibration=tmp_path))
    assert g.op_counts()["FakeQuantize"] >= 6


def test_bad_quantization_input(quantized_models, calib_dir, tmp_path):
    fl = quantized_models["float"]
    res = CliRunner().invoke(cli, ["convert", "--config", str(_yml(tmp_path, fl, quantize=1)), "--json"])
    assert res.exit_code == 2 and "quantize: 1 needs activation ranges" in res.output
    (tmp_path / "bad.txt").write_text("input@@0,1\noutput 3\n")
    with pytest.raises(ConversionError, match=r"bad.txt:2: expected"):
        convert(fl, quantize=QuantizeOptions(range_file=tmp_path / "bad.txt"))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    np.save(wrong / "a.npy", np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(InputError, match="is not the input's"):
        convert(fl, quantize=QuantizeOptions(calibration=wrong))
    res = CliRunner().invoke(cli, ["convert", str(fl), "-o", str(tmp_path / "x.mace"), "--calibration", str(calib_dir)])
    assert res.exit_code == 2 and "--quantize full" in res.output


def test_short_form_cli(quantized_models, calib_dir, tmp_path):
    res = CliRunner().invoke(cli, ["convert", str(quantized_models["float"]), "-o", str(tmp_path / "q.mace"),
                                   "--quantize", "full", "--calibration", str(calib_dir), "--per-tensor", "--json"])
    assert res.exit_code == 0, res.output
    g = mace.Engine(tmp_path / "q.mace", runtime="cpu").graph
    assert all(len(i["scale"]) == 1 for i in g.meta["quantized_weights"].values())
