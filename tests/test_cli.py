"""CLI: exit codes (0 ok, 1 check failed, 2 bad input), --json shapes, the demo."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mace.cli import cli
from mace.convert import convert

EXAMPLE = Path(__file__).resolve().parents[1] / "mace" / "examples" / "digits"


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "digits.mace"
    convert(EXAMPLE / "digits_cnn.onnx", path, input_ranges={"input": (0.0, 1.0)})
    return path


def _json(res):
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.mark.parametrize("runtime", ["cpu", "gpu"])
def test_run_json(digits_model, runtime, tmp_path):
    prog = tmp_path / "prog.bin"
    out = _json(CliRunner().invoke(
        cli, ["run", str(digits_model), "--runtime", runtime, "--runs", "5", "--json", "--program", str(prog),
              "--output-dir", str(tmp_path / "o")]))
    assert out["outputs"]["output"]["shape"] == [1, 10]
    assert out["latency"]["runs"] == 5 and out["latency"]["median_ms"] > 0
    assert out["summary"]["runtime"] == runtime
    assert np.load(tmp_path / "o" / "output.npy").shape == (1, 10)
    if runtime == "gpu":
        assert "program_cache" in out["summary"]


def test_run_with_input_file(digits_model, tmp_path):
    x = np.random.default_rng().uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = _json(CliRunner().invoke(
        cli, ["run", str(digits_model), "--runtime", "cpu", "--input", f"input={tmp_path / 'x.npy'}", "--json"]))
    import mace
    want = mace.Engine(digits_model, runtime="cpu").run({"input": x})["output"]
    assert out["outputs"]["output"]["argmax"] == int(np.argmax(want))


@pytest.mark.parametrize("args, message", [
    (["run", "missing.mace"], "no such model file"),
    (["run", "{model}", "--input", "input=missing.npy"], "missing.npy: no such file"),
    (["run", "{model}", "--device", "no-such-device-xyz"], "no OpenCL device matches"),
    (["validate", "{model}", "--reference", "missing.onnx"], "no such ONNX file"),
    (["convert"], "give an ONNX model"),
])
def test_bad_input_exit_2(digits_model, args, message):
    args = [a.replace("{model}", str(digits_model)) for a in args]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr and res.stderr.count("\n") == 1


@pytest.mark.parametrize("runtime", ["cpu", "gpu"])
def test_validate_pass_and_fail(digits_model, runtime, tmp_path):
    ok = CliRunner().invoke(
        cli, ["validate", str(digits_model), "--reference", str(EXAMPLE / "digits_cnn.onnx"), "--runtime", runtime, "--json"])
    res = json.loads(ok.stdout)
    assert ok.exit_code == 0 and res["passed"]
    m = res["outputs"]["output"]
    assert m["cosine"] > 0.9999 and m["sqnr_db"] > 40 and m["argmax_agreement"] == 1.0
    # a reference that disagrees (its classifier weights negated) fails with exit code 1
    import onnx
    from onnx import numpy_helper
    ref = onnx.load(EXAMPLE / "digits_cnn.onnx")
    for init in ref.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.ndim == 2:
            init.CopyFrom(numpy_helper.from_array(-a, init.name))
    onnx.save(ref, tmp_path / "other.onnx")
    bad = CliRunner().invoke(
        cli, ["validate", str(digits_model), "--reference", str(tmp_path / "other.onnx"), "--runtime", runtime,
              "--json"])
    assert bad.exit_code == 1 and not json.loads(bad.stdout)["passed"]
    # an impossible threshold is refused, not silently failed
    res = CliRunner().invoke(cli, ["validate", str(digits_model), "--reference", str(EXAMPLE / "digits_cnn.onnx"),
                                   "--threshold", "1.0000001"])
    assert res.exit_code == 2 and "not in the range" in res.output


def test_demo_reports_accuracy_on_both_runtimes(tmp_path, monkeypatch):
    monkeypatch.setenv("MACE_PROGRAM_PATH", str(tmp_path / "prog.bin"))
    out = _json(CliRunner().invoke(cli, ["demo", "--json"]))
    for rt in ("gpu", "cpu"):
        assert out["runtimes"][rt]["accuracy"] > 0.9
    assert out["runtimes"]["gpu"]["accuracy"] == pytest.approx(out["runtimes"]["cpu"]["accuracy"], abs=0.01)


def test_python_module_entry_point():
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "mace", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and "mace" in res.stdout
