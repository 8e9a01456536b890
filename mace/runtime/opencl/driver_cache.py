"""PoCL's own kernel cache, kept where a crash cannot poison later runs.

PoCL caches compiled kernels under ~/.cache/pocl. A process killed while PoCL was writing there
(an LLVM abort on AMD Zen 4, a SIGKILL mid-build) can leave entries that make later runs fail in
new ways. So, unless the user chose a directory (POCL_CACHE_DIR) or switched the cache off
(POCL_KERNEL_CACHE=0), mace points PoCL at a directory of its own and marks every source build
with a file named for its process; a start that finds the mark of a process that is gone clears
that directory before the driver loads. Must run before the first OpenCL call (PoCL reads its
environment once): `device.list_devices` calls `prepare()`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from pathlib import Path

from mace.programcache.journal import process_alive

log = logging.getLogger("mace.opencl")

_MARK = "mace-building."
_state: dict[str, Path | None] = {}
_lock = threading.Lock()
_active = [0]   # builds in progress in this process (threads share one mark)


def directory() -> Path | None:
    """The PoCL cache directory mace manages in this process (None: the user's own choice)."""
    return _state.get("dir")


def prepare() -> None:
    """Choose PoCL's cache directory and clear it if a build died in it (once per process)."""
    if "dir" in _state:
        return
    _state["dir"] = None
    if os.environ.get("POCL_CACHE_DIR") or os.environ.get("POCL_KERNEL_CACHE") == "0":
        return
    import platformdirs
    root = Path(platformdirs.user_cache_dir("mace")) / "pocl-kernel-cache"
    try:
        root.mkdir(parents=True, exist_ok=True)
        dead = [m for m in root.glob(_MARK + "*") if m.is_file() and not process_alive(_pid(m))]
        if dead:
            log.info("a run died while the OpenCL driver was compiling (%s): cleared its kernel cache %s",
                     dead[0].name, root)
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.debug("PoCL cache directory %s unusable (%s): left to PoCL's default", root, exc)
        return
    os.environ["POCL_CACHE_DIR"] = str(root)
    _state["dir"] = root


def _pid(mark: Path) -> int:
    try:
        return int(mark.name[len(_MARK):])
    except ValueError:
        return -1


@contextlib.contextmanager
def building():
    """Mark a source build in progress (a process that dies inside leaves the mark behind)."""
    root = _state.get("dir")
    mark = root / f"{_MARK}{os.getpid()}" if root is not None else None
    if mark is None:
        yield
        return
    with _lock:
        _active[0] += 1
        if _active[0] == 1:
            with contextlib.suppress(OSError):
                mark.touch()
    try:
        yield
    finally:
        with _lock:
            _active[0] -= 1
            if _active[0] == 0:
                with contextlib.suppress(OSError):
                    mark.unlink()
