"""Steady latency side by side: mace gpu (OpenCL), mace cpu, onnxruntime CPU (and tinygrad on
OpenCL when it is installed), batch 1, medians and spread, achieved GFLOP/s, in one run.

    python benchmarks/peers.py [--models mobilenet_v2,resnet18] [--runs 50] [--device D] > peers.json

tinygrad (`pip install tinygrad`, TinyJit, DEV=CL) runs in a child process whose OCL_ICD_VENDORS
is --tinygrad-icd (default /opt/mace-cmdbuf-icd where CI puts Debian's PoCL 3.1): it crashes on
PyPI's PoCL 3.0, and that directory keeps it off mace's default device.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import MODELS, converted, machine, time_fn  # noqa: E402

from mace.latency import latency_stats  # noqa: E402


def bench_model(name: str, runs: int, device, threads: int, data_type: str, tinygrad_icd: str | None,
                runtimes=("gpu", "tinygrad")) -> dict:
    import onnxruntime as ort

    import mace
    from mace.ops.flops import model_flops
    onnx_path, mace_path = converted(name, data_type)
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 224, 224)).astype(np.float32)
    row: dict = {"model": name, "threads": threads}
    gpu = mace.Engine(mace_path, runtime="gpu", device=device) if "gpu" in runtimes else None
    if gpu is not None:
        row["device"] = gpu.summary().get("device")
        row["mace_gpu"] = latency_stats(time_fn(lambda: gpu.run({"input": x}), runs), with_samples=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"input": x})[0]
    row["onnxruntime_cpu"] = latency_stats(time_fn(lambda: sess.run(None, {"input": x}), runs), with_samples=False)
    cpu = mace.Engine(mace_path, runtime="cpu", threads=threads,
                      warmup=True)  # steady speed: the compiled kernels, never the NumPy ones of a first run
    row["gflop"] = model_flops(cpu.graph) / 1e9
    row["mace_cpu"] = latency_stats(time_fn(lambda: cpu.run({"input": x}), max(runs // 2, 10)), with_samples=False)
    from mace.tools.validate import metrics
    row["mace_cpu_cosine"] = metrics(cpu.run({"input": x})["output"], ref)["cosine"]
    if gpu is not None:
        row["mace_gpu_cosine"] = metrics(gpu.run({"input": x})["output"], ref)["cosine"]
    row["tinygrad_opencl"] = _tinygrad(onnx_path, runs, tinygrad_icd) if "tinygrad" in runtimes else None
    for k in ("mace_gpu", "mace_cpu", "onnxruntime_cpu", "tinygrad_opencl"):
        if row.get(k):
            row[k]["gflops"] = row["gflop"] / (row[k]["median_ms"] / 1e3)
    return row


def _tinygrad(onnx_path, runs: int, icd: str | None) -> dict | None:
    """tinygrad's steady latency from a child process (None, with the reason on stderr, if it fails)."""
    import os
    import subprocess
    env = dict(os.environ, DEV="CL")
    if icd and Path(icd).is_dir():
        env["OCL_ICD_VENDORS"] = icd
    proc = subprocess.run([sys.executable, __file__, "--tinygrad-child", str(onnx_path), str(runs)], env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        print(f"  tinygrad: no result ({(proc.stderr.strip().splitlines() or [f'exit {proc.returncode}'])[-1]})",
              file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _tinygrad_child(onnx_path: str, runs: int) -> None:
    from tinygrad import Device, Tensor, TinyJit
    from tinygrad.nn.onnx import OnnxRunner
    runner = OnnxRunner(onnx_path)
    step = TinyJit(lambda t: runner({"input": t})["output"].realize())
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 224, 224)).astype(np.float32)
    result = latency_stats(time_fn(lambda: step(Tensor(x)).numpy(), runs), with_samples=False)
    result["device"] = Device[Device.DEFAULT].__class__.__name__
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads and mace CPU `threads`")
    ap.add_argument("--peers", default="gpu,tinygrad", help="besides mace cpu and onnxruntime: gpu (mace on OpenCL), "
                                                             "tinygrad; '' for neither")
    ap.add_argument("--data-type", default="fp32_fp32")
    ap.add_argument("--tinygrad-icd", default="/opt/mace-cmdbuf-icd",
                    help="OCL_ICD_VENDORS directory for tinygrad's child process")
    ap.add_argument("--tinygrad-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tinygrad_child:
        _tinygrad_child(args.tinygrad_child[0], int(args.tinygrad_child[1]))
        return
    rows = []
    for name in args.models.split(","):
        print(f"benchmarking {name} ...", file=sys.stderr)
        rows.append(bench_model(name, args.runs, args.device, args.threads, args.data_type, args.tinygrad_icd,
                                tuple(p for p in args.peers.split(",") if p)))
        r = rows[-1]
        gpu_ms = r["mace_gpu"]["median_ms"] if r.get("mace_gpu") else float("nan")
        print(f"  {name}: mace gpu {gpu_ms:.2f} ms, mace cpu {r['mace_cpu']['median_ms']:.2f} ms "
              f"({r['mace_cpu']['median_ms'] / r['onnxruntime_cpu']['median_ms']:.2f}x onnxruntime), "
              f"onnxruntime {r['onnxruntime_cpu']['median_ms']:.2f} ms, tinygrad "
              f"{r['tinygrad_opencl']['median_ms'] if r['tinygrad_opencl'] else float('nan'):.2f} ms", file=sys.stderr)
    json.dump({"benchmark": "peers", "machine": machine(), "runs": args.runs, "results": rows}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
