"""Shared helpers for the benchmarks: models, timing statistics, machine facts."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

CACHE = Path(os.environ.get("MACE_BENCH_DIR", Path.home() / ".cache" / "mace" / "bench"))
MODELS = ["mobilenet_v1", "mobilenet_v2", "resnet18", "squeezenet1_1", "efficientnet_lite0"]


def converted(name: str, data_type: str = "fp32_fp32") -> tuple[Path, Path]:
    """(onnx path, .mace path) of a test model, converted once and cached."""
    from mace.convert import convert
    from mace.testing.models import materialize
    onnx_path = materialize(name)
    out = CACHE / f"{name}.{data_type}.mace"
    if not out.exists() or out.stat().st_mtime < onnx_path.stat().st_mtime:
        out.parent.mkdir(parents=True, exist_ok=True)
        convert(onnx_path, out, data_type=data_type)
    return onnx_path, out


def time_fn(fn, runs: int, warmup: int = 3, max_seconds: float = 20.0) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    t_end = time.perf_counter() + max_seconds
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if time.perf_counter() > t_end and len(out) >= 5:
            break
    return out


def machine() -> dict:
    d = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        d["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import pyopencl as cl
        d["opencl"] = [f"{p.name.strip()} {p.version.strip()}: " + ", ".join(dv.name.strip() for dv in p.get_devices())
                       for p in cl.get_platforms()]
    except Exception as exc:  # noqa: BLE001 - a machine fact, not a failure
        d["opencl"] = str(exc)
    return d
