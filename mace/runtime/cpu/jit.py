"""Numba for the CPU runtime: the compiled kernels' on-disk cache, and the NumPy fallback.

The cache follows the program cache's rules. It lives in a directory mace owns
(<user cache dir>/mace/cpu-kernels/<key>, or $MACE_CPU_KERNEL_CACHE), keyed by the CPU (LLVM's
host name and features) and the versions of mace, numba, llvmlite, NumPy and Python, so a
machine or upgrade never loads another's code. A cache that cannot be read (corrupt, truncated,
unwritable) is never fatal: the kernel's files are moved aside and it compiles again; if numba
itself fails, the runtime keeps its NumPy kernels. Each engine's `cpu_kernel_report` says which of these
happened. Kernels compile once per machine, for the one signature each declares, and compiling
anything else is then refused (a type slip is a bug, never a silent recompile).

A first result never waits for numba, not even for its import: `kernel` only records a kernel;
after an executor's first result, a background thread imports numba, makes the dispatchers, loads
what the cache holds and compiles what is missing while the runtime runs its NumPy kernels;
`ready` says when to switch. With a cache directory the compile runs in a child process (numba's
compiler holds the GIL for long stretches: in a thread it slowed the NumPy runs beside it), which
fills the cache and keeps going if this process exits first (numba writes each file to a
temporary name and renames it, so a killed compile leaves no torn file); this process then loads
the kernels from the cache. Without a cache directory the compile runs in the thread.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("mace")

_DEFS: list = []                # (module name, function name, function, signature), in definition order
_SIGS: dict = {}                # dispatcher -> its one signature (once made, `_materialize`)
_made: set = set()              # (module name, function name) of the dispatchers made
_ready: set = set()             # dispatchers compiled (or loaded) in this process
_lock = threading.Lock()
_state: dict = {"numba": None, "dir": None, "error": None, "hits": 0, "compiled": 0, "seconds": 0.0,
                "moved_aside": None, "background": None, "background_seconds": 0.0, "child": None}
_start_lock = threading.Lock()  # the one background thread is started once
_child_lock = threading.Lock()  # and the one compile process
_done = threading.Event()       # the background work ended (the kernels usable, or it failed)
_first_run = threading.Event()  # an executor's first result is out (`first_result_done`)
FIRST_RUN_WAIT_S = 2.0          # the background waits this long for it (engines that never signal)


def _numba():
    """The numba module, or None (with the reason in the state) when it cannot be imported."""
    if _state["numba"] is None:
        try:
            import numba
            _state["numba"] = numba
        except Exception as exc:  # noqa: BLE001 - any failure leaves the NumPy kernels
            _state["numba"], _state["error"] = False, f"numba unavailable ({exc})"
    return _state["numba"] or None


def _numba_installed() -> bool:
    import importlib.util
    return _state["numba"] is not False and importlib.util.find_spec("numba") is not None


def cache_key() -> str:
    """What a cached kernel depends on: the CPU and every library version on the code path."""
    from importlib.metadata import version   # numba's version without importing numba (0.3 s)

    import llvmlite
    import llvmlite.binding as llvm
    import numpy

    import mace
    parts = [getattr(mace, "__version__", "0"), version("numba"), llvmlite.__version__, numpy.__version__,
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
        if root is not None and _numba_installed():
            path = root / cache_key()
            try:
                path.mkdir(parents=True, exist_ok=True)
                if os.access(path, os.W_OK):
                    _state["dir"] = path
            except OSError as exc:
                log.debug("CPU kernel cache %s unusable (%s): kernels compile in memory", path, exc)
    return _state["dir"] or None


def kernel(signature: str | None):
    """@kernel("void(float32[::1], ...)"): a numba kernel (nogil, cached in `cache_dir()`) of one
    signature; @kernel(None): a helper inlined into the kernels that call it (a call per row costs
    more than the row). Until `_materialize` replaces it in its module with numba's dispatcher, the
    name is the plain function (never called: callers check `ready` first)."""
    def deco(fn):
        _DEFS.append((fn.__module__, fn.__name__, fn, signature))
        return fn
    return deco


def _materialize() -> bool:
    """Import numba and make every recorded kernel's dispatcher, bound in its module in place of
    the plain function (helpers too: numba resolves a kernel's globals when it compiles it)."""
    numba = _numba()
    if numba is None:
        return False
    with _lock:
        where = cache_dir()
        for mod, name, fn, signature in _DEFS:
            if (mod, name) in _made:
                continue
            saved = numba.config.CACHE_DIR
            numba.config.CACHE_DIR = str(where) if where else ""  # read once, when the dispatcher is made
            opts = {"inline": "always"} if signature is None else {"cache": where is not None}
            try:
                disp = numba.njit(nogil=True, error_model="numpy", boundscheck=False, fastmath={"contract"},
                                  **opts)(fn)
            finally:
                numba.config.CACHE_DIR = saved
            if signature is not None:
                _SIGS[disp] = signature
            setattr(sys.modules[mod], name, disp)
            _made.add((mod, name))
    return True


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
    if sys.is_finalizing():   # a load cut short by this process's exit: the files are fine
        return
    moved = _move_aside(d)
    log.warning("CPU kernel cache entry of %s could not be loaded (%s: %s): %s, compiling again",
                d.py_func.__name__, type(exc).__name__, str(exc)[:200],
                f"moved to {moved}" if moved else "nothing to move")


def ready() -> bool:
    """The compiled kernels are usable in this process now (never waits, never starts anything)."""
    return _state["error"] is None and bool(_SIGS) and _ready.issuperset(_SIGS)


def start() -> bool:
    """`ready`, after starting the background work once per process (never waits for it): numba's
    import, the cache's loads, then a compile of whatever the cache lacks."""
    if ready() or not _DEFS:
        return ready()
    with _start_lock:
        if _state["background"] is None and _state["error"] is None:
            _state["background"] = "starting"
            _done.clear()
            threading.Thread(target=_background, name="mace-cpu-kernels", daemon=True).start()
    return ready()


def first_result_done() -> None:
    """An executor's first result is out: the background work may take the CPU now. Where the
    cache lacks kernels, the compile process starts here and now, so that a process that exits
    right after its first result still leaves them compiled for the next start."""
    if _first_run.is_set():
        return
    _first_run.set()
    if not ready() and _state["error"] is None and cache_dir() is not None and expected() == "compile":
        _spawn_child()


def wait(timeout: float | None = None) -> bool:
    """`start`, then wait (up to `timeout` seconds) for the background work to end: whether the
    kernels are usable (warm-ups, benchmarks of steady speed, tests of the compiled kernels)."""
    _first_run.set()
    if start():
        return True
    _done.wait(timeout)
    return ready()


def expected() -> str:
    """What the background work will do, from the cache's files alone (no numba): "load" when
    every kernel has an index there, else "compile"."""
    d = cache_dir()
    if d is None:
        return "compile"
    names, found = set(), set()
    for mod, name, _, sig in _DEFS:
        if sig is None:
            continue
        names.add(name)
        # numba's directory for a source file's kernels: <its folder's name>_<sha1 of its folder>
        folder = Path(os.path.abspath(sys.modules[mod].__file__)).parent
        sub = d / f"{folder.name}_{hashlib.sha1(str(folder).encode()).hexdigest()}"
        found |= {f.name.split("-")[0].rsplit(".", 1)[-1] for f in sub.glob("*.nbi")}   # <module>.<name>-<line>...
    return "load" if names <= found else "compile"


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


def _background() -> None:
    """The background work: after the first result (or FIRST_RUN_WAIT_S), import numba and load
    what the cache holds; compile the rest in a child process that fills the cache (then loaded
    here), or in this thread where there is no cache; whatever the child left missing compiles here."""
    _first_run.wait(FIRST_RUN_WAIT_S)
    t0 = time.perf_counter()
    try:
        if not _materialize():
            _state["background"] = "failed"
            return
        missing = [d for d in list(_SIGS) if d not in _ready and not _load_cached(d)]
        _state["seconds"] += time.perf_counter() - t0
        if not missing:
            _state["background"] = "loaded"
            return
        _state["background"] = "compiling"
        t1 = time.perf_counter()
        if cache_dir() is not None:
            _child_compile()
        ok = ensure(missing, count_hits=False)
        if ok:   # what our compile process did not compile, another process's put in the cache
            _state["hits"] = max(0, len(_SIGS) - _state["compiled"])
        _state["background"] = "done" if ok else "failed"
        _state["background_seconds"] = time.perf_counter() - t1
    except Exception as exc:  # noqa: BLE001 - never fatal: the NumPy kernels keep running
        _state["error"] = f"numba failed to compile the CPU kernels ({type(exc).__name__}: {exc})"
        _state["background"] = "failed"
        log.warning("%s: the CPU runtime uses its NumPy kernels", _state["error"])
    finally:
        _done.set()


def _spawn_child() -> subprocess.Popen:
    """The compile process (one per process), started now if it is not running yet. Its output
    goes to a pipe of ours, never to our stdout/stderr: a caller reading those to their end never
    waits for it; its own session: it finishes the cache after this process exits, even on ^C."""
    with _child_lock:
        if _state["child"] is None:
            modules = sorted({mod for mod, _, _, sig in _DEFS if sig is not None})
            _state["child"] = subprocess.Popen(
                [sys.executable, "-m", "mace.runtime.cpu.compile_child", str(cache_dir()), *modules],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        return _state["child"]


def _child_compile() -> None:
    """Wait for the compile process to fill the cache; take the count of what it compiled."""
    proc = _spawn_child()
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
    ok = _materialize() and ensure(list(_SIGS))
    return {"ok": ok, "compiled": _state["compiled"], "from_cache": _state["hits"], "seconds": _state["seconds"],
            "error": _state["error"]}


@dataclass
class KernelReport:
    """What the CPU runtime's compiled kernels came from, for the load report. background: None
    (nothing started yet), "starting", "loaded" (all from the cache), "compiling" (the NumPy
    kernels run meanwhile), "done" (compiled in the background) or "failed"; expect: what a
    start not yet under way will do ("load" or "compile", from the cache's files)."""
    compiled_kernels: bool
    directory: str | None
    from_cache: int
    compiled: int
    seconds: float
    moved_aside: str | None = None
    reason: str | None = None
    background: str | None = None
    background_seconds: float = 0.0
    expect: str | None = None
    extra: dict = field(default_factory=dict)

    def summary_line(self) -> str:
        where = f"later starts load them from {self.directory}" if self.directory else "not cached"
        if self.background == "compiling" or (not self.compiled_kernels and self.expect == "compile"):
            return f"CPU kernels: NumPy while compiling CPU kernels in the background (first run; {where})"
        if not self.compiled_kernels and self.expect == "load":
            return f"CPU kernels: NumPy until the compiled ones load from {self.directory} (after the first run)"
        if not self.compiled_kernels:
            return f"CPU kernels: NumPy ({self.reason})"
        line = (f"CPU kernel cache {self.directory or 'not cached'}: {self.from_cache} kernels from cache, "
                f"{self.compiled} compiled ({self.seconds * 1e3:.0f} ms")
        line += f"; {self.background_seconds:.1f} s in the background)" if self.compiled else ")"
        if self.moved_aside:
            line += f"; an unreadable cache was moved to {self.moved_aside}"
        return line

    def to_dict(self) -> dict:
        return {"compiled_kernels": self.compiled_kernels, "directory": self.directory,
                "from_cache": self.from_cache, "compiled": self.compiled, "seconds": self.seconds,
                "moved_aside": self.moved_aside, "reason": self.reason, "background": self.background,
                "background_seconds": self.background_seconds, "expect": self.expect}


def report() -> KernelReport:
    ok = ready()
    if not _numba_installed():
        _state["error"] = _state["error"] or "numba unavailable (not installed)"
    d = cache_dir()
    busy = _state["background"] in (None, "starting") and _state["error"] is None and not ok
    reason = None if ok else (_state["error"] or ("compiling in the background" if _state["background"] == "compiling"
                                                  else "compiled kernels not loaded yet"))
    return KernelReport(ok, str(d) if d else None, _state["hits"], _state["compiled"], _state["seconds"],
                        str(_state["moved_aside"]) if _state["moved_aside"] else None, reason,
                        _state["background"], _state["background_seconds"], expected() if busy else None)
