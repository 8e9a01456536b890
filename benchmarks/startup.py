"""Process start to first result, cold vs warm program cache, next to onnxruntime's process.

cold: `mace run MODEL --program P` with P absent and the hidden caches off
      (PYOPENCL_NO_CACHE=1 POCL_KERNEL_CACHE=0), so every program compiles;
warm: the same command with P written by the cold run (our cache is the only one that answers);
onnxruntime: a fresh `python -c` that creates a session and runs once (it compiles nothing).
Fresh processes every time; medians and spread. `cold`/`warm` are process start to first
result (what a user waits for); `*_process` the whole process, which on a cold start includes
waiting at exit for the binaries harvested after the first result. `*_phases_ms` split the last
run: import (interpreter start to the run verb), device, probe, build (compile or load), other
init, first-launch codegen (first run minus a steady run), first run's compute, and the
harvest left after the first result (the wait at exit). Each model's row carries the load average
before and after its runs (the machine's other work moves every number here).

--cpu adds the CPU runtime's rows (`mace run --runtime cpu`): cold with an empty compiled-kernel
cache (MACE_CPU_KERNEL_CACHE in a fresh directory: the first result comes from the NumPy kernels
while numba compiles in the background; that compile is let finish before the next process
starts, so it never slows the next row), warm with a filled one.

    python benchmarks/startup.py [--models mobilenet_v2,resnet18] [--cold 3] [--warm 5] [--device D] [--cpu] > startup.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import converted, machine  # noqa: E402

from mace.latency import latency_stats  # noqa: E402

# the hidden caches off: PyOpenCL's, PoCL's, and NVIDIA's PTX->SASS compute cache
ENV = {**os.environ, "PYOPENCL_NO_CACHE": "1", "POCL_KERNEL_CACHE": "0", "CUDA_CACHE_DISABLE": "1"}


def _proc(cmd: list[str], env: dict | None = None) -> tuple[float, dict | None]:
    t_unix, t0 = time.time(), time.perf_counter()
    out = subprocess.run(cmd, env=env or ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr[-2000:]}")
    try:
        res = json.loads(out.stdout)
    except ValueError:
        return wall, None
    res["_wall_s"], res["_spawn_unix"] = wall, t_unix
    return wall, res


def _first_result_s(res: dict) -> float:
    """Process spawn to first result, as the parent's clock sees it."""
    return res["first_result_unix"] - res["_spawn_unix"]


def bench(name: str, cold_runs: int, warm_runs: int, device: str | None) -> dict:
    onnx_path, mace_path = converted(name)
    load_before = _load()
    tmp = Path(tempfile.mkdtemp(prefix="mace-startup-"))
    prog = tmp / "mace-cl-compiled-program.bin"
    cmd = [sys.executable, "-m", "mace", "-q", "run", str(mace_path), "--runtime", "gpu", "--program", str(prog),
           "--runs", "3", "--json"]
    if device is not None:
        cmd += ["--device", device]
    cold, cold_proc, cold_reports, cold_parts = [], [], [], []
    for _ in range(cold_runs):
        prog.unlink(missing_ok=True)
        wall, res = _proc(cmd)
        cold.append(_first_result_s(res))
        cold_proc.append(wall)
        cold_reports.append(res["summary"].get("program_cache"))
        cold_parts.append(_parts(res))
    warm, warm_proc, warm_reports, warm_parts = [], [], [], []
    for _ in range(warm_runs):
        wall, res = _proc(cmd)
        warm.append(_first_result_s(res))
        warm_proc.append(wall)
        warm_reports.append(res["summary"].get("program_cache"))
        warm_parts.append(_parts(res))
    ort_code = ("import numpy as np, onnxruntime as ort; "
                f"s = ort.InferenceSession(r'{onnx_path}', providers=['CPUExecutionProvider']); "
                "s.run(None, {'input': np.random.default_rng(0).uniform(0, 1, (1, 3, 224, 224)).astype(np.float32)})")
    ort = [_proc([sys.executable, "-c", ort_code])[0] for _ in range(warm_runs)]
    c, w, o = (latency_stats(s, with_samples=False) for s in (cold, warm, ort))
    return {"model": name, "cold": c, "warm": w, "onnxruntime_process": o,
            "cold_process": latency_stats(cold_proc, with_samples=False),
            "warm_process": latency_stats(warm_proc, with_samples=False),
            "cold_over_warm": c["median_ms"] / w["median_ms"],
            "warm_over_onnxruntime": latency_stats(warm_proc, with_samples=False)["median_ms"] / o["median_ms"],
            "program_file_bytes": prog.stat().st_size if prog.exists() else 0,
            "cold_phases_ms": cold_parts[-1], "warm_phases_ms": warm_parts[-1],
            "load_average_1min": [load_before, _load()],   # before and after this model's runs
            "cold_cache_report": cold_reports[-1], "warm_cache_report": warm_reports[-1]}


