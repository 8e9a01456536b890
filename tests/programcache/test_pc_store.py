"""ProgramCache: open never raises, get/put/quarantine/tuning, save merges atomically."""
from __future__ import annotations

import logging
import os

import pytest
from pc_helpers import LEGACY_FIXTURE, make_fp, with_version

from mace.programcache import (
    DeviceFingerprint,
    LoadReport,
    ProgramCache,
    default_cache_path,
    program_key,
    settings,
)
from mace.programcache import format as F

LOG = "mace.programcache"


def codes(cache):
    return [f.code for f in cache.report.findings]


def saved(path, fp, entries):
    c = ProgramCache.open(path, device_fp=fp)
    for k, blob in entries.items():
        assert c.put_binary(fp, k, blob)
    assert c.save()
    return c


# {{{ keys, settings

def test_program_key_is_deterministic_and_documented():
    k1 = program_key("conv_2d_1x1", ["-DB", "-DA", "", " -DA "], "src")
    k2 = program_key("conv_2d_1x1", ["-DA", "-DB"], "src")
    assert k1 == k2 == "conv_2d_1x1|-DA -DB|" + __import__("hashlib").sha256(b"src").hexdigest()[:16]
    assert program_key("conv_2d_1x1", ["-DA"], "src2") != k2
    with pytest.raises(ValueError):
        program_key("a|b", [], "")


def test_default_cache_path(monkeypatch, tmp_path):
    assert default_cache_path().name == "mace-cl-compiled-program.bin"
    monkeypatch.setenv("MACE_PROGRAM_PATH", str(tmp_path / "x.bin"))
    assert default_cache_path() == tmp_path / "x.bin"
    cache = ProgramCache.open(None)
    assert cache.path == tmp_path / "x.bin" and cache.report.format == "missing"


def test_max_bytes_knob(monkeypatch, caplog):
    assert settings.max_bytes() == 256 * 1024 * 1024
    monkeypatch.setenv("MACE_PROGRAM_CACHE_MAX_BYTES", "64MiB")
    assert settings.max_bytes() == 64 * 1024 * 1024
    monkeypatch.setenv("MACE_PROGRAM_CACHE_MAX_BYTES", "lots")
    with caplog.at_level(logging.WARNING, LOG):
        assert settings.max_bytes() == settings.DEFAULT_MAX_BYTES
    assert "MACE_PROGRAM_CACHE_MAX_BYTES" in caplog.text

# }}}


def test_round_trip_through_the_file(cache_path, fp_a):
    c = ProgramCache.open(cache_path, device_fp=fp_a)
    assert c.put_binary(fp_a, "k1", b"blob1", meta={"build_log_sha": "ab"})
    c.put_tuning(fp_a, "conv_8_8", {"lws": [8, 8, 1], "median_s": 0.001})
    assert c.save() and not c.save()          # second save: nothing changed
    c2 = ProgramCache.open(cache_path, device_fp=fp_a)
    assert c2.report.format == "mace" and c2.report.findings == []
    assert c2.get_binary(fp_a, "k1") == b"blob1"
    assert c2.get_tuning(fp_a, "conv_8_8") == {"lws": [8, 8, 1], "median_s": 0.001}
    assert c2.get_tuning(fp_a, "nope") is None
    assert (c2.report.tuning_hits, c2.report.tuning_misses) == (1, 1)
    assert c2.tuning_records(fp_a) == {"conv_8_8": {"lws": [8, 8, 1], "median_s": 0.001}}
    assert c2.program_keys(fp_a) == ["k1"]


