"""`mace benchmark model.mace`: what a deployment costs at start-up and per inference.

- cold initialization: a fresh process (`python -m mace run MODEL --program <absent file> --json`)
  with every hidden cache off (PYOPENCL_NO_CACHE=1, POCL_KERNEL_CACHE=0, CUDA_CACHE_DISABLE=1), so every program is
  compiled from source; several processes, median;
- warm initialization: the same with the program file present (written by the first cold run,
  or --program), so programs come from our cache;
- in this process: first-run time, steady latency (median, p90, spread) over --runs, and a
  per-op profile from OpenCL profiling events (time share, GFLOP/s, top N; MACE's
  "Sort by Computation Time" / "Stat by Op Type");
- peak memory: each child's max RSS (wait4), this process's, and the engine's planned buffer
  bytes.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from mace.errors import MaceError
from mace.latency import latency_stats
from mace.tools.progress import sink

#: PyOpenCL's, PoCL's and NVIDIA's (PTX -> SASS compute cache) hidden caches, all off
NO_HIDDEN_CACHES = {"PYOPENCL_NO_CACHE": "1", "POCL_KERNEL_CACHE": "0", "CUDA_CACHE_DISABLE": "1"}


def _child_env() -> dict:
    env = dict(os.environ)
    env.update(NO_HIDDEN_CACHES)
    root = str(Path(__file__).resolve().parents[2])          # mace importable in the child
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("MACE_LOG_LEVEL", "WARNING")
    return env


def run_child(model, runtime: str, device, program: Path, timeout: float = 300.0) -> dict:
    """One fresh `python -m mace run --json` process: its JSON plus wall time and max RSS."""
    cmd = [sys.executable, "-m", "mace", "run", str(model), "--runtime", runtime,
           "--program", str(program), "--json"]
    if device is not None:
        cmd += ["--device", str(device)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=_child_env())
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if p.returncode != 0:
        last = (stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
        raise MaceError(f"benchmark child `{' '.join(cmd[2:])}` failed: {last}")
    try:
        doc = json.loads(stdout)
    except ValueError:
        raise MaceError(f"benchmark child `{' '.join(cmd[2:])}` printed no JSON") from None
    s = doc["summary"]
    pc = s.get("program_cache") or {}
    return {"init_ms": s["init_seconds"] * 1e3, "first_run_ms": doc["first_run_ms"],
            "process_to_first_result_ms": doc["process_to_first_result_s"] * 1e3,
            "wall_ms": wall * 1e3, "maxrss_kb": int(usage.ru_maxrss),
            "compiled": int(pc.get("compiled", 0)), "from_cache": int(pc.get("from_cache", 0)),
            "program_format": pc.get("format"), "device": s.get("device")}


def _median_block(runs: list[dict]) -> dict:
    def med(k):
        return float(np.median([r[k] for r in runs])) if runs else None
    return {"processes": len(runs), "init_ms": med("init_ms"), "first_run_ms": med("first_run_ms"),
            "init_plus_first_run_ms": (med("init_ms") + med("first_run_ms")) if runs else None,
            "process_to_first_result_ms": med("process_to_first_result_ms"), "wall_ms": med("wall_ms"),
            "maxrss_kb": max((r["maxrss_kb"] for r in runs), default=None),
            "compiled": max((r["compiled"] for r in runs), default=0),
            "from_cache": min((r["from_cache"] for r in runs), default=0), "runs": runs}


def op_profile(engine, inputs, runs: int, top: int) -> dict:
    """Per-op kernel time averaged over `runs` profiled runs (rows from engine.profile())."""
    acc: dict[tuple[str, str], list[float]] = {}
    flops: dict[tuple[str, str], float] = {}
    for _ in range(max(runs, 1)):
        _, rows = engine.profile(inputs)
        sec_run: dict[tuple[str, str], float] = {}
        fl_run: dict[tuple[str, str], float] = {}
        for name, op_type, sec, fl in rows:        # a node may have several launches
            k = (name, op_type)
            sec_run[k] = sec_run.get(k, 0.0) + float(sec)
            fl_run[k] = fl_run.get(k, 0.0) + float(fl or 0.0)
        for k, sec in sec_run.items():
            acc.setdefault(k, []).append(sec)
        flops.update(fl_run)
    order = list(acc)
    ops = []
    for idx, k in enumerate(order):
        ms = float(np.mean(acc[k])) * 1e3
        ops.append({"name": k[0], "op_type": k[1], "order": idx, "ms": ms,
                    "flops": flops.get(k, 0.0),
                    "gflops": (flops.get(k, 0.0) / (ms * 1e-3) / 1e9) if ms > 0 and flops.get(k) else None})
    total = sum(o["ms"] for o in ops)
    for o in ops:
        o["share"] = o["ms"] / total if total > 0 else 0.0
    by_time = sorted(ops, key=lambda o: -o["ms"])
    cdf = 0.0
    for o in by_time:
        cdf += o["share"]
        o["cdf"] = cdf
    types: dict[str, dict] = {}
    for o in ops:
        t = types.setdefault(o["op_type"], {"op_type": o["op_type"], "count": 0, "ms": 0.0, "flops": 0.0})
        t["count"] += 1
        t["ms"] += o["ms"]
        t["flops"] += o["flops"]
    for t in types.values():
        t["share"] = t["ms"] / total if total > 0 else 0.0
        t["gflops"] = (t["flops"] / (t["ms"] * 1e-3) / 1e9) if t["ms"] > 0 and t["flops"] else None
    total_flops = sum(o["flops"] for o in ops)
    return {"runs": max(runs, 1), "launches": len(ops), "total_ms": total,
            "total_gflops": (total_flops / (total * 1e-3) / 1e9) if total > 0 and total_flops else None,
            "top": top, "ops": by_time[:top] if top else by_time, "all_ops": len(ops),
            "by_op_type": sorted(types.values(), key=lambda t: -t["ms"]),
            "note": None if ops else "no GPU launches were profiled (every op ran on the CPU fallback)"
            if engine.runtime != "cpu" else None}


def benchmark(model, runtime: str = "gpu", device=None, program=None, runs: int = 50, top: int = 10,
              init_runs: int = 3, profile_runs: int = 5, warmup_runs: int = 2, seed: int | None = 0,
              progress=None) -> dict:
    """Everything `mace benchmark --json` prints (`progress`: see mace.tools.progress)."""
    import mace
    from mace.tools.validate import random_inputs
    model = Path(model)
    if not model.is_file():
        from mace.errors import ModelFileError
        raise ModelFileError(f"{model}: no such model file: convert one with `mace convert`")
    bars = sink(progress)
    work = Path(tempfile.mkdtemp(prefix="mace-bench-"))
    try:
        with bars:
            t_cold = bars.add("cold init (fresh processes)", init_runs)
            cold = []
            for i in range(init_runs):
                cold.append(run_child(model, runtime, device, work / f"cold{i}.bin"))
                bars.advance(t_cold)
            if program is not None:
                warm_path = Path(program)
                if not warm_path.is_file():          # prime it: what a deployment ships
                    mace.Engine(model, runtime=runtime, device=device, program=str(warm_path), warmup=True)
            else:
                warm_path = work / "warm.bin"
                if (work / "cold0.bin").is_file():
                    shutil.copyfile(work / "cold0.bin", warm_path)
                else:
                    mace.Engine(model, runtime=runtime, device=device, program=str(warm_path), warmup=True)
            t_warm = bars.add("warm init (fresh processes)", init_runs)
            warm = []
            for _ in range(init_runs):
                warm.append(run_child(model, runtime, device, warm_path))
                bars.advance(t_warm)
            t_run = bars.add("latency + profile (this process)", 1 + warmup_runs + runs + profile_runs)
            t0 = time.perf_counter()
            engine = mace.Engine(model, runtime=runtime, device=device, program=str(warm_path))
            init_s = time.perf_counter() - t0
            feeds = random_inputs(engine.graph, seed)
            t0 = time.perf_counter()
            engine.run(feeds)
            first = time.perf_counter() - t0
            bars.advance(t_run)
            for _ in range(warmup_runs):
                engine.run(feeds)
                bars.advance(t_run)
            samples = []
            for _ in range(runs):
                t0 = time.perf_counter()
                engine.run(feeds)
                samples.append(time.perf_counter() - t0)
                bars.advance(t_run)
            prof = op_profile(engine, feeds, profile_runs, top)
            bars.advance(t_run, profile_runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = engine.summary()
    cold_b, warm_b = _median_block(cold), _median_block(warm)
    speedup = (cold_b["init_plus_first_run_ms"] / warm_b["init_plus_first_run_ms"]
               if runtime != "cpu" and cold_b["init_plus_first_run_ms"] and warm_b["init_plus_first_run_ms"]
               else None)                  # the CPU runtime has no programs: cold == warm
    mem = summary.get("memory") or {}
    return {
        "model": str(model), "runtime": runtime, "device": summary.get("device"),
        "program": str(program) if program is not None else None,
        "init": {"cold": cold_b, "warm": warm_b, "speedup": speedup,
                 "hidden_caches_off": dict(NO_HIDDEN_CACHES)},
        "in_process": {"init_ms": init_s * 1e3, "first_run_ms": first * 1e3, "warmup_runs": warmup_runs},
        "first_run_ms": first * 1e3,
        "latency": latency_stats(samples),
        "memory": {"peak_rss_kb": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
                   "cold_child_peak_rss_kb": cold_b["maxrss_kb"], "warm_child_peak_rss_kb": warm_b["maxrss_kb"],
                   "planned_gpu_bytes": mem.get("planned_bytes"), "naive_gpu_bytes": mem.get("naive_bytes")},
        "profile": prof,
        "summary": summary,
        "environment": {"python": sys.version.split()[0], "platform": sys.platform,
                        "cpu_count": os.cpu_count()},
    }


__all__ = ["benchmark", "op_profile", "run_child"]
