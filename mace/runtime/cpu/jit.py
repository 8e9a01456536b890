"""Numba for the CPU runtime: the compiled kernels' on-disk cache, and the NumPy fallback.

The cache follows the program cache's rules. It lives in a directory mace owns
(<user cache dir>/mace/cpu-kernels/<key>, or $MACE_CPU_KERNEL_CACHE), keyed by the CPU (LLVM's
host name and features) and the versions of mace, numba, llvmlite, NumPy and Python, so a
machine or upgrade never loads another's code. A cache that cannot be read (corrupt, truncated,
unwritable) is never fatal: the kernel's files are moved aside and it compiles again; if numba
itself fails, the runtime keeps its NumPy kernels. Each engine's `cpu_kernel_report` says which of these
happened. Kernels compile once per machine, for the one signature each declares, and compiling
anything else is then refused (a type slip is a bug, never a silent recompile).

A first result never waits for numba: `start` loads what the cache holds and, if anything is
missing, compiles it in the background while the runtime runs its NumPy kernels. With a cache
directory the compile runs in a child process (numba's compiler holds the GIL for long stretches:
in a thread it slowed the NumPy runs beside it), which fills the cache and keeps going if this
process exits first (numba writes each file to a temporary name and renames it, so a killed
compile leaves no torn file); this process then loads the kernels from the cache. Without a cache
directory the compile runs in a daemon thread.
"""
from __future__ import annotations

import hashlib
import logging
import os
import json
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("mace")

_SIGS: dict = {}                # dispatcher -> its one signature
_ready: set = set()             # dispatchers compiled (or loaded) in this process
_lock = threading.Lock()
_state: dict = {"numba": None, "dir": None, "error": None, "hits": 0, "compiled": 0, "seconds": 0.0,
                "moved_aside": None, "background": None, "background_seconds": 0.0, "child_pid": None}
_start_lock = threading.Lock()  # the first `start`: its cache loads, then the background compile
_done = threading.Event()       # the background compile ended (its kernels loaded, or it failed)


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


def ensure(dispatchers, count_hits: bool = True) -> bool:
    """Compile (or load from the cache) each kernel's signature once per process, here and now. A
    kernel whose cached files fail to load has them moved aside and compiles again; a compile that
    fails disables the compiled kernels (the NumPy ones run) and the report says why.
    count_hits=False: loads are not reported as cache hits (the background compile's own loads)."""
    if _numba() is None or _state["error"] is not None:
        return False
    with _lock:
        t0 = time.perf_counter()
        for d in dispatchers:
            if d in _ready:
                continue
            try:
                _compile(d, count_hits)
            except Exception as exc:  # noqa: BLE001 - a damaged cache entry: move it aside, compile again
                _damaged(d, exc)
                try:
                    _compile(d, count_hits)
                except Exception as exc2:  # noqa: BLE001
                    _state["error"] = f"numba failed to compile the CPU kernels ({type(exc2).__name__}: {exc2})"
                    log.warning("%s: the CPU runtime uses its NumPy kernels", _state["error"])
                    return False
        if count_hits:
            _state["seconds"] += time.perf_counter() - t0
        return True


def _compile(d, count_hits: bool = True) -> None:
    d.compile(_SIGS[d])
    st = d.stats
    if count_hits:
        _state["hits"] += sum(st.cache_hits.values())
    _state["compiled"] += sum(st.cache_misses.values()) if cache_dir() else 1
    d.disable_compile()
    _ready.add(d)


def _damaged(d, exc) -> None:
    moved = _move_aside(d)
    log.warning("CPU kernel cache entry of %s could not be loaded (%s: %s): %s, compiling again",
                d.py_func.__name__, type(exc).__name__, str(exc)[:200],
                f"moved to {moved}" if moved else "nothing to move")


def start(dispatchers) -> bool:
    """Whether the kernels are usable now, never waiting for a compile. The first call loads what
    the cache holds and, if anything is missing, starts compiling it in the background (once per
    process); later calls answer at once, True from when the background compile has loaded them."""
    dispatchers = tuple(dispatchers)
    if _numba() is None or _state["error"] is not None:
        return False
    if _ready.issuperset(dispatchers):
        return True
    if _state["background"] is not None:
        return False
    with _start_lock:
        if _state["background"] is not None or _ready.issuperset(dispatchers):
            return _ready.issuperset(dispatchers)
        t0 = time.perf_counter()
        missing = [d for d in dispatchers if d not in _ready and not _load_cached(d)]
        _state["seconds"] += time.perf_counter() - t0
        if not missing:
            return True
        _state["background"] = "compiling"
        _done.clear()
        threading.Thread(target=_background, args=(dispatchers,), name="mace-cpu-kernels", daemon=True).start()
        return False


def wait(dispatchers, timeout: float | None = None) -> bool:
    """`start`, then wait (up to `timeout` seconds) for a background compile to end: whether the
    kernels are usable (benchmarks of steady speed and tests of the compiled kernels)."""
    if start(dispatchers):
        return True
    if _state["background"] is not None:
        _done.wait(timeout)
    return start(dispatchers)


