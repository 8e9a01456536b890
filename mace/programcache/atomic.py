"""File plumbing for saves: the inter-process lock, atomic replace with fsync, moving aside."""
from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path

import filelock


def lock_for(path: Path, timeout: float) -> filelock.FileLock:
    """The lock every writer of `path` takes (a separate `PATH.lock`, so readers never wait)."""
    return filelock.FileLock(str(path) + ".lock", timeout=timeout)


def read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def temp_pattern(path: Path) -> str:
    return glob.escape(str(path)) + ".*.tmp"


def remove_stale_temps(path: Path) -> int:
    """Delete temp files a killed writer left. Call only while holding the lock: then no other
    writer can own one."""
    n = 0
    for name in glob.glob(temp_pattern(path)):
        with contextlib.suppress(OSError):
            os.unlink(name)
            n += 1
    return n


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return                      # e.g. Windows: directories cannot be opened
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a temp file beside `path`, fsync it, rename it over `path`, fsync the directory.
    A reader sees the old file or the new one, never a torn one. Raises OSError."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):        # keep the old file's mode (mkstemp makes 0600)
            with contextlib.suppress(OSError):
                os.fchmod(fd, os.stat(path).st_mode & 0o777 if path.exists() else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def move_aside(path: Path, suffix: str = ".corrupt") -> Path:
    """Rename `path` to `path + suffix` (replacing an older one). Raises OSError."""
    target = path.with_name(path.name + suffix)
    os.replace(path, target)
    return target
