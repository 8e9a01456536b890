"""The store only reads and replaces regular files: read-only, symlinked, FIFO and device paths."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mace.programcache import ProgramCache
from mace.programcache.errors import UNWRITABLE


def _save_one(path, fp) -> ProgramCache:
    cache = ProgramCache.open(path, device_fp=fp, log_findings=False)
    cache.put_binary(fp, "prog|-O2|abc", b"\x7fELF" + b"x" * 100)
    cache.save()
    return cache


def test_read_only_cache_left_alone_with_one_finding(tmp_path, fp_a):
    path = tmp_path / "ro.bin"
    _save_one(path, fp_a)
    before = path.read_bytes()
    path.chmod(0o444)
    try:
        cache = ProgramCache.open(path, device_fp=fp_a, log_findings=False)
        cache.put_binary(fp_a, "other|-O2|def", b"\x7fELF" + b"y" * 100)
        assert cache.save() is False
        found = [f for f in cache.report.findings if f.code == UNWRITABLE]
        assert len(found) == 1 and "is read-only" in found[0].message and "\n" not in found[0].message
        assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == 0o444
    finally:
        path.chmod(0o644)


def test_symlinked_cache_written_through(tmp_path, fp_a):
    real = tmp_path / "store" / "cache.bin"
    real.parent.mkdir()
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    _save_one(real, fp_a)
    cache = ProgramCache.open(link, device_fp=fp_a, log_findings=False)
    assert cache.get_binary(fp_a, "prog|-O2|abc") is not None
    cache.put_binary(fp_a, "second|-O2|def", b"\x7fELF" + b"z" * 100)
    assert cache.save() is True
    assert link.is_symlink()
    again = ProgramCache.open(real, device_fp=fp_a, log_findings=False)
    assert again.get_binary(fp_a, "second|-O2|def") is not None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_program_path_neither_read_nor_replaced(tmp_path, fp_a):
    fifo = tmp_path / "pipe.bin"
    os.mkfifo(fifo)
    cache = _save_one(fifo, fp_a)            # would hang on open() if the FIFO were opened
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert any("FIFO" in f.message for f in cache.report.findings)


def test_dev_null_program_path_not_replaced(tmp_path, fp_a):
    dev = Path("/dev/null")
    if not dev.exists() or not stat.S_ISCHR(os.stat(dev).st_mode):
        pytest.skip("no /dev/null character device")
    ino = os.stat(dev).st_ino
    cache = _save_one(dev, fp_a)
    assert stat.S_ISCHR(os.stat(dev).st_mode) and os.stat(dev).st_ino == ino
    assert any("character device" in f.message for f in cache.report.findings)


def test_prune_and_merge_through_a_symlink_keep_the_link(tmp_path, fp_a, monkeypatch):
    from mace.programcache import atomic
    from mace.programcache.maintenance import merge_files, prune
    locked, lock_for = [], atomic.lock_for
    monkeypatch.setattr(atomic, "lock_for", lambda path, timeout: locked.append(Path(path)) or lock_for(path, timeout))
    real = tmp_path / "store" / "cache.bin"
    real.parent.mkdir()
    c = ProgramCache.open(real, device_fp=fp_a, log_findings=False)
    for i in range(4):
        c.put_binary(fp_a, f"k{i}", bytes([i]) * 4000)
    assert c.save()
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    res = prune(link, 9000)
    assert res.stats["dropped"] and link.is_symlink() and real.stat().st_size <= 9000
    merge_files(link, [link], add_sections=[fp_a])
    assert link.is_symlink() and sorted(p.name for p in real.parent.iterdir()) == ["cache.bin"]   # lock removed
    assert locked and set(locked) == {real}             # every writer locked the link's target