def _settle(env: dict) -> None:
    """Wait for the background kernel compile a CPU process left behind (a process in the same
    cache waits for the compile lock, then loads what it wrote)."""
    subprocess.run([sys.executable, "-c", "from mace.runtime.cpu import kernels; assert kernels.wait()"], env=env,
                   check=True, capture_output=True)


def bench_cpu(name: str, cold_runs: int, warm_runs: int) -> dict:
    """Process start to first result on the CPU runtime: empty vs filled compiled-kernel cache."""
    _, mace_path = converted(name)
    tmp = Path(tempfile.mkdtemp(prefix="mace-startup-cpu-"))
    cmd = [sys.executable, "-m", "mace", "-q", "run", str(mace_path), "--runtime", "cpu", "--runs", "3", "--json"]
    rows: dict = {}
    for kind, runs in (("cold", cold_runs), ("warm", warm_runs)):
        first, proc, reports, steady = [], [], [], []
        for i in range(runs):
            env = {**ENV, "MACE_CPU_KERNEL_CACHE": str(tmp / (f"cold{i}" if kind == "cold" else "warm"))}
            if kind == "warm" and i == 0:
                _settle(env)   # fill it
            wall, res = _proc(cmd, env)
            first.append(_first_result_s(res))
            proc.append(wall)
            reports.append(res["summary"]["cpu_kernels"])
            steady.append((res.get("latency") or {}).get("median_ms"))
            if kind == "cold":
                _settle(env)
        rows[kind] = latency_stats(first, with_samples=False)
        rows[f"{kind}_process"] = latency_stats(proc, with_samples=False)
        rows[f"{kind}_median_run_ms"] = steady
        rows[f"{kind}_kernel_report"] = reports[-1]
    return {"model": name, "runtime": "cpu", **rows}


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _parts(res: dict) -> dict:
    """Where one process's time went, in ms (see the module doc)."""
    summ = res["summary"]
    ph = summ.get("start_phases", {})
    to_first = _first_result_s(res)
    steady = (res.get("latency") or {}).get("median_ms") or 0.0
    first = res["first_run_ms"]
    init = summ["init_seconds"]
    known = ph.get("device_s", 0) + ph.get("probe_s", 0) + ph.get("build_s", 0)
    return {"import": (to_first - res["process_to_first_result_s"]) * 1e3,
            "device": ph.get("device_s", 0) * 1e3, "probe": ph.get("probe_s", 0) * 1e3,
            "build": ph.get("build_s", 0) * 1e3, "other_init": (init - known) * 1e3,
            "first_launch_codegen": max(0.0, first - steady), "first_run_compute": min(first, steady),
            "to_first_result": to_first * 1e3, "harvest_after_first_result": (res["_wall_s"] - to_first) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mobilenet_v2,resnet18")
    ap.add_argument("--cold", type=int, default=3)
    ap.add_argument("--warm", type=int, default=5)
    ap.add_argument("--device", default=None)
    ap.add_argument("--cpu", action="store_true", help="also the CPU runtime, empty vs filled kernel cache")
    ap.add_argument("--no-gpu", action="store_true", help="only the CPU rows")
    args = ap.parse_args()
    rows = []
    for name in args.models.split(",") if args.cpu else []:
        print(f"startup {name} (CPU runtime) ...", file=sys.stderr)
        r = bench_cpu(name, args.cold, args.warm)
        rows.append(r)
        print(f"  {name} CPU: to first result, empty kernel cache {r['cold']['median_ms']:.0f} ms, filled "
              f"{r['warm']['median_ms']:.0f} ms; whole process {r['cold_process']['median_ms']:.0f} / "
              f"{r['warm_process']['median_ms']:.0f} ms", file=sys.stderr)
    for name in [] if args.no_gpu else args.models.split(","):
        print(f"startup {name} ...", file=sys.stderr)
        r = bench(name, args.cold, args.warm, args.device)
        rows.append(r)
        print(f"  {name}: to first result cold {r['cold']['median_ms']:.0f} ms, warm {r['warm']['median_ms']:.0f} ms "
              f"({r['cold_over_warm']:.1f}x); whole process cold {r['cold_process']['median_ms']:.0f} ms, warm "
              f"{r['warm_process']['median_ms']:.0f} ms, onnxruntime {r['onnxruntime_process']['median_ms']:.0f} ms; "
              f"{(r['cold_cache_report'] or {}).get('compiled')} programs compiled; load average "
              f"{r['load_average_1min'][0]} -> {r['load_average_1min'][1]}", file=sys.stderr)
        print("  cold phases ms: " + ", ".join(f"{k} {v:.0f}" for k, v in r["cold_phases_ms"].items()), file=sys.stderr)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    json.dump({"benchmark": "startup", "machine": machine(), "load_average_1min": load, "results": rows},
              sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
