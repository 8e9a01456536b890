"""Reading a user-named file without hanging or exhausting memory.

A FIFO blocks `open()`, `/dev/zero` never ends and a directory is no file: each is refused with
the caller's typed error before anything is read, and the size is checked against a cap from
`fstat` before the bytes are allocated.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from mace.errors import MaceError


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular(path: str | os.PathLike, error: type[MaceError], fix: str) -> os.stat_result:
    """The stat of `path` when it is an existing regular file (symlinks followed), else `error`."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file: {fix}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc}): {fix}") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: is {_kind(st.st_mode)}, not a file: {fix}")
    return st


def read_bounded(path: str | os.PathLike, limit: int, error: type[MaceError], fix: str) -> bytes:
    """The bytes of regular file `path`, refused with `error` above `limit` bytes (checked on the
    open descriptor, so a swap between stat and open cannot slip a FIFO or device in)."""
    path = Path(path)
    check_regular(path, error, fix)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc}): {fix}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: is {_kind(st.st_mode)}, not a file: {fix}")
        if st.st_size > limit:
            raise error(f"{path}: {st.st_size} bytes, more than the {limit} this file may have: {fix}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise error(f"{path}: more than the {limit} bytes this file may have: {fix}")
    return data


__all__ = ["check_regular", "read_bounded"]
