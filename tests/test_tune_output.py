"""`mace tune`: the per-op table and the whole-model summary agree, and say what the
whole-model check did and why."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from mace.cli import cli
from mace.cli.render import render_tune, tune_summary

EXAMPLE = Path(__file__).resolve().parents[1] / "mace" / "examples" / "digits"


def _doc(guard, reverted, ops):
    return {"mode": "fast", "seconds": 1.0, "model_before_ms": 6.67, "model_after_ms": 6.67 if reverted else 4.0,
            "gain": 0.0, "candidates": 12, "failed": 0, "untuned_ops": 0, "min_gain": 0.03, "guard": guard,
            "reverted_to_defaults": reverted, "ops": ops}


def _op(name, found_gain, changed):
    return {"name": name, "op_type": "Conv", "default_ms": 1.0, "found_ms": 1.0 - found_gain,
            "found_gain": found_gain, "gain": found_gain if changed else 0.0, "changed": changed,
            "variant": "gpu_direct", "lws": [[8, 8, 1]]}


def test_summary_when_the_guard_reverts():
    d = _doc({"changed_ops": 2, "default_ms": 6.67, "tuned_ms": 6.60, "min_gain": 0.03, "kept_tuned": False,
              "gain": 0.0101}, True, [_op("a", 0.466, False), _op("b", 0.44, False)])
    text = "\n".join(tune_summary(d))
    assert "6.67 ms with the defaults, 6.60 ms with the 2 per-op winner(s) (+1.0 %)" in text
    assert "did not add up to the 3 % a change must win by" in text and "keeps its default" in text


def test_summary_when_tuning_is_kept_or_nothing_changed():
    d = _doc({"changed_ops": 1, "default_ms": 6.0, "tuned_ms": 4.0, "min_gain": 0.03, "kept_tuned": True,
              "gain": 1 / 3}, False, [_op("a", 1 / 3, True)])
    assert "6.00 ms with the defaults, 4.00 ms tuned (+33.3 %): the 1 changed op(s) are kept" in tune_summary(d)[0]
    d = _doc(None, False, [_op("a", 0.0, False)])
    assert "defaults kept" in tune_summary(d)[0]


def test_real_tune_table_agrees_with_summary(tmp_path, monkeypatch, capsys):
    for name in ("digits_cnn.onnx", "mace.yml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    runner = CliRunner()
    res = runner.invoke(cli, ["convert", "--config", str(tmp_path / "mace.yml"), "--no-enable-opencl"])
    assert res.exit_code == 0, res.output
    model = tmp_path / "build" / "digits" / "model" / "digits_cnn.mace"
    import mace.tuning.tuner as tuner
    monkeypatch.setattr(tuner, "_model_latency", lambda engine, runs=5: 0.005)   # tuned never faster
    res = runner.invoke(cli, ["tune", str(model), "--program", str(tmp_path / "p.bin"), "--mode", "fast", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    for o in d["ops"]:                                   # what is kept is what the summary reports
        assert o["gain"] == 0.0 or o["changed"]
    if d["guard"] is not None:                           # some op changed: the check ran and reverted
        assert d["reverted_to_defaults"] and not any(o["changed"] for o in d["ops"])
        assert d["model_after_ms"] == d["model_before_ms"]
    render_tune(d, str(model))
    out = capsys.readouterr().out
    if d["guard"] is not None:
        assert "did not add up" in out
        assert "default (whole-model check)" in out or not any(o["found_gain"] > 0 for o in d["ops"])
    else:
        assert "defaults kept" in out
