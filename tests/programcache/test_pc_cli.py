"""`inspect`, `doctor`, `cache verify|merge|prune` through click's CliRunner."""
from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from pc_helpers import LEGACY_FIXTURE, make_fp

from mace.cli.cache import register
from mace.programcache import DeviceFingerprint, ProgramCache
from mace.programcache.doctor import doctor


@pytest.fixture(scope="module")
def cli():
    @click.group()
    def top():
        pass
    register(top)
    return top


def run(cli, *args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def make_cache(path, fp, keys=("conv|-DA|ab", "pool||cd"), cap=None):
    c = ProgramCache.open(path, device_fp=fp, max_bytes=cap)
    for i, k in enumerate(keys):
        c.put_binary(fp, k, b"poclbin\0" + bytes([i]) * 5000)
    c.put_tuning(fp, "conv_8_8", {"lws": [8, 8, 1]})
    assert c.save()
    return c


def test_register_adds_commands_and_merges_into_an_existing_cache_group():
    @click.group()
    def top():
        pass

    @top.group("cache")
    def cache():
        pass

    @cache.command("clear")
    def clear():
        pass
    register(top)
    assert {"inspect", "doctor", "cache"} <= set(top.commands)
    assert set(top.commands["cache"].commands) == {"clear", "verify", "merge", "prune", "keygen", "sign",
                                                   "publish", "pull"}


def test_inspect_ours_json_shape(cli, cache_path, fp_a):
    make_cache(cache_path, fp_a)
    r = run(cli, "inspect", cache_path, "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert set(info) == {"path", "size", "format", "header", "sections", "programs", "tuning",
                         "quarantine", "caps", "build_failures", "xiaomi", "findings", "trust"}
    assert info["format"] == "mace" and info["header"]["format"] == "1.2"
    assert [s["id"] for s in info["sections"]] == [fp_a.id]
    p = info["programs"][0]
    assert p["program"] == "conv" and p["build_options"] == "-DA" and p["checksum"] == "ok"
    assert p["kind"] == "pocl" and p["size"] == 5008 and p["hits"] == 0
    assert info["tuning"][0]["record"] == {"lws": [8, 8, 1]}


def test_inspect_human_output(cli, cache_path, fp_a):
    make_cache(cache_path, fp_a)
    r = run(cli, "inspect", cache_path)
    assert r.exit_code == 0 and "device sections" in r.output and "conv" in r.output


def test_inspect_xiaomi_fixture(cli):
    r = run(cli, "inspect", LEGACY_FIXTURE, "--json")
    assert r.exit_code == 0
    info = json.loads(r.output)
    assert info["format"] == "mace-legacy" and info["xiaomi"]["entries"] == 26
    assert len(info["xiaomi"]["programs"]) == 25
    assert info["xiaomi"]["platform_info"].startswith("QUALCOMM Snapdragon(TM), FULL_PROFILE")
    assert [f["code"] for f in info["findings"]] == ["XIAOMI_FORMAT"]
    human = run(cli, "inspect", LEGACY_FIXTURE)
    assert human.exit_code == 0 and "platform info" in human.output


def test_inspect_exit_codes(cli, tmp_path):
    assert run(cli, "inspect", tmp_path / "nope.bin").exit_code == 2
    r = run(cli, "inspect", tmp_path / "nope.bin", "--json")
    assert r.exit_code == 2 and json.loads(r.output)["ok"] is False
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"definitely not a cache")
    r = run(cli, "inspect", junk, "--json")
    assert r.exit_code == 1 and json.loads(r.output)["findings"][0]["code"] == "MAGIC_MISMATCH"


def test_doctor_function(cache_path, fp_a, fp_b):
    make_cache(cache_path, fp_a)
    res = doctor(cache_path, fp_a, required_keys=["conv|-DA|ab"])
    assert res.ok and res.stats["device_programs"] == 2
    res = doctor(cache_path, fp_a, required_keys=["conv|-DA|ab", "softmax||ee"])
    assert not res.ok and [f.code for f in res.findings] == ["MISSING_PROGRAMS"]
    assert res.stats["required_missing"] == ["softmax||ee"]
    res = doctor(cache_path, fp_b)
    assert not res.ok and res.findings[0].code == "FOREIGN_DEVICE"
    assert all(f.cause and f.fix for f in res.findings)
    res = doctor(cache_path.with_name("absent.bin"), fp_a)
    assert not res.ok and res.findings[0].code == "MISSING"
    assert doctor(LEGACY_FIXTURE, fp_a).findings[0].code == "XIAOMI_FORMAT"


