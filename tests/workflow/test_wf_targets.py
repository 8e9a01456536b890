"""Builds for several devices: a failing one does not sink the others; MACE_DEVICE picks the
target when no list is given; no lock file is left behind."""
from __future__ import annotations

import dataclasses
import json

import pytest
from wf_helpers import copy_example, invoke

from mace.tools import build as build_mod


def test_one_failing_target_does_not_sink_the_others(tmp_path, monkeypatch, local_soc):
    real = build_mod.local_targets()[0]
    broken = dataclasses.replace(real, device_name="broken-gpu", soc="brokensoc", description="broken GPU")
    monkeypatch.setattr(build_mod, "select_targets", lambda socs: ([broken, real], []))
    compile_into = build_mod._compile_into

    def compile_or_fail(tb, *a, **kw):
        if tb.target is broken:                            # a driver dying halfway through its file
            tb.path.parent.mkdir(parents=True, exist_ok=True)
            tb.path.write_bytes(b"half")
            raise RuntimeError("clBuildProgram crashed")
        return compile_into(tb, *a, **kw)
    monkeypatch.setattr(build_mod, "_compile_into", compile_or_fail)
    cfg = copy_example(tmp_path)
    res = invoke(["convert", "--config", cfg, "--target-socs", "all", "--json"])
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    assert [t["device_name"] for t in doc["targets"]] == [real.device_name]
    assert doc["failed_targets"][0]["device_name"] == "broken-gpu"
    assert "clBuildProgram crashed" in doc["failed_targets"][0]["error"]
    opencl = tmp_path / "build" / "digits" / "opencl"
    assert doc["merged"] and doc["merged"]["sections"] == 1
    assert sorted(p.name for p in opencl.iterdir()) == sorted(
        ["digits_compiled_opencl_kernel.bin", f"digits_compiled_opencl_kernel.{real.device_name}.{real.soc}.bin"])
    res = invoke(["convert", "--config", cfg, "--target-socs", "all"])       # people read it too
    assert res.exit_code == 1 and "FAILED target" in res.stderr and "1 target(s) failed" in res.stdout


def test_every_target_failing_is_an_error(tmp_path, monkeypatch):
    real = build_mod.local_targets()[0]
    monkeypatch.setattr(build_mod, "select_targets", lambda socs: ([real], []))

    def fail(*a, **kw):
        raise RuntimeError("no driver")
    monkeypatch.setattr(build_mod, "compile_target", fail)
    res = invoke(["convert", "--config", copy_example(tmp_path), "--target-socs", "all"])
    assert res.exit_code == 2 and "every target failed" in res.stderr and "no driver" in res.stderr


@pytest.mark.parametrize("flags,enabled,socs", [([], False, None), (["--enable-opencl"], True, ["0"]),
                                                (["--target-socs", "all"], True, ["all"])])
def test_mace_device_is_the_default_target(tmp_path, monkeypatch, flags, enabled, socs):
    monkeypatch.setenv("MACE_DEVICE", "0")
    cfg = copy_example(tmp_path, runtime="cpu")            # no GPU model: nothing compiled, fast
    res = invoke(["convert", "--config", cfg, *flags, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["enable_opencl"] is enabled and doc["target_socs"] == socs


def test_no_lock_file_is_left(tmp_path):
    from mace.programcache import atomic
    target = tmp_path / "p.bin"
    with atomic.lock_for(target, 5):
        assert (tmp_path / "p.bin.lock").exists()
    assert not (tmp_path / "p.bin.lock").exists()
    with atomic.lock_for(target, 5):                       # and it can be taken again
        pass
    assert list(tmp_path.iterdir()) == []
