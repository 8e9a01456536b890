"""Building OpenCL programs ourselves, through our program cache (never PyOpenCL's hidden one).

Order per program key: binary from the cache (only when the cache section's fingerprint equals
this device, the entry's checksum holds and the cache trusts it) -> source. A binary the driver
rejects is quarantined for this device and the program is compiled from source. Loading a
cached binary and its first launch are journaled (programcache/journal.py), so a binary that
crashes the driver is quarantined by the next start. A program whose build or
kernel creation fails raises a typed `KernelBuildError` (the op then takes its next variant) and
is recorded in the cache under the device's fingerprint, so later starts skip it untried. Binaries of programs built
from source are harvested after the first run, because PoCL and some mobile drivers finish code
generation at the first launch; `harvest()` puts them in the cache and `save()` merges the file
(the engine does both in a background thread, harvest.py, so the first result never waits).
A program the engine's cache cannot supply that was built once in the process (any engine, same
context) is taken from `shared`, not compiled again: each builder only creates kernels of its
own, and only the builder that compiled a program harvests its binary.
"""
from __future__ import annotations

import copy
import logging
import re
import threading
import time
from pathlib import Path

import pyopencl as cl

from mace.errors import KernelBuildError
from mace.runtime.opencl import binaries, driver_cache, events, kernelsplit, parallel, shared

log = logging.getLogger("mace.opencl")

OPS_DIR = Path(__file__).parent / "ops"
BASE_OPTIONS = ["-cl-mad-enable"]
_SOURCES: dict = {}   # name, or (name, kernel) -> source
_KEYS: dict[tuple, str] = {}


_INCLUDE = re.compile(r'^#include "(\w+\.h)"$', re.M)
#: (device fingerprint id, program key) -> the failure: one try per process even without a cache;
#: the table keeps never-raised copies (a raised exception's traceback would keep the frames of
#: that engine's init, its ops and their device buffers, alive for the process)
_FAILED: dict[tuple[str, str], KernelBuildError] = {}


def log_head(text: str, lines: int = 3) -> str:
    """The first meaningful lines of a compiler log, for a one-line warning."""
    rows = [r.strip() for r in str(text).splitlines() if r.strip() and not r.strip().startswith("=")]
    return " | ".join(rows[:lines])[:400]


def injected(stage: str, name: str, options: list[str]) -> bool:
    """MACE_TEST_BREAK_BUILD (fault injection for tests): a regex over "<program> <options>".
    Plain: a matching program gets an `#error` line, so the driver's compiler really fails;
    "kernel:" first: its kernels are asked for under a wrong name (INVALID_KERNEL_NAME from the
    driver); "abort:" first: only the device probe's child process (it aborts)."""
    from mace import settings
    spec = settings.get("MACE_TEST_BREAK_BUILD", "") or ""
    want, _, pattern = spec.partition(":") if spec.startswith(("kernel:", "abort:")) else ("build", "", spec)
    return want == stage and bool(pattern) and re.search(pattern, f"{name} {' '.join(options)}") is not None


def program_source(name: str, kernel: str | None = None) -> str:
    """The source of `ops/<name>.cl`, prefixed by `ops/common.h`, with `#include "x.h"` lines
    replaced by `ops/x.h` (so every header is part of the source hash, hence of the key); with
    `kernel`, the other kernels of the file left out (`kernelsplit.only`)."""
    if name not in _SOURCES:
        common = (OPS_DIR / "common.h").read_text()
        body = _INCLUDE.sub(lambda m: (OPS_DIR / m.group(1)).read_text(), (OPS_DIR / f"{name}.cl").read_text())
        _SOURCES[name] = common + "\n#line 1\n" + body
    if kernel is None:
        return _SOURCES[name]
    if (name, kernel) not in _SOURCES:
        _SOURCES[(name, kernel)] = kernelsplit.only(_SOURCES[name], kernel) or _SOURCES[name]
    return _SOURCES[(name, kernel)]