def test_missing_file(cache_path, fp_a, caplog):
    with caplog.at_level(logging.DEBUG, LOG):
        c = ProgramCache.open(cache_path, device_fp=fp_a)
    assert c.report.format == "missing" and codes(c) == ["MISSING"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert c.first_run_message(7) == (f"There is no precompiled OpenCL binary at {cache_path}: "
                                      f"compiling 7 programs (first run)")
    assert c.get_binary(fp_a, "k") is None
    c.put_binary(fp_a, "k", b"x")
    assert c.save() and cache_path.exists()


def test_foreign_fingerprint_is_never_served_and_kept(cache_path, fp_a, fp_b, caplog):
    saved(cache_path, fp_a, {"k": b"binary of A"})
    with caplog.at_level(logging.WARNING, LOG):
        c = ProgramCache.open(cache_path, device_fp=fp_b)
    assert codes(c) == ["FOREIGN_DEVICE"]
    msg = c.report.findings[0].message
    assert fp_a.short() in msg and fp_b.short() in msg and "driver_version" in msg
    assert "compiling from source; the other sections are kept" in msg
    assert caplog.records and caplog.records[0].levelno == logging.WARNING
    assert c.get_binary(fp_b, "k") is None            # same key, other device: nothing
    assert c.first_run_message(3).startswith("No usable binary for this device")
    c.put_binary(fp_b, "k", b"binary of B")
    assert c.save()
    both = ProgramCache.open(cache_path)
    assert both.get_binary(fp_a, "k") == b"binary of A"
    assert both.get_binary(fp_b, "k") == b"binary of B"


def test_blob_of_a_is_never_returned_for_b_even_with_equal_id_prefix(fp_a):
    c = ProgramCache.open(b"")
    c.put_binary(fp_a, "k", b"A")
    for other in (make_fp(driver="x"), make_fp(address_bits=32), make_fp(extensions_hash="f" * 16),
                  DeviceFingerprint()):
        assert c.get_binary(other, "k") is None
        assert c.get_tuning(other, "k") is None
    assert c.get_binary(fp_a, "k") == b"A"


def test_not_a_cache_is_refused_never_moved(cache_path, fp_a, caplog):
    text = b"this is not a cache at all" * 10
    cache_path.write_bytes(text)
    with caplog.at_level(logging.WARNING, LOG):
        c = ProgramCache.open(cache_path, device_fp=fp_a)
    assert codes(c) == ["REFUSED"] and c.report.format == "unknown"
    assert caplog.records[0].getMessage().startswith(
        f"{cache_path} is not a mace program cache (nor a Xiaomi MACE one): refused")
    c.put_binary(fp_a, "k", b"x")
    assert c.save() is False
    assert cache_path.read_bytes() == text
    assert not cache_path.with_name(cache_path.name + ".corrupt").exists()


def test_damaged_entry_dropped_alone(cache_path, fp_a, caplog):
    saved(cache_path, fp_a, {"good": b"G" * 50, "bad": b"B" * 50})
    raw = bytearray(cache_path.read_bytes())
    raw[raw.index(b"B" * 50) + 10] ^= 0x55
    cache_path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, LOG):
        c = ProgramCache.open(cache_path, device_fp=fp_a)
    assert codes(c) == ["DAMAGED_ENTRY"] and c.report.findings[0].key == "bad"
    assert "program bad" in caplog.text
    assert c.get_binary(fp_a, "good") == b"G" * 50 and c.get_binary(fp_a, "bad") is None
    assert c.save()                                   # repairs the file
    assert ProgramCache.open(cache_path, device_fp=fp_a).report.findings == []


def test_sha256_checked_before_hand_out(fp_a):
    c = ProgramCache.open(b"")
    c.put_binary(fp_a, "k", b"payload")
    entry = c.data.programs[(fp_a.id, "k")]
    entry.blob, entry.verified = b"tampered", False
    assert c.get_binary(fp_a, "k") is None and codes(c) == ["MISSING", "DAMAGED_ENTRY"]


def _newer(path, major, minor, min_reader):
    path.write_bytes(with_version(path.read_bytes(), major, minor, min_reader))


@pytest.mark.parametrize("version", [(2, 0, 2), (1, 9, 1)])
def test_newer_version_not_overwritten(cache_path, fp_a, caplog, version):
    saved(cache_path, fp_a, {"k": b"old"})
    _newer(cache_path, *version)
    before = cache_path.read_bytes()
    with caplog.at_level(logging.WARNING, LOG):
        c = ProgramCache.open(cache_path, device_fp=fp_a)
    assert codes(c) == ["VERSION_MISMATCH"]
    assert "upgrade mace" in c.report.findings[0].message
    assert c.get_binary(fp_a, "k") == (None if version[2] == 2 else b"old")
    c.put_binary(fp_a, "k2", b"new")
    assert c.save() is False
    assert cache_path.read_bytes() == before
    assert "not overwritten" in caplog.text


def test_quarantine_persisted(cache_path, fp_a, fp_b):
    saved(cache_path, fp_a, {"k": b"rejected", "ok": b"fine"})
    c = ProgramCache.open(cache_path, device_fp=fp_a)
    c.quarantine(fp_a, "k", "CL_INVALID_BINARY: clBuildProgram failed")
    assert c.is_quarantined(fp_a, "k") and not c.is_quarantined(fp_b, "k")
    assert c.get_binary(fp_a, "k") is None
    assert c.put_binary(fp_a, "k", b"rebuilt") is False     # not retried on this device
    assert c.save()
    c2 = ProgramCache.open(cache_path, device_fp=fp_a)
    assert c2.is_quarantined(fp_a, "k") and c2.get_binary(fp_a, "k") is None
    assert c2.get_binary(fp_a, "ok") == b"fine"
    q = c2.data.quarantine[(fp_a.id, "k")]
    assert q.reason.startswith("CL_INVALID_BINARY") and len(q.sha256_hex) == 64
    c2.put_tuning(fp_a, "t", {"x": 1})
    assert c2.save() and ProgramCache.open(cache_path).is_quarantined(fp_a, "k")


