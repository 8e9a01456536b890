"""Trust by location: may anyone but this user (or root) have written this file?

A program binary is native code (a PoCL binary is a shared object loaded into the process), so
a cache file is trusted by location only when the file and every directory above it are owned
by this user or root and are not writable by group or others: the rule OpenSSH applies to
`~/.ssh` (StrictModes). One deliberate difference: a world-writable directory with the sticky
bit (`/tmp`) passes, since there no one else can rename or replace the entries we own, and the
next component down must still be ours. Everything else needs signatures (signing.py).

The decision is taken on the resolved path (symlinks followed), and the bytes are read through
a descriptor opened on that path with O_NOFOLLOW and checked with fstat, so the file judged is
the file read.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from mace.fileio import FileRefused


class NotRegularFile(FileRefused):
    """A path given as a program cache is a device node, FIFO, socket or directory."""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def kind_of(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


@dataclass(frozen=True)
class Location:
    """Where a cache file lives and whether that location alone makes it trusted."""

    path: str
    real: str
    exists: bool
    trusted: bool
    reason: str                   # why not trusted (or "private location")

    def to_dict(self) -> dict:
        return {"path": self.path, "real": self.real, "trusted": self.trusted, "reason": self.reason}


def _bad_owner_or_mode(p: str, st: os.stat_result, uid: int, is_dir: bool) -> str | None:
    if st.st_uid not in (uid, 0):
        return f"{p} is owned by uid {st.st_uid}, not by you or root"
    if is_dir and st.st_mode & stat.S_ISVTX and st.st_mode & 0o002:
        return None               # sticky, like /tmp: others cannot replace our entries
    if st.st_mode & 0o002:
        return f"{p} is writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
    if st.st_mode & 0o020:
        return f"{p} is writable by its group (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _dirs_problem(real: str, uid: int) -> str | None:
    d = os.path.dirname(real)
    while True:
        try:
            st = os.stat(d)
        except OSError as exc:
            return f"cannot check {d} ({exc.strerror or exc})"
        why = _bad_owner_or_mode(d, st, uid, True)
        if why:
            return why
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def location_trust(path: str | os.PathLike, st: os.stat_result | None = None) -> Location:
    """The location rule for `path` (which may not exist yet: then the directories decide, for
    the file this user would create there). `st`: the fstat of the descriptor actually read."""
    path = os.fspath(path)
    real = os.path.realpath(path)
    if not hasattr(os, "getuid"):
        return Location(path, real, os.path.exists(real), True, "no POSIX ownership on this system")
    uid = os.getuid()
    if st is None:
        try:
            st = os.lstat(real)
        except OSError:
            st = None
    why = _dirs_problem(real, uid)
    if why is None and st is not None:
        why = _bad_owner_or_mode(real, st, uid, False)
    return Location(path, real, st is not None, why is None, why or "private location")


@dataclass(frozen=True)
class CacheBytes:
    """A cache's bytes with the location they were read from (e.g. a bundle file), so that
    an in-memory cache is judged by where its bytes came from."""

    data: bytes
    location: Location


def untrusted(name: str, reason: str) -> Location:
    """The location of bytes that came from nowhere we can check (a bundle's bytes, a pull)."""
    return Location(name, name, True, False, reason)


def read_checked(path: str | os.PathLike, limit: int) -> tuple[bytes, Location]:
    """The bytes of the regular file at `path` and the trust of its location, judged on the
    descriptor actually read (fstat) and the directories of its resolved path.

    Raises FileNotFoundError / OSError, NotRegularFile (never opened: a FIFO would hang) and
    fileio.FileRefused (over `limit`, checked before reading)."""
    from mace import fileio
    path = os.fspath(path)
    real = os.path.realpath(path)
    pre = os.stat(real)
    if not stat.S_ISREG(pre.st_mode):
        raise NotRegularFile(not_regular_message(path, pre.st_mode))
    with fileio.open_regular(real, limit) as f:
        st = os.fstat(f.fileno())
        data = f.read(limit + 1)
    if len(data) > limit:
        raise fileio.FileRefused(f"{path}: more than the {limit}-byte limit for this file: check "
                                 f"it is the right file")
    return data, location_trust(path, st)


def not_regular_message(path: str, mode: int) -> str:
    return (f"program cache {path} is {kind_of(mode)}, not a regular file: refused (it is never "
            f"read or replaced): pass a regular file or a new path")


def regular_or_new(path: str | os.PathLike) -> None:
    """Raise NotRegularFile when `path` (symlinks followed) exists and is not a regular file."""
    try:
        st = os.stat(path)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(not_regular_message(os.fspath(path), st.st_mode))


__all__ = ["Location", "CacheBytes", "location_trust", "read_checked", "untrusted", "regular_or_new",
           "NotRegularFile", "kind_of"]

