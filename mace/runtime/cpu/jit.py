"""Numba for the CPU runtime: the compiled kernels' on-disk cache, and the NumPy fallback.

The cache follows the program cache's rules. It lives in a directory mace owns
(<user cache dir>/mace/cpu-kernels/<key>, or $MACE_CPU_KERNEL_CACHE), keyed by the CPU (LLVM's
host name and features) and the versions of mace, numba, llvmlite, NumPy and Python, so a
machine or upgrade never loads another's code. A cache that cannot be read (corrupt, truncated,
unwritable) is never fatal: the kernel's files are moved aside and it compiles again; if numba
itself fails, the runtime keeps its NumPy kernels. Each engine's `cpu_kernel_report` says which of these
happened. Kernels compile lazily, once per process, for the one signature each declares, and
compiling anything else is then refused (a type slip is a bug, never a silent recompile).
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("mace")

_SIGS: dict = {}                # dispatcher -> its one signature
_ready: set = set()             # dispatchers compiled (or loaded) in this process
_lock = threading.Lock()
_state: dict = {"numba": None, "dir": None, "error": None, "hits": 0, "compiled": 0, "seconds": 0.0,
                "moved_aside": None}


def _numba():
    """The numba module, or None (with the reason in the state) when it cannot be imported."""
    if _state["numba"] is None:
        try:
            import numba
            _state["numba"] = numba
        except Exception as exc:  # noqa: BLE001 - any failure leaves the NumPy kernels
            _state["numba"], _state["error"] = False, f"numba unavailable ({exc})"
    return _state["numba"] or None


def cache_key() -> str:
    """What a cached kernel depends on: the CPU and every library version on the code path."""
    import llvmlite
    import llvmlite.binding as llvm
    import numpy

    import mace
    numba = _numba()
    parts = [getattr(mace, "__version__", "0"), numba.__version__, llvmlite.__version__, numpy.__version__,
             platform.python_version(), platform.machine(), llvm.get_host_cpu_name(),
             llvm.get_host_cpu_features().flatten()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cache_root() -> Path | None:
    from mace import settings
    raw = settings.get("MACE_CPU_KERNEL_CACHE")
    if raw is not None:
        return None if raw.strip().lower() in ("0", "off", "none") else Path(os.path.expanduser(raw))
    import platformdirs
    return Path(platformdirs.user_cache_dir("mace")) / "cpu-kernels"


def cache_dir() -> Path | None:
    """This machine's kernel cache directory (None: caching off or the directory unusable)."""
    if _state["dir"] is None:
        root = cache_root()
        _state["dir"] = False
        if root is not None and _numba():
            path = root / cache_key()
            try:
                path.mkdir(parents=True, exist_ok=True)
                if os.access(path, os.W_OK):
                    _state["dir"] = path
            except OSError as exc:
                log.debug("CPU kernel cache %s unusable (%s): kernels compile in memory", path, exc)
    return _state["dir"] or None


def kernel(signature: str | None):
    """@kernel("void(float32[::1], ...)"): a numba kernel (nogil, cached in `cache_dir()`) that
    compiles its one signature on first `ensure`; @kernel(None): a helper inlined into the kernels
    that call it (a call per row costs more than the row); without numba, the plain function."""
    def deco(fn):
        numba = _numba()
        if numba is None:
            return fn
        where = cache_dir()
        saved = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = str(where) if where else ""  # read once, when the dispatcher is made
        opts = {"inline": "always"} if signature is None else {"cache": where is not None}
        try:
            disp = numba.njit(nogil=True, error_model="numpy", boundscheck=False, fastmath={"contract"}, **opts)(fn)
        finally:
            numba.config.CACHE_DIR = saved
        if signature is not None:
            _SIGS[disp] = signature
        return disp
    return deco


def ensure(dispatchers) -> bool:
    """Compile (or load from the cache) each kernel's signature once per process. A kernel whose
    cached files fail to load has them moved aside and compiles again; a compile that fails
    disables the compiled kernels (the NumPy ones run) and the report says why."""
    if _numba() is None or _state["error"] is not None:
        return False
    with _lock:
        t0 = time.perf_counter()
        for d in dispatchers:
            if d in _ready:
                continue
            try:
                _compile(d)
            except Exception as exc:  # noqa: BLE001 - a damaged cache entry: move it aside, compile again
                moved = _move_aside(d)
                log.warning("CPU kernel cache entry of %s could not be loaded (%s: %s): %s, compiling again",
                            d.py_func.__name__, type(exc).__name__, str(exc)[:200],
                            f"moved to {moved}" if moved else "nothing to move")
                try:
                    _compile(d)
                except Exception as exc2:  # noqa: BLE001
                    _state["error"] = f"numba failed to compile the CPU kernels ({type(exc2).__name__}: {exc2})"
                    log.warning("%s: the CPU runtime uses its NumPy kernels", _state["error"])
                    return False
        _state["seconds"] += time.perf_counter() - t0
        return True


def _compile(d) -> None:
    d.compile(_SIGS[d])
    st = d.stats
    _state["hits"] += sum(st.cache_hits.values())
    _state["compiled"] += sum(st.cache_misses.values()) if cache_dir() else 1
    d.disable_compile()
    _ready.add(d)


def _move_aside(d) -> str | None:
    """Rename one kernel's cache files (index and code) out of numba's way."""
    path = cache_dir()
    if path is None:
        return None
    moved = []
    for f in path.rglob(f"*.{d.py_func.__qualname__}-*.nb[ic]"):
        dest = f.with_name(f"{f.name}.damaged-{os.getpid()}")
        try:
            f.rename(dest)
            moved.append(dest)
        except OSError:
            f.unlink(missing_ok=True)
    if not moved:
        return None
    _state["moved_aside"] = moved[0].parent / f"*.damaged-{os.getpid()}"
    return str(_state["moved_aside"])


@dataclass
class KernelReport:
    """What the CPU runtime's compiled kernels came from, for the load report."""
    compiled_kernels: bool
    directory: str | None
    from_cache: int
    compiled: int
    seconds: float
    moved_aside: str | None = None
    reason: str | None = None
    extra: dict = field(default_factory=dict)

    def summary_line(self) -> str:
        if not self.compiled_kernels:
            return f"CPU kernels: NumPy ({self.reason})"
        where = self.directory or "not cached"
        line = (f"CPU kernel cache {where}: {self.from_cache} kernels from cache, {self.compiled} compiled "
                f"({self.seconds * 1e3:.0f} ms)")
        if self.moved_aside:
            line += f"; an unreadable cache was moved to {self.moved_aside}"
        return line

    def to_dict(self) -> dict:
        return {"compiled_kernels": self.compiled_kernels, "directory": self.directory,
                "from_cache": self.from_cache, "compiled": self.compiled, "seconds": self.seconds,
                "moved_aside": self.moved_aside, "reason": self.reason}


def report() -> KernelReport:
    ok = _state["error"] is None and bool(_ready)
    d = cache_dir() if _numba() else None
    return KernelReport(ok, str(d) if d else None, _state["hits"], _state["compiled"], _state["seconds"],
                        str(_state["moved_aside"]) if _state["moved_aside"] else None,
                        None if ok else (_state["error"] or "compiled kernels not loaded"))
