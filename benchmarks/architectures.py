"""The mobile transformer architectures (ConvNeXt-T, MobileViT-XS, EfficientFormer-L1; random
weights, `scripts/export_architectures.py`): validation on both runtimes against onnxruntime and
steady latency beside it, batch 1, in one run.

    python benchmarks/architectures.py [--models convnext_t,mobilevit_xs] [--runs 20] [--cpu-runs 3] > a.json

Per model: conversion time, the ops after conversion, cosine / argmax agreement of mace gpu and
mace cpu against onnxruntime on one random input in [0, 1), the GPU engine's init and first run
(in this process, with no program cache: PoCL compiles every program), and the medians of mace
gpu (the default OpenCL device: PoCL on the CPU unless told otherwise), mace cpu and onnxruntime
(CPU, --threads intra-op threads). The load average is recorded before and after each model:
the machine may be shared.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import CACHE, machine, time_fn  # noqa: E402

from mace.latency import latency_stats  # noqa: E402

ARCHITECTURES = ["convnext_t", "mobilevit_xs", "efficientformer_l1"]


def bench_model(name: str, runs: int, cpu_runs: int, device, threads: int) -> dict:
    import onnxruntime as ort

    import mace
    from mace.convert import convert
    from mace.ops.flops import model_flops
    from mace.testing.models import materialize
    from mace.tools.validate import metrics

    row: dict = {"model": name, "load_before": os.getloadavg()}
    onnx_path = materialize(name)
    mace_path = CACHE / f"{name}.fp32_fp32.mace"
    mace_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    graph = convert(onnx_path, mace_path)
    row["convert_s"] = time.perf_counter() - t0
    row["ops"] = graph.op_counts()
    row["gflop"] = model_flops(graph) / 1e9
    x = np.random.default_rng(0).uniform(0, 1, graph.shape("input")).astype(np.float32)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"input": x})[0]
    t0 = time.perf_counter()
    gpu = mace.Engine(mace_path, runtime="gpu", device=device, use_program_cache=False)
    row["mace_gpu_init_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = gpu.run({"input": x})["output"]
    row["mace_gpu_first_run_s"] = time.perf_counter() - t0
    row["device"] = gpu.summary().get("device")
    row["mace_gpu_validation"] = metrics(got, ref)
    cpu = mace.Engine(mace_path, runtime="cpu")
    row["mace_cpu_validation"] = metrics(cpu.run({"input": x})["output"], ref)
    row["mace_gpu"] = latency_stats(time_fn(lambda: gpu.run({"input": x}), runs, warmup=2), with_samples=False)
    row["onnxruntime_cpu"] = latency_stats(time_fn(lambda: sess.run(None, {"input": x}), runs, warmup=2), with_samples=False)
    if cpu_runs:
        row["mace_cpu"] = latency_stats(time_fn(lambda: cpu.run({"input": x}), cpu_runs, warmup=0, max_seconds=0), with_samples=False)
    for k in ("mace_gpu", "mace_cpu", "onnxruntime_cpu"):
        if k in row:
            row[k]["gflops"] = row["gflop"] / (row[k]["median_ms"] / 1e3)
    gpu.close()
    cpu.close()
    row["load_after"] = os.getloadavg()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(ARCHITECTURES))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--cpu-runs", type=int, default=3, help="timed runs of mace cpu (0: not timed)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    args = ap.parse_args()
    rows = []
    for name in args.models.split(","):
        print(f"benchmarking {name} ...", file=sys.stderr)
        r = bench_model(name, args.runs, args.cpu_runs, args.device, args.threads)
        rows.append(r)
        print(f"  {name}: cosine gpu {r['mace_gpu_validation']['cosine']:.7f} cpu "
              f"{r['mace_cpu_validation']['cosine']:.7f}; mace gpu {r['mace_gpu']['median_ms']:.1f} ms, "
              f"mace cpu {r.get('mace_cpu', {}).get('median_ms', float('nan')):.1f} ms, onnxruntime {r['onnxruntime_cpu']['median_ms']:.1f} ms "
              f"(load {r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f})", file=sys.stderr)
    json.dump({"benchmark": "architectures", "machine": machine(), "runs": args.runs, "results": rows},
              sys.stdout, indent=2, default=float)
    print()


if __name__ == "__main__":
    main()