def test_size_cap_out_of_resources_and_lru_prune(cache_path, fp_a, caplog):
    cap = 40_000
    c = ProgramCache.open(cache_path, device_fp=fp_a, max_bytes=cap)
    for i in range(3):
        c.put_binary(fp_a, f"old{i}", bytes([i]) * 10_000)
    assert c.save()
    c = ProgramCache.open(cache_path, device_fp=fp_a, max_bytes=cap)
    assert c.get_binary(fp_a, "old0") is not None            # old0 is now the most recent
    c.put_binary(fp_a, "new", b"n" * 10_000)
    with caplog.at_level(logging.WARNING, LOG):
        assert c.save()
    assert "MACE_OUT_OF_RESOURCES" in caplog.text
    [f] = [f for f in c.report.findings if f.code == "MACE_OUT_OF_RESOURCES"]
    assert "mace cache prune" in f.fix and "MACE_PROGRAM_CACHE_MAX_BYTES" in f.fix
    assert cache_path.stat().st_size <= cap
    after = ProgramCache.open(cache_path, device_fp=fp_a, max_bytes=cap)
    assert sorted(after.program_keys(fp_a)) == ["new", "old0", "old2"]   # old1 was LRU


def test_entry_larger_than_cap(fp_a, cache_path):
    c = ProgramCache.open(cache_path, device_fp=fp_a, max_bytes=10_000)
    assert c.put_binary(fp_a, "huge", b"h" * 20_000) is False
    [f] = c.report.findings[1:]
    assert f.code == "MACE_OUT_OF_RESOURCES" and f.message.startswith("MACE_OUT_OF_RESOURCES: ")
    assert c.get_binary(fp_a, "huge") is None


def test_bytes_source_is_read_only(cache_path, fp_a, caplog):
    from mace.programcache.trust import CacheBytes, location_trust
    saved(cache_path, fp_a, {"k": b"v"})
    c = ProgramCache.open(cache_path.read_bytes(), device_fp=fp_a)
    assert c.report.source == "bytes" and c.get_binary(fp_a, "k") is None   # no location: untrusted
    assert c.report.untrusted == 1 and "UNTRUSTED" in codes(c)
    c = ProgramCache.open(CacheBytes(cache_path.read_bytes(), location_trust(cache_path)),
                          device_fp=fp_a)
    assert c.report.source == "bytes" and c.get_binary(fp_a, "k") == b"v"
    c.put_binary(fp_a, "k2", b"v2")
    with caplog.at_level(logging.DEBUG, LOG):
        assert c.save() is False
    assert "read-only" in caplog.text