def _load_cached(d) -> bool:
    """Load d's signature from the on-disk cache without ever compiling: the first step of numba's
    `Dispatcher.compile`, taken alone. False on a miss; a damaged entry is moved aside (a miss)."""
    if cache_dir() is None:
        return False
    sig = _SIGS[d]
    try:
        from numba.core.compiler_lock import global_compiler_lock
        with global_compiler_lock:
            cres = d._cache.load_overload(sig, d.targetctx)
            if cres is None:
                return False
            if not cres.objectmode:
                d.targetctx.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
            d.add_overload(cres)
    except AttributeError as exc:  # another numba's internals: the background compile loads it
        log.debug("CPU kernel %s: cache not read here (%s)", d.py_func.__name__, exc)
        return False
    except Exception as exc:  # noqa: BLE001 - a damaged cache entry: move it aside, compile it again
        _damaged(d, exc)
        return False
    _state["hits"] += 1
    d.disable_compile()
    _ready.add(d)
    return True


def _background(dispatchers) -> None:
    """The background compile: in a child process that fills the cache (then loaded here), or in
    this thread where there is no cache; whatever the child left missing compiles here."""
    t0 = time.perf_counter()
    try:
        if cache_dir() is not None:
            _child_compile(dispatchers)
        ok = ensure(dispatchers, count_hits=False)
        _state["background"] = "done" if ok else "failed"
    except Exception as exc:  # noqa: BLE001 - never fatal: the NumPy kernels keep running
        _state["error"] = f"numba failed to compile the CPU kernels ({type(exc).__name__}: {exc})"
        _state["background"] = "failed"
        log.warning("%s: the CPU runtime uses its NumPy kernels", _state["error"])
    finally:
        _state["background_seconds"] = time.perf_counter() - t0
        _done.set()


def _child_compile(dispatchers) -> None:
    """Compile the kernels' module into the cache in a child process. Its output goes to a pipe of
    ours, never to our stdout/stderr: a caller reading those to their end never waits for it."""
    modules = sorted({d.py_func.__module__ for d in dispatchers})
    proc = subprocess.Popen([sys.executable, "-m", "mace.runtime.cpu.compile_child", str(cache_dir()), *modules],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    _state["child_pid"] = proc.pid
    out = proc.communicate()[0].decode(errors="replace").strip()
    last = out.splitlines()[-1] if out else ""
    try:
        res = json.loads(last)
    except ValueError:
        res = None
    if proc.returncode != 0 or not isinstance(res, dict):
        log.info("CPU kernels: the compiling child process failed (exit %s: %s); compiling in this process",
                 proc.returncode, last[-300:])
        return
    _state["compiled"] += int(res.get("compiled", 0))


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


def compile_all() -> dict:
    """Compile (or load) every kernel defined so far, here: the compile process's work, and what it did."""
    ok = ensure(list(_SIGS))
    return {"ok": ok, "compiled": _state["compiled"], "from_cache": _state["hits"], "seconds": _state["seconds"],
            "error": _state["error"]}


@dataclass
class KernelReport:
    """What the CPU runtime's compiled kernels came from, for the load report. background: None (no
    background compile), "compiling" (the NumPy kernels run meanwhile), "done" or "failed"."""
    compiled_kernels: bool
    directory: str | None
    from_cache: int
    compiled: int
    seconds: float
    moved_aside: str | None = None
    reason: str | None = None
    background: str | None = None
    background_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def summary_line(self) -> str:
        if self.background == "compiling":
            where = f"later starts load them from {self.directory}" if self.directory else "not cached"
            return f"CPU kernels: NumPy while compiling CPU kernels in the background (first run; {where})"
        if not self.compiled_kernels:
            return f"CPU kernels: NumPy ({self.reason})"
        where = self.directory or "not cached"
        line = (f"CPU kernel cache {where}: {self.from_cache} kernels from cache, {self.compiled} compiled "
                f"({self.seconds * 1e3:.0f} ms")
        line += f"; {self.background_seconds:.1f} s in the background)" if self.background else ")"
        if self.moved_aside:
            line += f"; an unreadable cache was moved to {self.moved_aside}"
        return line

    def to_dict(self) -> dict:
        return {"compiled_kernels": self.compiled_kernels, "directory": self.directory,
                "from_cache": self.from_cache, "compiled": self.compiled, "seconds": self.seconds,
                "moved_aside": self.moved_aside, "reason": self.reason, "background": self.background,
                "background_seconds": self.background_seconds}


def report() -> KernelReport:
    ok = _state["error"] is None and bool(_SIGS) and _ready.issuperset(_SIGS)
    d = cache_dir() if _numba() else None
    reason = None if ok else (_state["error"] or ("compiling in the background" if _state["background"] == "compiling"
                                                  else "compiled kernels not loaded"))
    return KernelReport(ok, str(d) if d else None, _state["hits"], _state["compiled"], _state["seconds"],
                        str(_state["moved_aside"]) if _state["moved_aside"] else None, reason,
                        _state["background"], _state["background_seconds"])
