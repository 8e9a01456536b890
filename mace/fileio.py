"""Every file mace writes, and every file it reads whole, goes through here.

Writes are atomic (a temp file with a unique name in the target's directory, fsync, rename,
fsync of the directory), so a reader sees the old file or the new one, never a torn one, and
concurrent writers never share a temp file. Only a regular file or a new path is ever written:
a device node, FIFO or directory is refused, so `--program /dev/null` cannot turn /dev/null
into a regular file even as root. A read-only file (no write permission bit) is refused too,
rather than silently replaced. A symlink is written *through*: its target is replaced and the
link stays (a dangling link is refused, since where it points is not ours to create).

Reads check the path is a regular file before opening it (a FIFO would block the open) and
apply the size cap before reading a byte (`/dev/zero` or a huge file never fill memory).
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from mace.errors import MaceError

#: temp files are `<name>.<random>.tmp` beside the target (see `temp_glob`)
TEMP_SUFFIX = ".tmp"


class FileRefused(MaceError, OSError):
    """A path that mace will not read or write: not a regular file, read-only, or too large.
    It is an OSError too, so a caller that treats any I/O failure as "unwritable" keeps working."""

    def __init__(self, message: str):
        MaceError.__init__(self, message)
        self.strerror = message

    def __str__(self) -> str:
        return self.strerror


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def write_target(path: str | os.PathLike) -> Path:
    """The path a write of `path` replaces: `path` itself, or a symlink's final target.
    Raises FileRefused for anything that is neither a regular file nor a new path, and for a
    read-only file. Nothing is written."""
    path = Path(path)
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.exists():
            raise FileRefused(f"{path}: a symlink to {target}, which does not exist: point the "
                              f"link at an existing file or remove it")
        path = target
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return path                    # a new path (creating it reports any other problem)
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(f"{path}: is {_kind(st.st_mode)}, not a regular file: nothing was "
                          f"written; give the path of a regular file or a new one")
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
        raise FileRefused(f"{path}: is read-only: left unchanged; make it writable "
                          f"(chmod u+w) or choose another path")
    return path


def write_atomic(path: str | os.PathLike, data: bytes | str, *, mode: int | None = None) -> Path:
    """Replace `path` with `data` atomically (str is written as UTF-8); returns the path written
    (a symlink's target). A new file gets `mode` (default 0644); an existing one keeps its mode
    unless `mode` is given. Raises FileRefused (see `write_target`) or OSError."""
    target = write_target(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=TEMP_SUFFIX)
    try:
        if mode is None:
            try:
                mode = os.stat(target).st_mode & 0o777
            except FileNotFoundError:
                mode = 0o644
        if hasattr(os, "fchmod"):              # mkstemp makes 0600
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
    return target


def move_into(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Rename the regular file `src` over `dst` (same file system), with `write_atomic`'s
    rules for `dst`; returns the path replaced. Raises FileRefused or OSError."""
    target = write_target(dst)
    os.replace(src, target)
    fsync_dir(target.parent)
    return target


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_glob(path: str | os.PathLike) -> str:
    """A glob pattern matching the temp files `write_atomic(path)` makes."""
    import glob
    p = Path(path)
    return str(p.parent / (glob.escape(p.name) + ".*" + TEMP_SUFFIX))


def check_readable(path: str | os.PathLike, max_bytes: int | None = None) -> int:
    """Refuse what must not be opened for reading (a FIFO would block the open; a device node
    never ends) and, with `max_bytes`, a file over the cap. Returns the size.
    Raises FileNotFoundError for a missing path, FileRefused otherwise."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(f"{path}: is {_kind(st.st_mode)}, not a regular file: give the path "
                          f"of a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise FileRefused(f"{path}: {st.st_size} bytes is over the {max_bytes}-byte limit for "
                          f"this file: check it is the right file")
    return st.st_size


def open_regular(path: str | os.PathLike, max_bytes: int | None = None):
    """Open a regular file for binary reading (for mmap or streaming). The open does not block
    even if a FIFO was swapped in after the check, and the open file is checked again."""
    check_readable(path, max_bytes)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(f"{path}: is {_kind(st.st_mode)}, not a regular file: give the "
                              f"path of a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise FileRefused(f"{path}: {st.st_size} bytes is over the {max_bytes}-byte limit "
                              f"for this file: check it is the right file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The whole content of a regular file of at most `max_bytes` (a file that grows past the
    cap while read is refused too). Raises FileNotFoundError or FileRefused."""
    with open_regular(path, max_bytes) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileRefused(f"{path}: more than the {max_bytes}-byte limit for this file: "
                          f"check it is the right file")
    return data


def read_or_none(path: str | os.PathLike, max_bytes: int) -> bytes | None:
    """`read_bounded`, or None when the path does not exist."""
    try:
        return read_bounded(path, max_bytes)
    except FileNotFoundError:
        return None
