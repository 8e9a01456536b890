"""The one merge policy (programcache.merge) and the file merge (maintenance.merge_files):
generic over record kinds, F2 (output must be absent or ours), F3 (inputs read under the lock)."""
from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from mace.fileio import FileRefused
from mace.programcache import MagicMismatch, ProgramCache
from mace.programcache import format as F
from mace.programcache.maintenance import load, merge, merge_files
from mace.programcache.merge import add_section, merge_into, merged


def _prog(fp, key, blob, created, used, hits=0):
    return F.ProgramEntry(fp.id, key, blob, hashlib.sha256(blob).digest(), created, used, hits, {})


def _data(fp, **tables):
    d = F.CacheData()
    add_section(d, fp)
    for name, entries in tables.items():
        getattr(d, name).update({(e.fp_id, e.key): e for e in entries})
    return d


def test_programs_same_binary_adds_hits_different_binary_newest_build_wins(fp_a):
    a = _data(fp_a, programs=[_prog(fp_a, "k", b"x", 10, 50, hits=3), _prog(fp_a, "j", b"old", 10, 90)])
    b = _data(fp_a, programs=[_prog(fp_a, "k", b"x", 10, 70, hits=2), _prog(fp_a, "j", b"new", 20, 20)])
    out = merged(a, b)
    k = out.programs[(fp_a.id, "k")]
    assert (k.hit_count, k.last_used_ns) == (5, 70)
    assert out.programs[(fp_a.id, "j")].blob == b"new"
    assert merged(b, a).programs[(fp_a.id, "j")].blob == b"new"       # order does not matter
    assert a.programs[(fp_a.id, "k")].hit_count == 3                  # inputs untouched


def test_quarantine_drops_the_binary_from_either_side(fp_a):
    a = _data(fp_a, programs=[_prog(fp_a, "k", b"x", 1, 1)])
    b = _data(fp_a, quarantine=[F.QuarantineEntry(fp_a.id, "k", "rejected", 5, "")])
    assert (fp_a.id, "k") not in merged(a, b).programs
    assert (fp_a.id, "k") not in merged(b, a).programs


def test_every_record_kind_merges_by_key_newest_wins(fp_a):
    """Tuning, caps, build failures, and any table CacheData grows: by key, the newer wins."""
    tables = [f.name for f in dataclasses.fields(F.CacheData)
              if f.name not in ("sections", "programs", "quarantine")]
    assert {"tuning", "caps", "build_failures"} <= set(tables)
    for name in tables:
        old = _data(fp_a, **{name: [F.TuningEntry(fp_a.id, "k", {"v": 1}, 100),
                                    F.TuningEntry(fp_a.id, "only-old", {"v": 0}, 1)]})
        new = _data(fp_a, **{name: [F.TuningEntry(fp_a.id, "k", {"v": 2}, 200)]})
        for out in (merged(old, new), merged(new, old)):
            table = getattr(out, name)
            assert table[(fp_a.id, "k")].record == {"v": 2}, name
            assert (fp_a.id, "only-old") in table, name


def test_sections_filter_takes_only_named_devices(fp_a, fp_b):
    base = _data(fp_a)
    pulled = _data(fp_a, programs=[_prog(fp_a, "host", b"planted", 9, 9)])
    add_section(pulled, fp_b)
    pulled.programs[(fp_b.id, "dev")] = _prog(fp_b, "dev", b"ok", 9, 9)
    merge_into(base, pulled, sections=[fp_b.id])
    assert (fp_a.id, "host") not in base.programs and (fp_b.id, "dev") in base.programs


def _file(path, fp, keys):
    c = ProgramCache.open(path, device_fp=fp, log_findings=False)
    for k in keys:
        c.put_binary(fp, k, b"bin" + k.encode())
    assert c.save()


def test_merge_refuses_an_output_that_is_not_a_cache(tmp_path, fp_a, fp_b):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    _file(a, fp_a, ["x"])
    _file(b, fp_b, ["y"])
    for content in (b"name: not a cache\n", b"\x08\x01binary model bytes"):
        out = tmp_path / "mace.yml"
        out.write_bytes(content)
        with pytest.raises(MagicMismatch, match="not a mace program cache: not overwritten"):
            merge(a, b, out)
        assert out.read_bytes() == content
    if os.path.exists("/dev/null"):
        with pytest.raises(FileRefused):
            merge(a, b, "/dev/null")
    ours = tmp_path / "ours.bin"
    _file(ours, fp_a, ["old"])
    merge(a, b, ours)                              # one of ours: replaced by A u B
    data, _ = load(ours)
    assert sorted(k for _, k in data.programs) == ["x", "y"]


def test_merge_files_missing_ok_and_add_sections(tmp_path, fp_a, fp_b):
    out = tmp_path / "sub" / "new.bin"
    res = merge_files(out, [out], missing_ok=True, add_sections=[fp_a])
    data, _ = load(out)
    assert list(data.sections) == [fp_a.id] and res.stats["sections"] == 1
    with pytest.raises(FileNotFoundError):
        merge_files(tmp_path / "x.bin", [tmp_path / "missing.bin"])


def _saver(path: str, n: int, start) -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from pc_helpers import make_fp
    fp = make_fp()
    start.wait(60)
    for i in range(n):
        c = ProgramCache.open(path, device_fp=fp, log_findings=False)
        c.put_binary(fp, f"saved{i}", b"z" * 3000 + bytes([i % 256]))
        if not c.save():
            raise SystemExit(3)


def _merger(path: str, other: str, n: int, start) -> None:
    start.wait(60)
    for _ in range(n):
        merge(path, other, path)


def test_concurrent_save_is_not_lost_by_a_merge_into_the_same_file(tmp_path, fp_a, fp_b):
    path, other = tmp_path / "shared.bin", tmp_path / "other.bin"
    _file(path, fp_a, ["seed"])
    _file(other, fp_b, ["from-other"])
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(2)
    n = 25
    procs = [ctx.Process(target=_saver, args=(str(path), n, start)),
             ctx.Process(target=_merger, args=(str(path), str(other), n, start))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0, 0]
    data, _ = load(path)
    keys = {k for _, k in data.programs}
    assert {f"saved{i}" for i in range(n)} <= keys, sorted({f"saved{i}" for i in range(n)} - keys)
    assert {"seed", "from-other"} <= keys


def test_section_view_binds_the_fingerprint(tmp_path, fp_a, fp_b):
    c = ProgramCache.open(tmp_path / "c.bin", device_fp=fp_a, log_findings=False)
    mine = c.section(fp_a)
    assert not mine.present
    assert mine.put_binary("k", b"blob")
    mine.put_tuning("t", {"lws": [4]})
    assert mine.present and mine.get_binary("k") == b"blob" and mine.get_tuning("t") == {"lws": [4]}
    assert mine.program_keys() == ["k"] and c.section(fp_b).get_binary("k") is None
    other = c.add_section(fp_b)
    assert other.present and c.save()
    again = ProgramCache.open(tmp_path / "c.bin", device_fp=fp_b, log_findings=False)
    assert set(again.data.sections) == {fp_a.id, fp_b.id}
    assert again.section(fp_a).get_binary("k") == b"blob"
