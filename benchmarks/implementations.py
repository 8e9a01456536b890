"""The five test models on every OpenCL implementation this machine has, in one run: cosine
against onnxruntime, median latency, cold and warm start, and what the device probe found.

Implementations (each skipped with the reason when absent):
- pypi-pocl:   PyPI's PoCL (the default device);
- debian-pocl: Debian's PoCL 3.1, its ICD file in --debian-icd (default /opt/mace-cmdbuf-icd);
- intel-cpu:   Intel's CPU OpenCL runtime from PyPI (`pip install '.[intel-cpu]'`), an ICD file
               naming <venv>/lib/libintelocl.so in --intel-icd (default <venv>/etc/mace-intel-icd);
- nvidia:      NVIDIA's driver, where OCL_ICD_VENDORS holds its ICD file (benchmarks/run_nvidia.sh).

cold: `mace run MODEL --runtime gpu --program P --json`, P absent, hidden caches off
      (PYOPENCL_NO_CACHE=1 POCL_KERNEL_CACHE=0), a fresh process: every program compiles;
warm: the same command with P written by the cold run;
latency: median of --runs runs after 3 warm-up runs in one process (program P);
cosine: mace's output vs onnxruntime's on one random input in the model's input range.

    python benchmarks/implementations.py [--models mobilenet_v2,...] [--runs 30] > implementations.json
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

from common import MODELS, converted, machine  # noqa: E402

HIDDEN_OFF = {"PYOPENCL_NO_CACHE": "1", "POCL_KERNEL_CACHE": "0", "CUDA_CACHE_DISABLE": "1"}

MEASURE = r"""
import json, sys, time
import numpy as np, onnxruntime as ort
import mace
from mace.latency import latency_stats
from mace.runtime.opencl.caps import DeviceCaps
onnx_path, mace_path, program, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
e = mace.Engine(mace_path, runtime="gpu", program=program)
name = e.input_names[0]
x = np.random.default_rng(1).uniform(0, 1, e.input_shape(name)).astype(np.float32)
got = e.run({name: x})[e.output_names[0]].ravel().astype(np.float64)
want = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {name: x})[0].ravel()
cos = float(np.dot(got, want) / (np.linalg.norm(got) * np.linalg.norm(want)))
for _ in range(3):
    e.run({name: x})
times = []
for _ in range(runs):
    t0 = time.perf_counter(); e.run({name: x}); times.append(time.perf_counter() - t0)
caps, lat = e.executor.caps, latency_stats(times, with_samples=False)
print(json.dumps({"cosine": cos, "median_ms": lat["median_ms"], "p90_ms": lat["p90_ms"], "device": caps.device,
                  "driver": e.device.driver_version, "fallback_nodes": e.executor.fallback_nodes,
                  "caps": caps.to_dict()}))
"""


def implementations(debian_icd: Path, intel_icd: Path) -> dict[str, dict | str]:
    """name -> extra environment, or why it is not available."""
    venv_lib = Path(sys.prefix) / "lib"
    out: dict[str, dict | str] = {"pypi-pocl": {}}
    out["debian-pocl"] = ({"OCL_ICD_VENDORS": str(debian_icd), "MACE_DEVICE": "0"} if any(debian_icd.glob("*.icd"))
                          else f"no ICD file in {debian_icd} (apt install pocl-opencl-icd, move its pocl.icd there)")
    out["intel-cpu"] = ({"OCL_ICD_VENDORS": str(intel_icd), "MACE_DEVICE": "0",
                         "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(venv_lib), os.environ.get("LD_LIBRARY_PATH")]))}
                        if any(intel_icd.glob("*.icd"))
                        else f"no ICD file in {intel_icd} (pip install '.[intel-cpu]', write intel.icd there)")
    vendors = Path(os.environ.get("OCL_ICD_VENDORS", "/etc/OpenCL/vendors"))
    out["nvidia"] = ({"MACE_DEVICE": "NVIDIA"} if any(vendors.glob("*nvidia*.icd"))
                     else f"no NVIDIA ICD file in {vendors} (benchmarks/run_nvidia.sh registers one)")
    return out


def _run(cmd: list[str], env: dict) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}: {proc.stderr[-1500:]}")
    out = proc.stdout.strip()
    try:
        return wall, json.loads(out)                       # `mace run --json`: one document
    except ValueError:
        return wall, json.loads(out.splitlines()[-1])      # MEASURE: its last line


def bench(model: str, extra: dict, runs: int, warm_runs: int) -> dict:
    onnx_path, mace_path = converted(model)
    env = {**os.environ, **HIDDEN_OFF, **extra}
    prog = Path(tempfile.mkdtemp(prefix="mace-impl-")) / "mace-cl-compiled-program.bin"
    cmd = [sys.executable, "-m", "mace", "-q", "run", str(mace_path), "--runtime", "gpu", "--program", str(prog), "--json"]
    cold, res = _run(cmd, env)
    warm = sorted(_run(cmd, env)[0] for _ in range(warm_runs))[warm_runs // 2]
    _, m = _run([sys.executable, "-c", MEASURE, str(onnx_path), str(mace_path), str(prog), str(runs)], env)
    return {"model": model, "cosine": m["cosine"], "median_ms": m["median_ms"], "p90_ms": m["p90_ms"],
            "cold_s": cold, "warm_s": warm, "cold_init_s": res["summary"]["init_seconds"],
            "device": m["device"], "driver": m["driver"], "fallback_nodes": m["fallback_nodes"], "caps": m["caps"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--only", default=None, help="comma-separated implementation names")
    ap.add_argument("--debian-icd", type=Path, default=Path(os.environ.get("MACE_TEST_CMDBUF_ICD", "/opt/mace-cmdbuf-icd")))
    ap.add_argument("--intel-icd", type=Path,
                    default=Path(os.environ.get("MACE_TEST_INTEL_ICD", Path(sys.prefix) / "etc" / "mace-intel-icd")))
    args = ap.parse_args()
    rows, skipped = [], {}
    for impl, extra in implementations(args.debian_icd, args.intel_icd).items():
        if args.only and impl not in args.only.split(","):
            continue
        if isinstance(extra, str):
            skipped[impl] = extra
            print(f"{impl}: skipped: {extra}", file=sys.stderr)
            continue
        for model in args.models.split(","):
            r = {"implementation": impl, **bench(model, extra, args.runs, args.warm)}
            rows.append(r)
            print(f"{impl:12s} {model:20s} cos {r['cosine']:.6f}  {r['median_ms']:8.2f} ms  cold {r['cold_s']:6.2f} s  "
                  f"warm {r['warm_s']:5.2f} s  vector width {r['caps']['max_vector_width']}", file=sys.stderr)
    json.dump({"benchmark": "implementations", "machine": machine(), "results": rows, "skipped": skipped},
              sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
