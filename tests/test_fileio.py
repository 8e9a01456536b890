"""mace.fileio: the one atomic writer and the bounded reader (regular files only)."""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mace import fileio
from mace.errors import MaceError
from mace.fileio import FileRefused

needs_mkfifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


def test_write_new_file_and_replace(tmp_path):
    p = tmp_path / "out.bin"
    assert fileio.write_atomic(p, b"one") == p
    assert p.read_bytes() == b"one"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    fileio.write_atomic(p, "two\u00e9")
    assert p.read_text(encoding="utf-8") == "two\u00e9"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.bin"]      # no temp file left


def test_existing_mode_kept_and_mode_argument(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x")
    p.chmod(0o640)
    fileio.write_atomic(p, b"y")
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    key = tmp_path / "key"
    fileio.write_atomic(key, b"secret", mode=0o600)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_temp_names_unique_and_matched_by_temp_glob(tmp_path, monkeypatch):
    p = tmp_path / "a[1].bin"                  # glob metacharacters in the name
    seen = []
    real = fileio.tempfile.mkstemp

    def spy(**kw):
        fd, name = real(**kw)
        seen.append(name)
        return fd, name
    monkeypatch.setattr(fileio.tempfile, "mkstemp", spy)
    fileio.write_atomic(p, b"1")
    fileio.write_atomic(p, b"2")
    assert len(set(seen)) == 2 and all(Path(s).parent == tmp_path for s in seen)
    import fnmatch
    import glob
    assert all(fnmatch.fnmatch(s, fileio.temp_glob(p)) for s in seen)
    stale = tmp_path / (p.name + ".zz9.tmp")
    stale.write_bytes(b"")
    assert glob.glob(fileio.temp_glob(p)) == [str(stale)]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "f"
    p.write_bytes(b"old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fileio.os, "replace", boom)
    with pytest.raises(OSError):
        fileio.write_atomic(p, b"new")
    assert p.read_bytes() == b"old"
    assert [x.name for x in tmp_path.iterdir()] == ["f"]


@needs_mkfifo
def test_fifo_refused_for_write_and_read_without_hanging(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FileRefused, match=r"pipe: is a FIFO \(named pipe\), not a regular file"):
        fileio.write_atomic(fifo, b"x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    # a read would block forever on open() if the FIFO were opened: it must be refused first
    done = []
    t = threading.Thread(target=lambda: done.append(pytest.raises(FileRefused, fileio.read_bounded, fifo, 10)),
                         daemon=True)
    t.start()
    t.join(5)
    assert done, "reading a FIFO hung"
    assert [x.name for x in tmp_path.iterdir()] == ["pipe"]


def test_device_node_refused(tmp_path):
    dev = Path("/dev/null")
    if not dev.exists() or not stat.S_ISCHR(os.stat(dev).st_mode):
        pytest.skip("no /dev/null character device here")
    before = os.stat(dev)
    with pytest.raises(FileRefused, match="/dev/null: is a character device"):
        fileio.write_atomic(dev, b"x" * 100)
    with pytest.raises(FileRefused, match="character device"):
        fileio.read_bounded("/dev/zero", 1 << 20)
    after = os.stat(dev)
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_directory_refused(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    with pytest.raises(FileRefused, match="is a directory"):
        fileio.write_atomic(d, b"x")
    with pytest.raises(FileRefused, match="is a directory"):
        fileio.read_bounded(d, 10)
    assert d.is_dir() and not any(d.iterdir())


def test_symlink_written_through_to_its_target(tmp_path):
    real = tmp_path / "real" / "cache.bin"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    assert fileio.write_atomic(link, b"new") == real
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert sorted(x.name for x in real.parent.iterdir()) == ["cache.bin"]


def test_dangling_symlink_refused(tmp_path):
    link = tmp_path / "link.bin"
    link.symlink_to(tmp_path / "nowhere" / "x")
    with pytest.raises(FileRefused, match="does not exist"):
        fileio.write_atomic(link, b"x")
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_symlink_to_device_refused(tmp_path):
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    link = tmp_path / "cache.bin"
    link.symlink_to("/dev/null")
    with pytest.raises(FileRefused, match="character device"):
        fileio.write_atomic(link, b"x")


def test_read_only_file_refused_with_one_message(tmp_path):
    p = tmp_path / "ro.bin"
    p.write_bytes(b"keep")
    p.chmod(0o444)
    try:
        with pytest.raises(FileRefused) as err:
            fileio.write_atomic(p, b"new")
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith(f"{p}: is read-only") and "chmod u+w" in msg
        assert p.read_bytes() == b"keep" and stat.S_IMODE(p.stat().st_mode) == 0o444
        assert [x.name for x in tmp_path.iterdir()] == ["ro.bin"]
    finally:
        p.chmod(0o644)


def test_refusal_is_a_mace_error_and_an_oserror():
    e = FileRefused("x: is a FIFO")
    assert isinstance(e, MaceError) and isinstance(e, OSError) and e.exit_code == 2
    assert str(e) == "x: is a FIFO" and e.strerror == "x: is a FIFO"


def test_move_into(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"data")
    dst = tmp_path / "dst"
    fileio.move_into(src, dst)
    assert dst.read_bytes() == b"data" and not src.exists()
    src.write_bytes(b"x")
    d = tmp_path / "d"
    d.mkdir()
    with pytest.raises(FileRefused):
        fileio.move_into(src, d)
    assert src.exists()


def test_read_bounded_caps_before_reading(tmp_path, monkeypatch):
    p = tmp_path / "big"
    p.write_bytes(b"a" * 1000)
    assert fileio.read_bounded(p, 1000) == b"a" * 1000
    opened = []
    real_open = fileio.os.open
    monkeypatch.setattr(fileio.os, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    with pytest.raises(FileRefused, match="1000 bytes is over the 999-byte limit"):
        fileio.read_bounded(p, 999)
    assert not opened, "the file was opened although the size check refuses it"
    with pytest.raises(FileNotFoundError):
        fileio.read_bounded(tmp_path / "missing", 10)
    assert fileio.read_or_none(tmp_path / "missing", 10) is None


def test_open_regular_rechecks_after_open(tmp_path, monkeypatch):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    with fileio.open_regular(p) as f:
        assert f.read() == b"abc"
    # a file that grows past the cap between the check and the read is still refused
    monkeypatch.setattr(fileio, "check_readable", lambda path, cap=None: 0)
    with pytest.raises(FileRefused, match="limit"):
        fileio.read_bounded(p, 2)


_WRITER = """
import hashlib, os, sys
from mace.fileio import write_atomic
path, idx, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for r in range(n):
    body = bytes([idx, r % 256]) * 50000
    write_atomic(path, body + hashlib.sha256(body).digest())
"""


def test_concurrent_writers_never_tear_the_file(tmp_path):
    p = tmp_path / "shared.bin"
    body = b"\0\0" * 50000
    fileio.write_atomic(p, body + hashlib.sha256(body).digest())
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(p), str(i), "20"]) for i in range(3)]
    torn = 0
    reads = 0
    while any(pr.poll() is None for pr in procs):
        data = p.read_bytes()
        reads += 1
        if hashlib.sha256(data[:-32]).digest() != data[-32:]:
            torn += 1
    assert all(pr.wait() == 0 for pr in procs)
    assert torn == 0 and reads > 0
    data = p.read_bytes()
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    assert [x.name for x in tmp_path.iterdir()] == ["shared.bin"]