def test_unwritable_location_is_one_warning(tmp_path, fp_a, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    c = ProgramCache.open(blocker / "sub" / "x.bin", device_fp=fp_a)
    c.put_binary(fp_a, "k", b"v")
    with caplog.at_level(logging.WARNING, LOG):
        assert c.save() is False
        c.put_binary(fp_a, "k2", b"v")
        assert c.save() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot write program cache" in warnings[0].getMessage()
    assert "UNWRITABLE" in codes(c)


def test_directory_as_path_never_raises(tmp_path, fp_a):
    c = ProgramCache.open(tmp_path, device_fp=fp_a)
    assert codes(c) == ["REFUSED"]
    c.put_binary(fp_a, "k", b"v")
    assert c.save() is False


def test_xiaomi_file_recognized_and_not_overwritten(tmp_path, fp_a, caplog):
    path = tmp_path / "mace_cl_compiled_program.bin"
    path.write_bytes(LEGACY_FIXTURE.read_bytes())
    with caplog.at_level(logging.WARNING, LOG):
        c = ProgramCache.open(path, device_fp=fp_a)
    assert c.report.format == "mace-legacy" and codes(c) == ["XIAOMI_FORMAT"]
    assert "Xiaomi MACE format, read-only: its binaries are not loaded (no device fingerprint)" \
        in c.report.findings[0].message
    assert c.xiaomi is not None and len(c.xiaomi.programs) == 25
    c.put_binary(fp_a, "k", b"v")
    assert c.save() is False
    assert path.read_bytes() == LEGACY_FIXTURE.read_bytes()


def test_save_merges_entries_written_meanwhile(cache_path, fp_a, fp_b):
    one = ProgramCache.open(cache_path, device_fp=fp_a)
    two = ProgramCache.open(cache_path, device_fp=fp_b)
    one.put_binary(fp_a, "a", b"A")
    two.put_binary(fp_b, "b", b"B")
    assert one.save() and two.save()
    merged = ProgramCache.open(cache_path)
    assert merged.get_binary(fp_a, "a") == b"A" and merged.get_binary(fp_b, "b") == b"B"
    assert len(merged.data.sections) == 2


def test_hits_add_up_and_touch_only_saves_are_rate_limited(cache_path, fp_a, monkeypatch):
    saved(cache_path, fp_a, {"k": b"v"})
    x = ProgramCache.open(cache_path, device_fp=fp_a)
    y = ProgramCache.open(cache_path, device_fp=fp_a)
    x.get_binary(fp_a, "k"), x.get_binary(fp_a, "k"), y.get_binary(fp_a, "k")
    assert x.save() is False                  # hits alone: not yet worth a write
    monkeypatch.setattr(settings, "TOUCH_WRITE_INTERVAL_NS", 0)
    assert x.save() and y.save()
    e = ProgramCache.open(cache_path).data.programs[(fp_a.id, "k")]
    assert e.hit_count == 3 and e.last_used_ns > e.created_ns


def test_newer_put_wins_over_older_entry(cache_path, fp_a):
    saved(cache_path, fp_a, {"k": b"v1"})
    c = ProgramCache.open(cache_path, device_fp=fp_a)
    c.put_binary(fp_a, "k", b"v2")
    assert c.save()
    assert ProgramCache.open(cache_path).get_binary(fp_a, "k") == b"v2"


def test_stale_temp_files_are_removed(cache_path, fp_a):
    stale = cache_path.with_name(cache_path.name + ".abc123.tmp")
    stale.write_bytes(b"half a file")
    saved(cache_path, fp_a, {"k": b"v"})
    assert not stale.exists()


def test_report_summary_and_dict(cache_path, fp_a):
    saved(cache_path, fp_a, {f"k{i}": b"x" * 1000 for i in range(3)})
    c = ProgramCache.open(cache_path, device_fp=fp_a)
    for i in range(3):
        c.report.note_from_cache(f"k{i}")
    c.report.note_rejected("k9", "CL_INVALID_BINARY", "bad")
    c.report.note_compiled("k9")
    line = c.report.summary_line()
    assert line.startswith(f"program cache {cache_path}: 3/4 programs from cache, 1 compiled, "
                           f"1 rejected (3.")
    assert line.endswith(" ms)")
    d = c.report.to_dict()
    assert set(d) == {"path", "source", "format", "from_cache", "compiled", "shared", "rejected", "findings",
                      "bytes_read", "load_seconds", "tuning_hits", "tuning_misses", "untrusted",
                      "trust"}
    assert d["rejected"] == [{"key": "k9", "code": "CL_INVALID_BINARY", "message": "bad"}]
    assert isinstance(c.report, LoadReport)


def test_fingerprint_helpers(fp_a, fp_b):
    assert len(fp_a.id) == 16 and fp_a.id != fp_b.id
    assert DeviceFingerprint.from_dict(fp_a.to_dict()) == fp_a
    assert DeviceFingerprint.from_dict({k: str(v) for k, v in fp_a.to_dict().items()}) == fp_a
    assert fp_a.differences(fp_b) == ["driver_version"]
    assert fp_a.id[:8] in fp_a.short() and "Adreno(TM) 640" in fp_a.short()


def test_fingerprint_from_pocl_device(pocl_device):
    fp = DeviceFingerprint.from_cl_device(pocl_device)
    assert fp == DeviceFingerprint.from_cl_device(pocl_device)
    assert fp.device_name and fp.platform_name and fp.address_bits in (32, 64)
    assert len(fp.extensions_hash) == 16


def test_real_pocl_binary_round_trip(pocl_device, pocl_blob, cache_path):
    """A binary stored and reloaded is accepted by the driver (the engine's path)."""
    import numpy as np
    import pyopencl as cl
    src, blob = pocl_blob
    fp = DeviceFingerprint.from_cl_device(pocl_device)
    key = program_key("twice", [], src)
    c = ProgramCache.open(cache_path, device_fp=fp)
    c.put_binary(fp, key, blob)
    assert c.save()
    got = ProgramCache.open(cache_path, device_fp=fp).get_binary(fp, key)
    assert got == blob
    ctx = cl.Context([pocl_device])
    prg = cl.Program(ctx, [pocl_device], [got]).build()
    q = cl.CommandQueue(ctx)
    a = np.arange(8, dtype=np.float32)
    buf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=a)
    prg.twice(q, a.shape, None, buf)
    out = np.empty_like(a)
    cl.enqueue_copy(q, out, buf)
    assert (out == 2 * a).all()


def test_file_is_replaced_not_rewritten_in_place(cache_path, fp_a):
    saved(cache_path, fp_a, {"k": b"v"})
    inode = os.stat(cache_path).st_ino
    c = ProgramCache.open(cache_path, device_fp=fp_a)
    c.put_binary(fp_a, "k2", b"v2")
    assert c.save()
    assert os.stat(cache_path).st_ino != inode
    assert F.decode(cache_path.read_bytes()).findings == []
