"""File plumbing of cache saves: the inter-process lock, stale temp files, what a save may
replace (save_target, read_base), moving aside.
Writing and bounded reading are `mace.fileio`'s, like every other file mace handles."""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import stat
from pathlib import Path

import filelock

from mace import fileio
from mace.programcache import settings, trust, xiaomi
from mace.programcache.errors import UNWRITABLE, Finding, MagicMismatch, VersionMismatch
from mace.programcache.format import MAGIC, CacheData, decode, version_message

log = logging.getLogger("mace.programcache")


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


def save_target(path: Path, warn) -> Path | None:
    """The file a save replaces (a symlink's target: written through), or None, said once
    through `warn(tag, message, finding)`, when it must be left alone (not a regular file;
    read-only)."""
    path = Path(os.path.realpath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(st.st_mode):
        warn("refused", trust.not_regular_message(str(path), st.st_mode) + " (save skipped)")
        return None
    if not st.st_mode & 0o222:
        msg = (f"program cache {path} is read-only (mode {stat.S_IMODE(st.st_mode):04o}): "
               f"left as it is, new programs are not saved: `chmod u+w {path}` to let "
               f"mace update it")
        warn("readonly", msg, Finding(UNWRITABLE, msg))
        return None
    return path


def read_base(path: Path, warn) -> CacheData | None:
    """The file's current content for a save to merge into; None (said once through `warn`)
    when it must not be overwritten: not ours, Xiaomi's, newer. A damaged file of ours is
    moved aside."""
    try:
        disk, _ = trust.read_checked(path, settings.read_limit())
    except FileNotFoundError:
        disk = None
    except fileio.FileRefused as exc:
        warn("refused", f"{exc} (save skipped)")
        return None
    if disk is None or len(disk) == 0:
        return CacheData()
    if disk[:8] == MAGIC:
        try:
            dec = decode(disk, str(path))
        except VersionMismatch as exc:
            warn("newer", f"{exc.message} (not overwritten: save skipped)")
            return None
        except MagicMismatch:
            pass
        else:
            if dec.header.newer_than_reader:
                warn("newer", version_message(
                    str(path), dec.header.writer, dec.header.format_major,
                    dec.header.format_minor) + " (not overwritten: save skipped)")
                return None
            return dec.data
    elif xiaomi.sniff(disk, str(path)) is not None:
        warn("xiaomi", f"{path} is a Xiaomi MACE program cache (read-only here): "
                       f"not overwritten, save skipped: set MACE_PROGRAM_PATH to another file")
        return None
    else:
        warn("refused", f"{path} is not a mace program cache (nor a Xiaomi MACE "
                        f"one): left untouched, save skipped: delete it or point "
                        f"MACE_PROGRAM_PATH / --program at another file")
        return None
    aside = move_aside(path)          # ours (our magic), but its header is damaged
    log.warning("%s is a damaged mace program cache: moved aside to %s, writing a fresh one",
                path, aside)
    return CacheData()