def test_doctor_cli_with_the_pocl_device(cli, cache_path, pocl_device):
    fp = DeviceFingerprint.from_cl_device(pocl_device)
    r = run(cli, "doctor", cache_path, "--json")
    assert r.exit_code == 2                                      # no such file
    make_cache(cache_path, make_fp())
    r = run(cli, "doctor", cache_path, "--device", "0", "--json")
    assert r.exit_code == 1, r.output
    out = json.loads(r.output)
    assert out["ok"] is False and out["device"]["id"] == fp.id
    assert [f["code"] for f in out["findings"]] == ["FOREIGN_DEVICE"]
    make_cache(cache_path, fp)
    r = run(cli, "doctor", cache_path)
    assert r.exit_code == 0, r.output
    assert "usable" in r.output
    assert run(cli, "doctor", cache_path, "--device", "no-such-device-anywhere").exit_code == 2


def test_verify(cli, cache_path, fp_a):
    make_cache(cache_path, fp_a)
    r = run(cli, "cache", "verify", cache_path, "--json")
    out = json.loads(r.output)
    assert r.exit_code == 0 and out["ok"] is True and out["path"] == str(cache_path)
    assert [(f["code"], f["severity"]) for f in out["findings"]] == [("SIGNATURE", "info")]
    assert "unsigned; the file is trusted by location" in out["findings"][0]["message"]
    raw = bytearray(cache_path.read_bytes())
    raw[raw.index(bytes([1]) * 5000) + 7] ^= 1
    cache_path.write_bytes(bytes(raw))
    r = run(cli, "cache", "verify", cache_path, "--json")
    out = json.loads(r.output)
    assert r.exit_code == 1 and out["ok"] is False
    assert [(f["code"], f["key"]) for f in out["findings"]
            if f["severity"] != "info"] == [("DAMAGED_ENTRY", "pool||cd")]
    assert run(cli, "cache", "verify", cache_path.with_name("x")).exit_code == 2
    assert run(cli, "cache", "verify", LEGACY_FIXTURE).exit_code == 0


def test_merge(cli, tmp_path, fp_a, fp_b):
    a, b, out = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "out" / "c.bin"
    make_cache(a, fp_a, keys=("x||1", "shared||2"))
    make_cache(b, fp_b, keys=("y||3", "shared||2"))
    r = run(cli, "cache", "merge", a, b, "-o", out, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["ok"] and res["stats"]["programs"] == 4 and res["stats"]["sections"] == 2
    merged = ProgramCache.open(out)
    assert merged.get_binary(fp_a, "x||1") and merged.get_binary(fp_b, "y||3")
    assert merged.get_binary(fp_a, "shared||2") and merged.get_binary(fp_b, "shared||2")
    assert run(cli, "cache", "merge", a, LEGACY_FIXTURE, "-o", out).exit_code == 2
    assert run(cli, "cache", "merge", a, tmp_path / "none", "-o", out).exit_code == 2
    text = tmp_path / "mace.yml"
    text.write_text("library_name: x\n")
    r = run(cli, "cache", "merge", a, b, "-o", text)
    assert r.exit_code == 2 and text.read_text() == "library_name: x\n"
    assert r.output.count("\n") == 1 and "not a mace program cache: not overwritten" in r.output
    if Path("/dev/null").exists():
        r = run(cli, "cache", "merge", a, b, "-o", "/dev/null")
        assert r.exit_code == 2 and r.output.startswith("error: /dev/null: is a character device")


def test_merge_newer_last_use_wins(tmp_path, fp_a):
    from mace.programcache.maintenance import merge
    a, b, out = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"
    make_cache(a, fp_a, keys=("k||1",))
    c = ProgramCache.open(b, device_fp=fp_a)
    c.put_binary(fp_a, "k||1", b"newer binary")
    c.save()
    assert merge(a, b, out).ok
    assert ProgramCache.open(out).get_binary(fp_a, "k||1") == b"newer binary"
    assert merge(b, a, out).ok
    assert ProgramCache.open(out).get_binary(fp_a, "k||1") == b"newer binary"


def test_prune(cli, cache_path, fp_a):
    make_cache(cache_path, fp_a, keys=tuple(f"k{i}||x" for i in range(6)))
    before = cache_path.stat().st_size
    r = run(cli, "cache", "prune", cache_path, "--max-bytes", "12000", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["stats"]["bytes_before"] == before and res["stats"]["bytes_after"] <= 12000
    assert len(res["stats"]["dropped"]) == 4
    assert cache_path.stat().st_size <= 12000
    assert run(cli, "cache", "prune", cache_path, "--max-bytes", "lots").exit_code == 2
    r = run(cli, "cache", "prune", cache_path, "--max-bytes", "10", "--json")
    assert r.exit_code == 1
    assert json.loads(r.output)["findings"][-1]["code"] == "MACE_OUT_OF_RESOURCES"
