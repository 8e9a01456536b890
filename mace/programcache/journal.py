"""The crash journal: which cached binary was being loaded or first launched when a process died.

A binary can pass every checksum and still crash the driver (a PoCL binary is native code run
in the process). Before each risky call the engine writes "about to load/launch key K" to its
own journal file beside the cache (`PATH.journal-<pid>-<token>`) and removes it afterwards. A
later start that finds a pending entry of a process that no longer runs quarantines K for that
device, so a crashing binary aborts one run, not every run after it.

The write is a plain write(2): it survives the death of the process (SIGKILL, a segfault in the
driver); it is not fsynced, since a power loss needs no quarantine.
"""
from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("mace.programcache")

SUFFIX = ".journal-"
MAX_ENTRY_BYTES = 64 * 1024


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks (Linux /proc), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read(4096).decode("ascii", "replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    if fields and fields[0] in ("Z", "X"):
        return "dead"
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether process `pid` still runs (with `start`, its start ticks: not a reused pid)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True                          # another user's live process
    except OSError:
        return False
    now = _start_ticks(pid)
    if now == "dead":
        return False
    return not (start and now and now != start)


@dataclass
class Pending:
    """An entry left by a dead process."""

    file: str
    pid: int
    fp_id: str
    key: str
    phase: str                               # "load" | "launch"


def pattern(cache_path: Path) -> str:
    real = os.path.realpath(cache_path)
    return glob.escape(real) + SUFFIX + "*"


def scan(cache_path: Path) -> tuple[list[Pending], list[str]]:
    """(pending entries of dead processes, journal files of dead processes with nothing pending)."""
    pending, empty = [], []
    for name in sorted(glob.glob(pattern(cache_path))):
        try:
            with open(name, "rb", opener=lambda p, fl: os.open(p, fl | getattr(os, "O_NOFOLLOW", 0)
                                                                | os.O_NONBLOCK)) as f:
                raw = f.read(MAX_ENTRY_BYTES)
        except OSError:
            continue
        try:
            tail = name.rsplit(SUFFIX, 1)[1]
            pid = int(tail.split("-", 1)[0])
        except (IndexError, ValueError):
            continue
        entry = None
        if raw.strip():
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict):
                    entry = None
            except ValueError:
                entry = None
        start = entry.get("start") if entry else None
        if process_alive(pid, start if isinstance(start, str) else None):
            continue
        if entry and isinstance(entry.get("key"), str) and isinstance(entry.get("fp"), str):
            pending.append(Pending(name, pid, entry["fp"], entry["key"], str(entry.get("phase", "load"))))
        else:
            empty.append(name)
    return pending, empty


def remove(names) -> None:
    for name in names:
        with contextlib.suppress(OSError):
            os.unlink(name)


def recover(cache_path: Path, sections: dict) -> list[tuple]:
    """(fingerprint, Pending, "loading" | "first launching") of each entry a dead process left
    beside `cache_path` for a device of `sections` (fp id -> DeviceFingerprint); the journal
    files of dead processes with nothing pending are removed."""
    try:
        pending, empty = scan(cache_path)
    except OSError:
        return []
    remove(empty)
    return [(sections[p.fp_id], p, "loading" if p.phase == "load" else "first launching")
            for p in pending if p.fp_id in sections]


def crash_findings(cache_path: Path) -> list:
    """Pending entries of dead processes beside `cache_path`, as findings (not acted on: the
    next start of the engine quarantines them); for `mace doctor` and `mace cache verify`."""
    from mace.programcache.errors import CRASHED, Finding
    try:
        pending, _ = scan(cache_path)
    except OSError:
        return []
    return [Finding(CRASHED, f"{cache_path}: process {p.pid} died while "
                    f"{'loading' if p.phase == 'load' else 'first launching'} the cached binary of "
                    f"{p.key} (device {p.fp_id}): the next start quarantines it", severity="warning",
                    key=p.key) for p in pending]


class CrashJournal:
    """This process's journal for one cache file: the file exists only while a risky call is
    under way (so a process that ends any way but a crash leaves nothing behind); a no-op
    where it cannot be written."""

    def __init__(self, cache_path: Path):
        real = os.path.realpath(cache_path)
        self.file = f"{real}{SUFFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self._broken = False
        self._start = _start_ticks(os.getpid())

    def _write(self, text: bytes) -> bool:
        if self._broken:
            return False
        try:
            fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                         | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                os.write(fd, text)
            finally:
                os.close(fd)
            return True
        except OSError as exc:
            self._broken = True
            log.debug("no crash journal at %s: %s", self.file, exc)
            return False

    @contextlib.contextmanager
    def guard(self, fp_id: str, key: str, phase: str):
        """Journal "about to `phase` key" for the duration of the block."""
        written = self._write(json.dumps({"pid": os.getpid(), "start": self._start, "fp": fp_id,
                                          "key": key, "phase": phase,
                                          "time_ns": time.time_ns()}).encode())
        try:
            yield
        finally:
            if written:
                with contextlib.suppress(OSError):
                    os.unlink(self.file)


__all__ = ["CrashJournal", "Pending", "scan", "remove", "recover", "crash_findings"]
