"""What the program cache reads, writes, replaces and moves aside, and the crash journal.

Nothing that is not a regular file is ever read or replaced; a file that is not one of our
caches is refused, never renamed; a damaged cache of ours is moved aside without clobbering an
earlier copy; a read-only cache is left alone with one message; a symlinked cache is written
through. A process killed between "about to load key K" and its clear leaves a journal entry
that the next start turns into a quarantine of K."""
from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mace.cli import cli
from mace.programcache import CacheRefused, ProgramCache, journal
from mace.programcache import format as F

LOG = "mace.programcache"
HERE = Path(__file__).resolve().parent


def saved(path: Path, fp, blobs: dict[str, bytes]) -> Path:
    c = ProgramCache.open(path, device_fp=fp)
    for k, v in blobs.items():
        c.put_binary(fp, k, v)
    assert c.save()
    return path


def codes(c: ProgramCache) -> list[str]:
    return [f.code for f in c.report.findings]


# {{{ G5, F1, F4: what is never written

def test_dev_null_is_refused_and_never_replaced(fp_a):
    with pytest.raises(CacheRefused, match=r"/dev/null is a character device, not a regular file"):
        ProgramCache.open("/dev/null", device_fp=fp_a, strict=True)
    c = ProgramCache.open("/dev/null", device_fp=fp_a)          # not named by the user: a finding
    assert codes(c) == ["REFUSED"]
    c.put_binary(fp_a, "k", b"x" * 1000)
    assert c.save() is False
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_fifo_is_refused_without_hanging(tmp_path, fp_a):
    fifo = tmp_path / "p.bin"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(CacheRefused, match="is a FIFO"):
        ProgramCache.open(fifo, device_fp=fp_a, strict=True)
    c = ProgramCache.open(fifo, device_fp=fp_a)
    c.put_binary(fp_a, "k", b"x")
    assert c.save() is False and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("content", [b"library_name: demo\nmodels: {}\n", b"MACEMODL" + bytes(64)])
def test_a_file_that_is_not_a_cache_is_refused_not_renamed(tmp_path, fp_a, content, caplog):
    f = tmp_path / "mace.yml"
    f.write_bytes(content)
    with pytest.raises(CacheRefused, match=r"mace.yml is not a mace program cache .*refused"):
        ProgramCache.open(f, device_fp=fp_a, strict=True)
    c = ProgramCache.open(f, device_fp=fp_a)
    c.put_binary(fp_a, "k", b"x")
    with caplog.at_level(logging.WARNING, LOG):
        assert c.save() is False
    assert f.read_bytes() == content and sorted(p.name for p in tmp_path.iterdir()) == ["mace.yml"]


def test_damaged_cache_moved_aside_never_over_an_earlier_copy(cache_path, fp_a):
    saved(cache_path, fp_a, {"k": b"v"})
    earlier = cache_path.with_name(cache_path.name + ".corrupt")
    earlier.write_bytes(b"an earlier copy, kept")
    raw = bytearray(cache_path.read_bytes())
    raw[20] ^= 0xFF                               # header CRC fails: ours, but damaged
    cache_path.write_bytes(bytes(raw))
    for n in (1, 2):
        c = ProgramCache.open(cache_path, device_fp=fp_a)
        assert codes(c) == ["MAGIC_MISMATCH"]
        c.put_binary(fp_a, "k", b"v")
        assert c.save()
        assert earlier.read_bytes() == b"an earlier copy, kept"
        assert cache_path.with_name(f"{cache_path.name}.corrupt.{n}").read_bytes() == bytes(raw)
        cache_path.write_bytes(bytes(raw))


def test_read_only_cache_left_alone_with_one_message(cache_path, fp_a, caplog):
    saved(cache_path, fp_a, {"k": b"v"})
    cache_path.chmod(0o444)
    before = cache_path.read_bytes()
    c = ProgramCache.open(cache_path, device_fp=fp_a)
    assert c.get_binary(fp_a, "k") == b"v"
    with caplog.at_level(logging.WARNING, LOG):
        for i in range(3):
            c.put_binary(fp_a, f"new{i}", b"n")
            assert c.save() is False
    assert cache_path.read_bytes() == before and stat.S_IMODE(cache_path.stat().st_mode) == 0o444
    msgs = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(msgs) == 1 and "is read-only (mode 0444)" in msgs[0] and "chmod u+w" in msgs[0]
    assert codes(c).count("UNWRITABLE") == 1


