"""Steady latency side by side: mace gpu (OpenCL), mace cpu, onnxruntime CPU (and tinygrad on
OpenCL when it is installed), batch 1, medians and spread, achieved GFLOP/s, in one run.

    python benchmarks/peers.py [--models mobilenet_v2,resnet18] [--runs 50] [--device D] > peers.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from common import MODELS, converted, machine, stats, time_fn  # noqa: E402


def bench_model(name: str, runs: int, device, threads: int, data_type: str) -> dict:
    import onnxruntime as ort

    import mace
    from mace.tools.flops import model_flops
    onnx_path, mace_path = converted(name, data_type)
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 224, 224)).astype(np.float32)
    row: dict = {"model": name}
    gpu = mace.Engine(mace_path, runtime="gpu", device=device)
    row["gflop"] = model_flops(gpu.graph) / 1e9
    row["device"] = gpu.summary().get("device")
    row["mace_gpu"] = stats(time_fn(lambda: gpu.run({"input": x}), runs))
    ref = None
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"input": x})[0]
    row["onnxruntime_cpu"] = stats(time_fn(lambda: sess.run(None, {"input": x}), runs))
    cpu = mace.Engine(mace_path, runtime="cpu")
    row["mace_cpu"] = stats(time_fn(lambda: cpu.run({"input": x}), max(runs // 2, 10)))
    from mace.tools.validate import metrics
    row["mace_gpu_cosine"] = metrics(gpu.run({"input": x})["output"], ref)["cosine"]
    try:
        row["tinygrad_opencl"] = _tinygrad(onnx_path, x, runs)
    except ImportError:
        row["tinygrad_opencl"] = None
    for k in ("mace_gpu", "mace_cpu", "onnxruntime_cpu", "tinygrad_opencl"):
        if row.get(k):
            row[k]["gflops"] = row["gflop"] / (row[k]["median_ms"] / 1e3)
    return row


def _tinygrad(onnx_path, x, runs):
    import os
    os.environ.setdefault("DEV", "CL")
    from tinygrad import Tensor  # noqa: F401  (ImportError when not installed)
    from tinygrad.frontend.onnx import OnnxRunner
    runner = OnnxRunner(str(onnx_path))
    t = Tensor(x)
    return stats(time_fn(lambda: runner({"input": t})["output"].numpy(), runs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    ap.add_argument("--data-type", default="fp32_fp32")
    args = ap.parse_args()
    rows = []
    for name in args.models.split(","):
        print(f"benchmarking {name} ...", file=sys.stderr)
        rows.append(bench_model(name, args.runs, args.device, args.threads, args.data_type))
        r = rows[-1]
        print(f"  {name}: mace gpu {r['mace_gpu']['median_ms']:.2f} ms, mace cpu {r['mace_cpu']['median_ms']:.2f} ms, "
              f"onnxruntime {r['onnxruntime_cpu']['median_ms']:.2f} ms", file=sys.stderr)
    json.dump({"benchmark": "peers", "machine": machine(), "runs": args.runs, "results": rows}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
