"""`mace.Engine`: load a model, pick a runtime and device, open the program cache, run.

    engine = mace.Engine("model.mace", runtime="gpu", program="mace-cl-compiled-program.bin")
    outputs = engine.run({"input": x})

On the GPU path the program cache is opened (never fatal), programs are built from cached
binaries or source, and after the first run new binaries are merged into the cache file
(drivers such as PoCL finish code generation at first launch) by a background thread
(opencl/harvest.py): the first result does not wait for it. `warmup=True` does that first
run on dummy data during init and waits for the binaries to be saved.
"""
from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

from mace.errors import MaceError
from mace.ir import modelfile
from mace.ir.graph import Graph
from mace.runtime import DEFAULT_RUNTIME, RUNTIMES

log = logging.getLogger("mace")


class Engine:
    """A loaded model on one runtime. `run` is thread-safe: concurrent runs take an execution
    context from the engine's pool (`contexts`, default 1: they take turns). `close()` or a
    `with` block releases device buffers, kernels and queues at once; later runs raise MaceError."""

    def __init__(self, model: str | os.PathLike | Graph, runtime: str | None = None, device=None,
                 program: str | os.PathLike | bytes | None = None, warmup: bool = False,
                 data_type: str | None = None, use_program_cache: bool = True, contexts: int = 1,
                 threads: int | None = None, program_store: str | None = None, publish_on_miss: bool = False):
        """runtime: "cpu", "gpu" (every op on the GPU, or a DeviceError listing those that
        cannot be) or "cpu+gpu" (ops without a GPU kernel on the CPU runtime); None: the
        model's own (mace.yml `runtime`, kept in the model file), else "cpu+gpu".
        contexts: how many runs of this engine may execute at once from different threads (each
        extra context costs the model's activation buffers, and on the CPU runtime its prepacked
        weights); runs beyond that wait their turn.
        threads: threads one CPU-runtime run uses (default: the physical cores).
        program_store: a program store URL (else MACE_PROGRAM_STORE) this device's section is
        pulled from at start, within MACE_PROGRAM_STORE_TIMEOUT (mace/store/link.py);
        publish_on_miss: after a miss, contribute the section compiled here."""
        t0 = time.perf_counter()
        if not isinstance(contexts, int) or contexts < 1:
            raise MaceError(f"contexts={contexts!r}: give a whole number of execution contexts, 1 or more")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise MaceError(f"threads={threads!r}: give a whole number of threads, 1 or more (default: the physical cores)")
        self.threads = threads
        self.cpu_kernel_report = None
        self.contexts = contexts
        self._cv = threading.Condition()
        self._idle: list = []
        self._made = 0          # contexts made (idle or running)
        self._closed = False
        self.executor = None
        self.graph = model if isinstance(model, Graph) else modelfile.load(model)
        self.model_path = None if isinstance(model, Graph) else str(model)
        runtime = runtime or self.graph.meta.get("runtime") or DEFAULT_RUNTIME
        if runtime not in RUNTIMES:
            raise MaceError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
        self.runtime = runtime
        self.data_type = data_type or self.graph.meta.get("data_type", "fp32_fp32")
        self.program_cache = None
        self.program_section = None   # cache.section(fp): the view the runtime and tuner use
        self.program_cache_report = None
        self.device = None
        self._runs = 0
        self.store_link = None
        self._store_args = (program_store, publish_on_miss)
        #: where a GPU start's time went (seconds): device choice, the device probe (a first start
        #: only), program builds (compiled or loaded), the whole executor construction
        self.start_phases: dict[str, float] = {}
        if runtime == "cpu":
            self.executor = self._new_executor()
            from mace.runtime.cpu import jit, kernels
            if warmup:   # a first start's work includes the compiled kernels: wait for them here
                kernels.wait()
            self.cpu_kernel_report = jit.report()
            log.info("%s", self.cpu_kernel_report.summary_line())
        else:
            self._init_gpu(device, program, use_program_cache)
        self._idle, self._made = [self.executor], 1
        self.init_seconds = time.perf_counter() - t0
        if self.program_cache_report is not None:
            log.info("%s", self.program_cache_report.summary_line())
        if warmup:   # the work of a first start done now, binaries saved included
            self.run(self.dummy_inputs())
            self.save_programs()
            self.init_seconds = time.perf_counter() - t0
        from mace import settings
        if self.device is not None and settings.flag("MACE_TUNING"):
            from mace.tuning import tune
            log.info("MACE_TUNING=1: tuning %d ops (mode normal)", len(self.executor.op_names()))
            self.tuning_result = tune(self, mode="normal")

    @classmethod
    def from_bundle(cls, source, runtime: str = "gpu", device=None, program=None, warmup: bool = False,
                    **kwargs) -> "Engine":
        """An Engine on a `mace convert --embed` bundle (path, bytes or generated module); its
        programs are a read-only in-memory cache."""
        from mace.bundle import engine_args
        graph, program, header = engine_args(source, runtime, program)
        engine = cls(graph, runtime=runtime, device=device, program=program, warmup=warmup, **kwargs)
        engine.bundle_header = header
        return engine

    # -- GPU init ------------------------------------------------------------------------
    def _init_gpu(self, device, program, use_program_cache: bool) -> None:
        from mace.runtime.opencl.device import select_device
        t0 = time.perf_counter()
        self.device = select_device(device)
        self.start_phases["device_s"] = time.perf_counter() - t0
        cache = None
        if use_program_cache:
            from mace.programcache import DeviceFingerprint, ProgramCache
            fp = DeviceFingerprint.from_cl_device(self.device)
            self._pull_from_store(fp, program)
            # a path the caller named must be a program cache (or new): else CacheRefused
            cache = ProgramCache.open(program, device_fp=fp,
                                      strict=isinstance(program, (str, os.PathLike)))
            self.program_cache, self.program_cache_report = cache, cache.report
            self.program_section = cache.section(fp)   # this device's records in the cache
        self._harvest = None
        t0 = time.perf_counter()
        self.executor = self._driver_call("init", self._new_executor)
        caps, builder = self.executor.caps, self.executor.builder
        self.start_phases.update(probe_s=caps.probe_seconds if caps.source == "probed" else 0.0,
                                 build_s=builder.compile_seconds, executor_s=time.perf_counter() - t0)
        if self.executor.builder.compiled:
            from mace.runtime.opencl import events
            events.emit("built", device=self.device.name.strip(), compiled=self.executor.builder.compiled,
                        file=cache.name if cache is not None else None, seconds=time.perf_counter() - t0)
        if cache is not None and cache.report.from_cache == 0 and cache.report.compiled:
            msg = cache.first_run_message(cache.report.compiled)
            if msg:
                log.info("%s", msg)

    def _pull_from_store(self, fp, program) -> None:
        """This device's section from the program store into the program file, if one is set."""
        from mace.store.link import StoreLink, store_url
        url = store_url(self._store_args[0])
        if url and (program is None or isinstance(program, (str, os.PathLike))):
            from mace.programcache.settings import default_cache_path
            self.store_link = StoreLink(url, fp, program or default_cache_path(), self._store_args[1])
            self.store_link.pull()

    def _new_executor(self, force_source: set[str] | None = None):
        if self.device is None:
            from mace.runtime.cpu.executor import CpuExecutor
            return CpuExecutor(self.graph, threads=self.threads)
        from mace.runtime.opencl.executor import OpenCLExecutor
        lookup = None
        if self.program_cache is not None:
            from mace.tuning.tuner import make_lookup
            lookup = make_lookup(self.program_section, self.device)
        return OpenCLExecutor(self.graph, self.device, self.data_type, self.program_section,
                              allow_cpu_fallback=self.runtime == "cpu+gpu", tuning_lookup=lookup,
                              force_source=force_source)

    def rebuild_after_tuning(self, changed_keys: set[str]) -> None:
        """Rebuild the programs whose launch configuration tuning changed from source with the
        records applied, launch once and save: stored binaries then hold only the chosen
        variants and local sizes (PoCL keeps a work-group function per local size it launched;
        programs whose defaults were kept keep their first-run binaries)."""
        if self.device is None:
            return
        self._wait_harvest()
        before = set(self.executor.builder.keys)
        with self._cv:   # contexts bound before tuning go; new ones are made with its records
            for ex in self._idle:
                ex.release()
            self._idle, self._made = [], 0
        self.executor = self._new_executor(force_source=changed_keys)
        with self._cv:
            self._idle, self._made = [self.executor], 1
        self.executor.run(self.dummy_inputs())
        if self.program_cache is not None:
            self.executor.builder.harvest()
            for key in before - set(self.executor.builder.keys):  # variants not kept
                self.program_section.discard_binary(key)
            self.program_cache.save()

    # -- running ---------------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        return list(self.graph.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.graph.outputs)

    def input_shape(self, name: str) -> tuple[int, ...]:
        return self.graph.shape(name)

    def dummy_inputs(self) -> dict[str, np.ndarray]:
        """Seeded inputs of the model's shapes in [-1, 1] (warm-up, tuning, profiling)."""
        rng = np.random.default_rng(0)
        out = {}
        for n in self.graph.inputs:
            dtype = np.dtype(self.graph.dtypes.get(n, "float32"))
            if dtype.kind == "f":
                out[n] = rng.uniform(-1, 1, self.graph.shape(n)).astype(np.float32)
            else:  # integer and bool inputs: small non-negative values of their type (0 and 1 for bool)
                out[n] = rng.integers(0, 2 if dtype.kind == "b" else 4, self.graph.shape(n)).astype(dtype)
        return out

    def _check_inputs(self, inputs: dict) -> dict:
        from mace.feeds import check_feeds
        return check_feeds(self.graph, inputs)

    def _driver_call(self, what: str, fn, *args, **kwargs):
        """Call into the OpenCL driver; its errors become a typed DeviceError naming the device."""
        if self.device is None:
            return fn(*args, **kwargs)
        import pyopencl as cl
        try:
            return fn(*args, **kwargs)
        except (cl.Error, cl.RuntimeError) as exc:
            from mace.errors import DeviceError
            from mace.runtime.opencl.device import describe
            first = " ".join(str(exc).split())[:300]
            raise DeviceError(f"the OpenCL driver failed during {what} on {describe(self.device)}: {first}: "
                              f"try another device (--device / MACE_DEVICE, see `mace devices`) or the CPU "
                              f"runtime (--runtime cpu), and check the program cache with `mace doctor`") from None

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs of one run; safe from any number of threads at once (see the module doc)."""
        feeds = self._check_inputs(inputs)
        ex = self._acquire()
        try:
            outs = self._driver_call("run", ex.run, feeds)
        finally:
            self._release(ex)
        self._after_run()
        return outs

    def profile(self, inputs: dict[str, np.ndarray] | None = None):
        """Run once and return (outputs, [(name, op_type, seconds), ...]) from profiling events."""
        feeds = self._check_inputs(inputs or self.dummy_inputs())
        ex = self._acquire()
        try:
            outs, times = ex.run(feeds, profile=True)
        finally:
            self._release(ex)
        self._after_run()
        rows = []
        for step, sec in times:
            if self.runtime == "cpu":
                rows.append((step.name, step.op_type, sec, 0.0))
            else:
                rows.append((step.name, step.name.split(":")[-1], sec, step.flops))
        return outs, rows

    # -- execution contexts -----------------------------------------------------------------
    def _acquire(self):
        """An idle execution context, a new one while fewer than `contexts` exist, else wait."""
        with self._cv:
            while True:
                if self._closed:
                    raise MaceError(f"this engine ({self.model_path or 'in-memory model'}) is closed: "
                                    f"make a new mace.Engine to run it again")
                if self._idle:
                    return self._idle.pop()
                if self._made < self.contexts:
                    self._made += 1
                    break
                self._cv.wait()
        try:
            return self._driver_call("init", self._new_executor)
        except BaseException:
            with self._cv:
                self._made -= 1
                self._cv.notify()
            raise

    def _release(self, ex) -> None:
        with self._cv:
            self._idle.append(ex)
            self._cv.notify()

    def close(self) -> None:
        """Release the device buffers, kernels and queues now (after the runs in flight end);
        later runs raise. Idempotent; `with mace.Engine(...) as engine:` calls it on exit."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify_all()
            while len(self._idle) < self._made:
                self._cv.wait()
            executors, self._idle, self._made = self._idle, [], 0
        for ex in executors:
            ex.release()
        self._wait_harvest()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _after_run(self) -> None:
        with self._cv:
            self._runs += 1
            first = self._runs == 1
        if first and self.program_cache is not None:
            from mace.runtime.opencl.harvest import Harvest
            link = self.store_link   # contributes this device's section once its binaries are saved
            self._harvest = Harvest(self.executor.builder, self.program_cache,
                                    after=(lambda: link.after_first_save(self.program_cache)) if link else None)

    def _wait_harvest(self) -> None:
        h = getattr(self, "_harvest", None)
        if h is not None:
            h.wait()

    def save_programs(self) -> bool:
        """Merge newly built binaries into the program cache file now, after the background
        harvest of the first run if one is going (never raises)."""
        if self.program_cache is None:
            return False
        self._wait_harvest()
        self.executor.builder.harvest()
        return self.program_cache.save()

    def summary(self) -> dict:
        d = {"model": self.model_path, "runtime": self.runtime, "data_type": self.data_type,
             "init_seconds": self.init_seconds, "nodes": len(self.graph.nodes)}
        if self.device is not None:
            from mace.runtime.opencl.device import describe
            d["device"] = describe(self.device)
            if self.program_section is not None:   # which section of a program file is this device's
                d["device_fingerprint"] = self.program_section.id
            d["fallback_nodes"] = list(self.executor.fallback_nodes)
            d["start_phases"] = dict(self.start_phases)
            d["memory"] = {"planned_bytes": self.executor.plan.total_bytes,
                           "naive_bytes": self.executor.plan.naive_bytes}
        if self.program_cache_report is not None:
            d["program_cache"] = self.program_cache_report.to_dict()
        if self.cpu_kernel_report is not None:
            from mace.runtime.cpu import jit
            self.cpu_kernel_report = jit.report()   # a background compile may have ended since the start
            d["cpu_kernels"] = dict(self.cpu_kernel_report.to_dict(), threads=self.executor.threads if self.executor
                                    else self.threads)
        if self.store_link is not None:
            d["program_store"] = self.store_link.report
        return d
