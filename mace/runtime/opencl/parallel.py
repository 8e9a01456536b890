"""Compiling a cold start's programs in parallel: in child processes, or in threads.

While the executor places a model's ops, programs that must be compiled from source are only
noted (`PendingKernel` stands in for their kernels); then all of them are compiled at once and
the placeholders resolved, before any op binds. How, per device (`caps.compile_mode`):
- "processes": PoCL generates code under one lock per process, so threads gain nothing; up to
  one `compile_child.py` per CPU builds programs, launches their kernels once and returns their
  binaries, which this process loads (no code left to generate at the first launch, and the
  binaries are in the program cache before the first run). This process compiles the costliest
  programs itself meanwhile (`shared_out`). A child that dies costs only its job: it is
  compiled here.
- "threads": drivers that compile in parallel within a process (clBuildProgram without the GIL).
A program that fails to build is recorded as before, and the executor places its op again (the
op then takes its next variant, or the CPU runtime).
"""
from __future__ import annotations

import base64
import collections
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger("mace.opencl")

CHILD_TIMEOUT_S = 120.0   # one program in a compile process


class PendingKernel:
    """Stands in for a kernel whose program is being compiled: keeps the arguments an op binds
    (they are set on the kernel once it exists), then forwards to the kernel."""

    def __init__(self, name: str):
        self.name = name
        self.resolved = None        # the cl.Kernel, once its program is built
        self.args: tuple | None = None

    def set_args(self, *args):
        if self.resolved is None:
            self.args = args
            return None
        return self.resolved.set_args(*args)

    def resolve(self, kernel) -> None:
        self.resolved = kernel
        if self.args is not None:
            kernel.set_args(*self.args)

    def __getattr__(self, attr):
        kernel = self.__dict__.get("resolved")
        if kernel is None:
            raise AttributeError(f"kernel {self.name} is not built yet ({attr})")
        return getattr(kernel, attr)


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def workers() -> int:
    """MACE_COMPILE_PROCESSES, else the CPUs this process may use."""
    from mace import settings
    value = settings.get("MACE_COMPILE_PROCESSES")
    return int(value) if value is not None else cpus()


def launch_spec(launch) -> dict | None:
    """What a compile process needs to launch a bound kernel once, as the run will (the same
    global and local sizes and scalar arguments, zero-filled buffers of the same sizes): its
    first launch generates the code the run's launch would. None: arguments it cannot copy."""
    import numpy as np
    import pyopencl as cl
    args = []
    for a in launch.kernel.args or ():
        if a is None:
            args.append({"null": 1})
        elif isinstance(a, cl.MemoryObjectHolder):
            args.append({"buffer": int(a.size)})
        elif isinstance(a, np.generic):
            args.append({"bytes": base64.b64encode(a.tobytes()).decode("ascii")})
        else:
            return None
    return {"kernel": launch.kernel.name, "gws": [int(g) for g in launch.gws],
            "lws": [int(x) for x in launch.lws] if launch.lws is not None else None, "args": args}


def shared_out(device, jobs: list[dict], processes: int, here) -> dict[str, dict]:
    """Compile `jobs` ({key, source, options, launches, here_only}, the costliest first)
    together: this thread calls `here(job)` from the front of the list (compiled in this process,
    whose first launch needs no binary), while up to `processes - 1` children take jobs from the
    back, never one marked `here_only` (their binaries cost PoCL a generic work-group function per
    kernel, several times the first launch's code, so they get the cheap ones). Returns key -> the child's line ({"ok", "binary"} or
    {"ok": False, "log"}); a job of a child that died is done `here`."""
    from mace.runtime.opencl.caps import locate
    platform, index = locate(device)
    env = dict(os.environ, POCL_KERNEL_CACHE="0", PYTHONWARNINGS="ignore")  # never poison a cache
    cmd = [sys.executable, str(Path(__file__).with_name("compile_child.py")), str(platform), str(index)]
    todo = collections.deque(jobs)
    results: dict[str, dict] = {}
    cv = threading.Condition()
    busy = [0]

    def take(back: bool) -> dict | None:
        with cv:
            if not todo or (back and todo[-1].get("here_only")):
                return None
            busy[0] += back
            return todo.pop() if back else todo.popleft()

    def child() -> None:
        job = take(True)
        if job is None:
            return
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    env=env)
        except OSError as exc:
            log.info("no compile process (%s): compiling here", exc)
            proc = None
        while job is not None:
            line = _ask(proc, job) if proc is not None else None
            with cv:
                busy[0] -= 1
                if line is None:               # the child died: this process compiles the job
                    todo.appendleft(job)
                    cv.notify_all()
                    break
                results[job["key"]] = line
                cv.notify_all()
            job = take(True)
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(CHILD_TIMEOUT_S)

    threads = [threading.Thread(target=child, name="mace-compile", daemon=True)
               for _ in range(max(0, min(processes - 1, len(jobs) - 1)))]
    for t in threads:
        t.start()
    while True:
        job = take(False)
        if job is not None:
            here(job)
            continue
        with cv:
            if not todo and busy[0] == 0:
                break
            cv.wait(0.05)
    for t in threads:
        t.join()
    return results


def _ask(proc, job: dict) -> dict | None:
    """One job to a compile process and its answer (None: the process died, or took longer than
    CHILD_TIMEOUT_S and was killed)."""
    watchdog = threading.Timer(CHILD_TIMEOUT_S, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        return _answer(proc, job)
    finally:
        watchdog.cancel()


def _answer(proc, job: dict) -> dict | None:
    try:
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        proc.stdin.flush()
        while True:
            raw = proc.stdout.readline()
            if not raw:
                log.info("a compile process ended (code %s) while compiling %s: compiling it here",
                         proc.poll(), job["key"].split("|")[0])
                return None
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if "key" not in line:     # a launch that failed: its code is left to the first run
                log.debug("compile process: %s", line)
                continue
            if line.get("ok"):
                line["binary"] = base64.b64decode(line["binary"])
            return line
    except OSError:
        return None


def in_threads(build, jobs: list, threads: int) -> list:
    """`build(job)` for every job over `threads` threads (drivers that build without the GIL)."""
    if threads < 2 or len(jobs) < 2:
        return [build(j) for j in jobs]
    with ThreadPoolExecutor(min(threads, len(jobs)), thread_name_prefix="mace-compile") as pool:
        return list(pool.map(build, jobs))
