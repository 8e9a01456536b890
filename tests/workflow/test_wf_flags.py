"""MACE's seed flag forms on `mace convert` itself, and options that only mean something together."""
from __future__ import annotations

import json

from wf_helpers import copy_example, invoke


def test_enable_opencl_takes_mace_values(tmp_path):
    cfg = copy_example(tmp_path, runtime="cpu")          # a CPU model: nothing to compile, fast
    for flag, want in (("--enable_opencl=true", True), ("--enable_opencl=false", False),
                       ("--enable-opencl=1", True), ("--enable-opencl", True), ("--no-enable-opencl", False),
                       ("--no-enable_opencl", False)):
        res = invoke(["convert", f"--config={cfg}", "--target_abi=armeabi-v7a", flag, "--json"])
        assert res.exit_code == 0, (flag, res.output)
        assert json.loads(res.stdout)["enable_opencl"] is want, flag


def test_bad_enable_opencl_value_and_contradictions(tmp_path):
    cfg = copy_example(tmp_path, runtime="cpu")
    res = invoke(["convert", f"--config={cfg}", "--enable_opencl=maybe"])
    assert res.exit_code == 2 and "--enable_opencl=maybe: expected true or false" in res.stderr
    res = invoke(["convert", f"--config={cfg}", "--enable-opencl", "--no-enable-opencl"])
    assert res.exit_code == 2 and "contradict" in res.stderr


def test_tune_options_need_tune(tmp_path):
    cfg = copy_example(tmp_path, runtime="cpu")
    for extra in (["--tune-mode", "fast"], ["--tune_budget", "5"]):
        res = invoke(["convert", "--config", cfg, *extra])
        assert res.exit_code == 2 and "apply only with --tune" in res.stderr, res.output


def test_validate_threshold_range(tmp_path):
    res = invoke(["validate", tmp_path / "m.mace", "--reference", tmp_path / "m.onnx", "--threshold", "1.01"])
    assert res.exit_code == 2 and "1.01 is not in the range" in res.stderr


def test_build_summary_counts_remote_targets(capsys):
    from mace.cli.workflow import _print_build
    doc = {"models": [], "targets": [], "merged": None, "enable_opencl": True, "bundles": [], "seconds": 1.0,
           "remote": {"devices": [{"device": "nanopi", "address": "10.0.0.5",
                                   "file": "build/digits/opencl/digits_compiled_opencl_kernel.NanopiM4.rk3399.bin"}]}}
    _print_build(doc)
    out = capsys.readouterr().out
    assert "remote nanopi (10.0.0.5) -> build/digits/opencl/" in out and "for 1 target(s)" in out


def test_report_help_says_where_its_targets_come_from():
    res = invoke(["report", "--help"])
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "(default: all)" not in text
    assert "read the existing build, else build for the yml's target_socs, else all" in text
    assert "--tune" in text
