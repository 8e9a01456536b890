"""`mace report --config` reads the existing build and never rewrites it (tuned files stay tuned)."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from wf_helpers import invoke_json


def _snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_report_reads_the_build_and_leaves_it_untouched(built, tmp_path):
    cfg, doc = built
    proj = tmp_path / "proj"
    shutil.copytree(Path(cfg).parent, proj)
    before = _snapshot(proj / "build")
    assert any(k.endswith("_compiled_opencl_kernel.bin") for k in before)
    res = invoke_json(["report", "--config", proj / "mace.yml", "-o", tmp_path / "r", "--runs", "3",
                       "--init-runs", "1", "--top", "3", "--json"])
    assert _snapshot(proj / "build") == before                        # not one byte, not one mtime
    assert not (tmp_path / "r" / "build").exists()
    assert res["commands"][0].startswith("mace convert --config")
    text = Path(res["markdown"]).read_text()
    assert "read from the existing build" in text
    assert "digits_compiled_opencl_kernel.bin" in text and "| cpu | output |" in text


def test_report_tune_builds_its_own_copy(built, tmp_path):
    cfg, _ = built
    proj = tmp_path / "proj"
    shutil.copytree(Path(cfg).parent, proj)
    before = _snapshot(proj / "build")
    res = invoke_json(["report", "--config", proj / "mace.yml", "-o", tmp_path / "r", "--tune", "--runs", "3",
                       "--init-runs", "1", "--top", "3", "--json"])
    assert _snapshot(proj / "build") == before
    assert "--tune" in res["commands"][0] and "--build-dir" in res["commands"][0]
    merged = tmp_path / "r" / "build" / "digits" / "opencl" / "digits_compiled_opencl_kernel.bin"
    from mace.programcache.inspect import inspect_file
    assert inspect_file(merged)["tuning"]                              # the report's build is tuned
