"""`mace convert --config` for target devices: per-target MACE-named program files, the merged
multi-device file, the seed's `tools/python/convert.py` command line, clear errors."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from wf_helpers import REPO, copy_example, invoke

from mace.programcache import DeviceFingerprint, ProgramCache
from mace.programcache.inspect import inspect_file
from mace.tools.build import kernel_file_name, local_targets, sanitize

NAME_RE = re.compile(r"^digits_compiled_opencl_kernel\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.bin$")


def test_per_target_and_merged_files(built, local_soc):
    cfg, doc = built
    lib = cfg.parent / "build" / "digits"
    assert doc["library_name"] == "digits" and doc["enable_opencl"] is True
    assert (lib / "model" / "digits_cnn.mace").is_file()
    assert len(doc["targets"]) >= 1
    target = local_targets()[doc["targets"][0]["index"]]
    t = doc["targets"][0]
    per_target = lib / "opencl" / kernel_file_name("digits", target.device_name, target.soc)
    assert Path(t["file"]) == per_target and per_target.is_file()
    m = NAME_RE.match(per_target.name)
    assert m and m.group(1) == sanitize(target.device.name) and m.group(2) == local_soc
    merged = lib / "opencl" / "digits_compiled_opencl_kernel.bin"
    assert Path(doc["merged"]["file"]) == merged and merged.is_file()
    assert not list((lib / "opencl").glob("*.lock"))

    built_model = t["models"]["digits_cnn"]
    fp = DeviceFingerprint.from_cl_device(target.device)
    for path in (per_target, merged):
        info = inspect_file(path)
        assert info["format"] == "mace" and not [f for f in info["findings"] if f["severity"] == "error"]
        assert [s["id"] for s in info["sections"]] == [fp.id]
        assert len(info["programs"]) == built_model["compiled"] + built_model["from_cache"]
        assert all(p["checksum"] == "ok" for p in info["programs"])
        cache = ProgramCache.open(path.read_bytes(), device_fp=fp)
        assert len(cache.program_keys(fp)) == len(info["programs"])
    if built_model["fallback_nodes"] < built_model["nodes"]:     # the GPU runtime ran something
        assert built_model["compiled"] > 0
        # a deployment loads every program from the shipped file: nothing compiled
        import mace
        e = mace.Engine(lib / "model" / "digits_cnn.mace", runtime="gpu", device=target.index,
                        program=merged)          # a private build directory: trusted
        assert e.program_cache_report.compiled == 0
        assert e.program_cache_report.from_cache == built_model["compiled"]


def test_seed_command_line(tmp_path, local_soc):
    cfg = copy_example(tmp_path / "proj")
    cmd = [sys.executable, "tools/python/convert.py", f"--config={cfg}", "--target_abi=armeabi-v7a",
           f"--target_socs={local_soc}", "--enable_opencl=true"]
    env = dict(os.environ, PYOPENCL_NO_CACHE="1")
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    opencl = cfg.parent / "build" / "digits" / "opencl"
    names = sorted(p.name for p in opencl.glob("*.bin"))
    assert "digits_compiled_opencl_kernel.bin" in names
    assert any(NAME_RE.match(n) and n.endswith(f".{local_soc}.bin") for n in names), names
    assert "merged 1 target file(s)" in res.stdout
    # --enable_opencl=false: the model only
    cfg2 = copy_example(tmp_path / "noocl")
    res = subprocess.run([*cmd[:2], f"--config={cfg2}", f"--target_socs={local_soc}", "--enable_opencl=false"],
                         cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (cfg2.parent / "build" / "digits" / "model" / "digits_cnn.mace").is_file()
    assert not (cfg2.parent / "build" / "digits" / "opencl").exists()


def test_opencl_off_without_targets(tmp_path):
    """Like MACE, no target_socs means no OpenCL binaries (unless --enable-opencl)."""
    from wf_helpers import invoke_json
    cfg = copy_example(tmp_path)
    doc = invoke_json(["convert", "--config", cfg, "--json"])
    assert doc["enable_opencl"] is False and doc["targets"] == [] and doc["merged"] is None
    assert doc["models"][0]["output"].endswith("digits_cnn.mace")


def _one_line_error(res, text):
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert text in res.stderr


def test_errors_are_one_line(tmp_path, monkeypatch):
    cfg = copy_example(tmp_path)
    _one_line_error(invoke(["convert", "--config", cfg, "--target-socs", "sdm845-no-such-soc"]),
                    "no such OpenCL device on this machine")
    _one_line_error(invoke(["convert", "--config", cfg, "--target-abi", "mips"]), "unknown ABI")
    _one_line_error(invoke(["convert", "model.onnx", "--target-socs", "all"]), "need --config")
    # a mace without the remote (mace.deploy) or tuning (mace.tuning) packages
    monkeypatch.setitem(sys.modules, "mace.deploy", None)
    monkeypatch.setitem(sys.modules, "mace.deploy.remote", None)
    monkeypatch.setitem(sys.modules, "mace.tuning", None)
    (tmp_path / "devices.yml").write_text("devices: {}\n")
    _one_line_error(invoke(["convert", "--config", cfg, "--device-conf", tmp_path / "devices.yml"]),
                    "remote targets need mace.deploy")
    _one_line_error(invoke(["convert", "--config", cfg, "--target-socs", "all", "--tune"]),
                    "--tune needs mace.tuning")
    assert not (tmp_path / "build").exists()          # both fail before converting anything


def test_target_selection_by_index_name_and_all():
    from mace.tools.build import select_targets
    everything, missing = select_targets(None)
    assert everything and not missing
    first = everything[0]
    for spec in (str(first.index), first.soc, first.device_name, "all"):
        chosen, missing = select_targets([spec])
        assert first in chosen and not missing
    chosen, missing = select_targets([first.soc, "nope-soc"])
    assert chosen and missing == ["nope-soc"]


@pytest.mark.parametrize("raw, want", [("pthread-Intel(R) Xeon(R) Processor", "pthread-Intel-Xeon-Processor"),
                                       ("QUALCOMM Adreno(TM)", "QUALCOMM-Adreno"),
                                       ("Mali-G76 r0p0", "Mali-G76-r0p0"), ("NVIDIA GeForce RTX 3080", "NVIDIA-GeForce-RTX-3080")])
def test_sanitized_names(raw, want):
    assert sanitize(raw) == want


def test_tune_writes_records_into_the_target_files(tmp_path, local_soc):
    pytest.importorskip("mace.tuning")
    from wf_helpers import invoke_json
    cfg = copy_example(tmp_path)
    doc = invoke_json(["convert", "--config", cfg, "--target-socs", local_soc, "--tune", "--tune-mode", "fast",
                       "--json"])
    t = doc["targets"][0]
    tuned = t["tuning"]["digits_cnn"]
    assert tuned["mode"] == "fast" and tuned["ops"]
    for path in (t["file"], doc["merged"]["file"]):
        info = inspect_file(path)
        assert len(info["tuning"]) == len(tuned["ops"])
    assert doc["merged"]["tuning"] == len(tuned["ops"])