def test_symlinked_cache_is_written_through(tmp_path, fp_a):
    real = tmp_path / "store" / "real.bin"
    real.parent.mkdir()
    saved(real, fp_a, {"k": b"v"})
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    c = ProgramCache.open(link, device_fp=fp_a)
    assert c.get_binary(fp_a, "k") == b"v"
    c.put_binary(fp_a, "k2", b"v2")
    assert c.save()
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert ProgramCache.open(real, device_fp=fp_a).get_binary(fp_a, "k2") == b"v2"
    assert not list(tmp_path.glob("*.tmp")) and not list(real.parent.glob("*.tmp"))


def test_symlink_to_a_device_is_refused(tmp_path, fp_a):
    link = tmp_path / "p.bin"
    link.symlink_to("/dev/null")
    with pytest.raises(CacheRefused, match="character device"):
        ProgramCache.open(link, device_fp=fp_a, strict=True)
    c = ProgramCache.open(link, device_fp=fp_a)
    c.put_binary(fp_a, "k", b"x")
    assert c.save() is False and link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)

# }}}


# {{{ the crash journal

_CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {here!r})
    from pc_helpers import make_fp
    from mace.programcache import ProgramCache
    fp = make_fp("Adreno(TM) 640", driver="512.415")
    c = ProgramCache.open({path!r}, device_fp=fp)
    with c.journal_guard(fp, "k1", {phase!r}):
        print("journaled", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)     # the driver crashed inside the risky call
""")


def _crash(path: Path, phase: str = "load") -> None:
    code = _CHILD.format(here=str(HERE), path=str(path), phase=phase)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == -9 and "journaled" in p.stdout, p.stderr


@pytest.mark.parametrize("phase, what", [("load", "loading"), ("launch", "first launching")])
def test_killed_between_journal_and_clear_quarantines_the_key(cache_path, fp_a, phase, what, caplog):
    saved(cache_path, fp_a, {"k1": b"crashes the driver", "k2": b"fine"})
    _crash(cache_path, phase)
    pending = list(cache_path.parent.glob(cache_path.name + ".journal-*"))
    assert len(pending) == 1
    # verify and doctor report it and leave it for the engine's next start
    r = CliRunner().invoke(cli, ["cache", "verify", str(cache_path), "--json"])
    crashed = [f for f in json.loads(r.output)["findings"] if f["code"] == "CRASHED"]
    assert r.exit_code == 1 and crashed[0]["key"] == "k1" and what in crashed[0]["message"]
    from mace.programcache.doctor import doctor
    assert "CRASHED" in [f.code for f in doctor(cache_path, fp_a).findings]
    assert pending[0].exists()
    # the next start quarantines k1, persists it and removes the journal (the in-process CLI
    # above turned the mace logger's propagation off: caplog listens at the root)
    logging.getLogger("mace").propagate = True
    with caplog.at_level(logging.INFO, LOG):
        c = ProgramCache.open(cache_path, device_fp=fp_a)
    assert c.is_quarantined(fp_a, "k1") and c.get_binary(fp_a, "k1") is None
    assert c.get_binary(fp_a, "k2") == b"fine"
    assert f"died while {what} the cached binary of k1" in caplog.text
    assert not pending[0].exists()
    dec = F.decode(cache_path.read_bytes())
    q = dec.data.quarantine[(fp_a.id, "k1")]
    assert q.reason.startswith("CRASH: process") and (fp_a.id, "k1") not in dec.data.programs
    assert ProgramCache.open(cache_path, device_fp=fp_a).is_quarantined(fp_a, "k1")


def test_journal_of_a_live_process_and_a_cleared_one_are_left_alone(cache_path, fp_a):
    saved(cache_path, fp_a, {"k1": b"v"})
    c = ProgramCache.open(cache_path, device_fp=fp_a)
    with c.journal_guard(fp_a, "k1", "load"):
        other = ProgramCache.open(cache_path, device_fp=fp_a)       # this process is alive
        assert not other.is_quarantined(fp_a, "k1")
        assert json.loads(Path(c.journal.file).read_text())["key"] == "k1"
    assert not Path(c.journal.file).exists()
    assert ProgramCache.open(cache_path, device_fp=fp_a).get_binary(fp_a, "k1") == b"v"
    assert journal.scan(cache_path) == ([], [])


def test_read_only_cache_quarantines_in_memory_and_keeps_the_journal(cache_path, fp_a):
    saved(cache_path, fp_a, {"k1": b"v"})
    _crash(cache_path)
    cache_path.chmod(0o444)
    for _ in range(2):                              # every start, until the file can be written
        c = ProgramCache.open(cache_path, device_fp=fp_a)
        assert c.is_quarantined(fp_a, "k1") and c.get_binary(fp_a, "k1") is None
    assert len(journal.scan(cache_path)[0]) == 1

# }}}