#: programs ranked this costly are compiled in this process, never in a compile process:
#: PoCL's binary of a depthwise program costs its generic work-group function, 3-6x the rest
HEAVY = 100.0


def compile_cost(name: str, opts: list[str]) -> float:
    """A rank of how long PoCL takes to compile a program: its register tile (the product of
    the -DVW/PB/RB/OCB/KH/KW values), depthwise first (its unrolled taps make it the costliest,
    measured: docs/architecture.md, "Cold start")."""
    tile = 1.0
    for o in opts:
        m = re.fullmatch(r"-D(VW|PB|RB|OCB|KH|KW)=(\d+)", o)
        if m:
            tile *= int(m.group(2))
    return tile * (100.0 if name == "depthwise" else 1.0)


class Deferred:
    """A program noted for compilation while the executor places ops (`ProgramBuilder.defer`)."""

    def __init__(self, name: str, key: str, source: str, opts: list[str]):
        self.name, self.key, self.source, self.opts = name, key, source, opts
        self.kernels: list[parallel.PendingKernel] = []
        self.prog: cl.Program | None = None
        self.error: KernelBuildError | None = None
        self.blob = b""          # the binary, when a compile process built it


class ProgramBuilder:
    """One per executor: builds each (program, options) once per process (`shared`), from the
    cache when possible."""

    def __init__(self, ctx: cl.Context, device: cl.Device, cache=None,
                 force_source: set[str] | None = None):
        self.ctx, self.device = ctx, device
        # keys to rebuild from source even when cached (after tuning: binaries without the
        # work-group functions of discarded local sizes)
        self.force_source = set(force_source or ())
        self.cache = cache   # this device's section of the program cache (`cache.section(fp)`) or None
        self._built: dict[str, cl.Program] = {}
        self._from_source: dict[str, cl.Program] = {}
        self.compile_seconds = 0.0
        self.compiled = 0                      # programs compiled from source (progress)
        self.keys: list[str] = []
        self.unlaunched: set[str] = set()      # loaded from cached binaries, not launched yet
        self._harvest_lock = threading.Lock()  # _from_source: filled by builds, emptied by harvest
        from mace.runtime.opencl.caps import kernel_per_program
        #: a program per kernel (only what the model launches) or per `.cl` file (caps.py)
        self.per_kernel = kernel_per_program(device)
        self.key_of_kernel: dict[int, str] = {}   # cl.Kernel handle -> its program's key
        from mace import settings
        from mace.runtime.opencl.caps import compile_mode
        self.workers = parallel.workers()
        self.mode = compile_mode(device, self.workers, settings.get("MACE_COMPILE_PROCESSES") is not None)
        #: while True, programs to compile from source are only noted, and `resolve` compiles
        #: them together (in processes or threads, `mode`); the executor sets it around placing ops
        self.defer = False
        self.child_seconds: dict[str, list] = {}   # key -> [build, launches, binary] in its compile process

    def key(self, name: str, options: list[str], kernel: str | None = None) -> str:
        """The program key of `ops/<name>.cl` with `options` (of its `kernel` alone, given one)."""
        memo = (name, tuple(sorted(set(options))), kernel)
        if memo not in _KEYS:  # the source hash is the costly part: once per process
            from mace.programcache import program_key
            # one kernel's program differs from the file's (and another kernel's) by its source hash
            _KEYS[memo] = program_key(name, list(memo[1]) + BASE_OPTIONS, program_source(name, kernel))
        return _KEYS[memo]

    def _fp_id(self) -> str:
        return self.cache.id if self.cache is not None else f"device:{self.device.int_ptr}"

    def known_failure(self, key: str) -> KernelBuildError | None:
        """The failure recorded for this program on this device (this process or the cache)."""
        exc = _FAILED.get((self._fp_id(), key))
        if exc is not None:
            return copy.copy(exc)
        rec = self.cache.build_failure(key) if self.cache is not None else None
        if rec is None:
            return None
        exc = KernelBuildError(
            f"OpenCL program {rec.get('program', key)} failed to {rec.get('stage', 'build')} on this "
            f"device earlier (driver {rec.get('driver', '?')}): {rec.get('log', '')}",
            program=rec.get("program", ""), key=key, stage=rec.get("stage", "build"),
            log=rec.get("log", ""), known=True)
        _FAILED[(self._fp_id(), key)] = copy.copy(exc)
        return exc

    def failed(self, name: str, key: str, stage: str, detail: str) -> KernelBuildError:
        """Record a build or kernel-creation failure (process memo + program cache)."""
        head = log_head(detail)
        exc = KernelBuildError(f"OpenCL program {name} failed to {stage} on {self.device.name.strip()}: {head}",
                               program=name, key=key, stage=stage, log=head)
        _FAILED[(self._fp_id(), key)] = copy.copy(exc)
        if self.cache is not None:
            self.cache.record_build_failure(key, {
                "program": name, "stage": stage, "log": head, "driver": self.device.driver_version.strip(),
                "time": int(time.time())})
        return exc

    def kernel(self, name: str, options: list[str], kernel_name: str) -> tuple[cl.Kernel, str]:
        """Build (or fetch) a program and create one of its kernels; a failure of either is a
        recorded KernelBuildError (INVALID_KERNEL_NAME on a program that built with warnings
        is how a miscompiled kernel shows on PoCL)."""
        only = kernel_name if self.per_kernel else None
        prog = self.build(name, options, only)
        key = self.key(name, sorted(set(options)), only)
        wanted = kernel_name + ("_injected" if injected("kernel", name, options) else "")
        if isinstance(prog, Deferred):
            prog.kernels.append(parallel.PendingKernel(wanted))
            return prog.kernels[-1], key
        try:
            kern = cl.Kernel(prog, wanted)
            self.key_of_kernel[kern.int_ptr] = key
            return kern, key
        except cl.Error as exc:
            self._built.pop(key, None)
            shared.keep_program(self.ctx, key, None)
            if key not in self._from_source and self.cache is not None:
                # a cached binary that builds but cannot make its kernel: quarantine, try source
                self.cache.quarantine(key, f"CL_INVALID_KERNEL: {exc}"[:200])
                self.force_source.add(key)
                self.unlaunched.discard(key)
                return self.kernel(name, options, kernel_name)
            with self._harvest_lock:           # never harvest a program that cannot make a kernel
                self._from_source.pop(key, None)
            raise self.failed(name, key, "create kernel", f"{kernel_name}: {exc}") from None

    def build(self, name: str, options: list[str], kernel: str | None = None) -> cl.Program:
        """The program of `ops/<name>.cl` with `options` (its `kernel` alone, given one)."""
        options = sorted(set(options))
        key = self.key(name, options, kernel)
        if key in self._built:
            return self._built[key]
        with shared.BUILD_LOCK:
            # a binary in this engine's program cache is loaded from it (its report and file stay
            # what they would be in a new process); otherwise a program built in the process is reused
            reuse = (key not in self.force_source and not injected("build", name, options + BASE_OPTIONS)
                     and (self.cache is None or key not in self.cache.program_keys()))
            prog = shared.program(self.ctx, key) if reuse else None
            if prog is None:
                prog = self._build(name, options, key, kernel)
                if not isinstance(prog, Deferred):
                    shared.keep_program(self.ctx, key, prog)
            elif self.cache is not None:
                self.cache.report.note_shared(key)
                with self._harvest_lock:        # its binary belongs in this engine's file too
                    self._from_source[key] = prog
        self._built[key] = prog
        self.keys.append(key)
        return prog

    def _build(self, name: str, options: list[str], key: str, kernel: str | None) -> cl.Program:
        known = self.known_failure(key)
        if known is not None:
            raise known
        opts = options + BASE_OPTIONS
        prog = None
        t0 = time.perf_counter()
        if self.cache is not None and key not in self.force_source:
            blob = self.cache.get_binary(key)
            if blob is not None:
                try:
                    with self.cache.journal_guard(key, "load"):
                        prog = cl.Program(self.ctx, [self.device], [blob]).build(options=opts)
                    self.cache.report.note_from_cache(key)
                    self.unlaunched.add(key)
                except (cl.Error, RuntimeError) as exc:
                    code = "CL_INVALID_BINARY"
                    log.warning("the driver rejected the cached binary of %s (%s): quarantined for this "
                                "device, compiling from source", name, str(exc).splitlines()[0][:120])
                    self.cache.quarantine(key, f"{code}: {str(exc).splitlines()[0][:200]}")
                    self.cache.report.note_rejected(key, code, str(exc).splitlines()[0][:200])
                    prog = None
        if prog is None:
            prog = self._compile(name, key, opts, kernel)
            if isinstance(prog, Deferred):
                return prog
            with self._harvest_lock:
                self._from_source[key] = prog
            if self.cache is not None:
                self.cache.report.note_compiled(key)
        self.compile_seconds += time.perf_counter() - t0
        return prog

    def _compile(self, name: str, key: str, opts: list[str], kernel: str | None) -> cl.Program:
        source = program_source(name, kernel)
        if injected("build", name, opts):
            source += "\n#error injected build failure (MACE_TEST_BREAK_BUILD)\n"
        self.compiled += 1
        events.emit("compile", device=self.device.name.strip(), name=name, count=self.compiled,
                    file=self.cache.cache.name if self.cache is not None else None,
                    first=self.cache is None or self.cache.report.from_cache == 0)
        if self.defer:
            return Deferred(name, key, source, opts)
        return self._compile_now(name, key, source, opts)

    def _compile_now(self, name: str, key: str, source: str, opts: list[str]) -> cl.Program:
        prog = cl.Program(self.ctx, source)
        try:
            with driver_cache.building():
                prog.build(options=opts, devices=[self.device], cache_dir=False)
        except cl.Error as exc:
            build_log = ""
            try:
                build_log = prog.get_build_info(self.device, cl.program_build_info.LOG)
            except cl.Error:
                pass
            raise self.failed(name, key, "build", build_log or str(exc)) from None
        return prog

    def resolve(self, launches) -> bool:
        """Compile the programs noted while deferring, together (`mode`), and resolve their
        kernels; False when one failed to build or make its kernel (recorded: placing the ops
        again takes their next variants). `launches`: the bound launches, which compile
        processes make once so that the binaries they return hold the launch's code."""
        self.defer = False
        jobs = [d for d in self._built.values() if isinstance(d, Deferred)]
        if not jobs:
            return True
        t0 = time.perf_counter()
        if self.mode == "processes":
            self._compile_shared_out(jobs, launches)
        else:
            parallel.in_threads(self._finish, jobs, self.workers)
        ok = [self._resolved(d) for d in jobs]
        self.compile_seconds += time.perf_counter() - t0
        return all(ok)

    def _compile_shared_out(self, jobs: list[Deferred], launches) -> None:
        """Compile processes take the cheap programs, this process the costly ones (parallel.py)."""
        owner = {id(pk): d.key for d in jobs for pk in d.kernels}
        mine: dict[str, list] = {d.key: [] for d in jobs}
        specs: dict[str, list] = {d.key: [] for d in jobs}
        for launch in launches:
            key = owner.get(id(launch.kernel))
            spec = parallel.launch_spec(launch) if key is not None else None
            if spec is not None and spec not in specs[key]:
                specs[key].append(spec)
                mine[key].append(launch)
        by_key = {d.key: d for d in jobs}
        order = sorted(jobs, key=lambda d: -compile_cost(d.name, d.opts))

        def here(job: dict) -> None:   # compiled in this process, each kernel launched once
            d = by_key[job["key"]]
            self._finish(d)
            if d.error is None and self._kernels(d):
                queue = cl.CommandQueue(self.ctx, self.device)
                for launch in mine[d.key]:
                    binaries.launch(queue, launch.kernel.resolved, launch.gws, launch.lws)
        got = parallel.shared_out(self.device, [{"key": d.key, "source": d.source, "options": d.opts,
                                                 "launches": specs[d.key],
                                                 "here_only": compile_cost(d.name, d.opts) >= HEAVY}
                                                for d in order], self.workers, here)
        for d in jobs:
            if d.key in got:
                self._from_child(d, got[d.key])

    def _finish(self, d: Deferred) -> None:
        try:
            with driver_cache.building():
                d.prog = self._compile_now(d.name, d.key, d.source, d.opts)
        except KernelBuildError as exc:
            d.error = exc

    def _from_child(self, d: Deferred, line: dict | None) -> None:
        """A compile process's result: its binary loaded here; its failure recorded; no result
        (the process died): compiled here."""
        if line is not None and not line.get("ok"):
            d.error = self.failed(d.name, d.key, "build", line.get("log", ""))
            return
        if line is not None:
            self.child_seconds[d.key] = line.get("seconds")
            try:
                d.prog = cl.Program(self.ctx, [self.device], [line["binary"]]).build(options=d.opts)
                d.blob = line["binary"]
                return
            except (cl.Error, RuntimeError) as exc:
                log.info("the binary a compile process made for %s did not load (%s): compiling it here",
                         d.name, str(exc).splitlines()[0][:120])
        self._finish(d)

    def _kernels(self, d: Deferred) -> bool:
        """Make the kernels of a deferred program (once); False: one failed (recorded)."""
        try:
            for pk in d.kernels:
                if pk.resolved is None:
                    pk.resolve(cl.Kernel(d.prog, pk.name))
                    self.key_of_kernel[pk.resolved.int_ptr] = d.key
        except cl.Error as exc:
            d.error = self.failed(d.name, d.key, "create kernel", f"{pk.name}: {exc}")
        return d.error is None

    def _resolved(self, d: Deferred) -> bool:
        """Put a deferred program in place of its note and make its kernels."""
        if d.error is None:
            self._kernels(d)
        if d.error is not None:
            self._built.pop(d.key, None)
            self.keys.remove(d.key)
            return False
        self._built[d.key] = d.prog
        shared.keep_program(self.ctx, d.key, d.prog)
        if self.cache is not None:
            self.cache.report.note_compiled(d.key)
        if d.blob and self.cache is not None:
            self.cache.put_binary(d.key, d.blob)       # nothing left to harvest for it
        else:
            with self._harvest_lock:
                self._from_source[d.key] = d.prog
        return True

    def first_launch(self, key: str):
        """Context around the first launch of a kernel from a cached binary: journaled, so a
        crash there quarantines the binary at the next start (the caller waits for the kernel
        inside the block)."""
        self.unlaunched.discard(key)
        return self.cache.journal_guard(key, "launch")

    @property
    def pending(self) -> int:
        """Programs compiled from source whose binaries are not yet in the cache."""
        with self._harvest_lock:
            return len(self._from_source)

    def harvest(self, each=None) -> int:
        """Put binaries of programs built from source into the cache (call after a launch), one
        program at a time, calling `each(key)` after each is in (the background harvest saves
        the file there). Safe from another thread than the engine's runs: the driver's call is
        made without the GIL (binaries.py)."""
        if self.cache is None:
            return 0
        n = 0
        while True:
            with self._harvest_lock:
                if not self._from_source:
                    return n
                key = next(iter(self._from_source))
                prog = self._from_source.pop(key)
            try:
                blob = binaries.program_binary(prog)
            except (cl.Error, RuntimeError) as exc:
                log.debug("no binary for %s: %s", key, exc)
                continue
            if blob:
                self.cache.put_binary(key, blob)
                n += 1
                if each is not None:
                    each(key)
