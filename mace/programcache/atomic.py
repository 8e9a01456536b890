"""File plumbing of cache saves: the inter-process lock, stale temp files, moving aside.
Writing and bounded reading are `mace.fileio`'s, like every other file mace handles."""
from __future__ import annotations

import contextlib
import glob
import os
from pathlib import Path

import filelock

from mace import fileio
from mace.programcache import settings


@contextlib.contextmanager
def lock_for(path: Path, timeout: float):
    """The lock every writer of `path` takes (a separate `PATH.lock`, so readers never wait).
    The lock file is removed before the lock is released, so none is left beside the cache:
    a waiter that locks the removed file sees it unlinked and retries on a fresh one
    (filelock >= 3.21 checks st_nlink after flock)."""
    lock = filelock.FileLock(str(path) + ".lock", timeout=timeout)
    with lock:
        try:
            yield lock
        finally:
            with contextlib.suppress(OSError):
                os.unlink(lock.lock_file)


def read_cache(path: Path) -> bytes:
    """A cache file's bytes, read under `settings.read_limit()`. Raises FileNotFoundError,
    FileRefused (not a regular file, or far over the cap) or OSError."""
    return fileio.read_bounded(path, settings.read_limit())


def read_or_none(path: Path) -> bytes | None:
    try:
        return read_cache(path)
    except FileNotFoundError:
        return None


def remove_stale_temps(path: Path) -> int:
    """Delete temp files a killed writer left. Call only while holding the lock: then no other
    writer can own one."""
    n = 0
    for name in glob.glob(fileio.temp_glob(path)):
        with contextlib.suppress(OSError):
            os.unlink(name)
            n += 1
    return n


def move_aside(path: Path, suffix: str = ".corrupt") -> Path:
    """Rename `path` to the first free name of `path + suffix`, `path + suffix + ".1"`, ...
    (never over an earlier one: link + unlink, which fails rather than replaces). Raises OSError."""
    for n in range(1000):
        target = path.with_name(path.name + suffix + (f".{n}" if n else ""))
        try:
            os.link(path, target)
        except FileExistsError:
            continue
        os.unlink(path)
        return target
    raise FileExistsError(f"{path}{suffix}.*: a thousand earlier copies: remove them")
