"""Untuned against tuned steady latency per model, and the time tuning took.

Each model: a fresh program file, an engine with warm-up, steady latency (median of N runs),
`mace.tuning.tune(mode)`, then a NEW engine from the tuned file (the records must survive a
restart) and its steady latency; plus the program file size before and after tuning.

    python benchmarks/tuning.py [--models mobilenet_v2,resnet18,efficientnet_lite0] [--mode normal] [--device D]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# honest: neither PoCL's nor PyOpenCL's hidden cache may answer for candidates already compiled
os.environ.setdefault("POCL_KERNEL_CACHE", "0")
os.environ.setdefault("PYOPENCL_NO_CACHE", "1")

import numpy as np  # noqa: E402
from common import converted, machine, time_fn  # noqa: E402

from mace.latency import latency_stats  # noqa: E402


def bench(name: str, mode: str, runs: int, device, budget) -> dict:
    import mace
    from mace.tuning import tune
    _, mace_path = converted(name)
    prog = Path(tempfile.mkdtemp(prefix="mace-tune-")) / "mace-cl-compiled-program.bin"
    x = {"input": np.random.default_rng(0).uniform(0, 1, (1, 3, 224, 224)).astype(np.float32)}
    e = mace.Engine(mace_path, runtime="gpu", device=device, program=prog, warmup=True)
    before = latency_stats(time_fn(lambda: e.run(x), runs), with_samples=False)
    size_before = prog.stat().st_size
    t0 = time.perf_counter()
    res = tune(e, mode=mode, budget=budget)
    tune_s = time.perf_counter() - t0
    e2 = mace.Engine(mace_path, runtime="gpu", device=device, program=prog)
    after = latency_stats(time_fn(lambda: e2.run(x), runs), with_samples=False)
    # re-measure the untuned engine in the same breath, so noise hits both alike
    e0 = mace.Engine(mace_path, runtime="gpu", device=device, use_program_cache=False)
    before2 = latency_stats(time_fn(lambda: e0.run(x), runs), with_samples=False)
    d = res.to_dict()
    return {"model": name, "mode": mode, "device": e.summary().get("device"), "tune_seconds": tune_s,
            "untuned": before, "untuned_again": before2, "tuned_after_restart": after,
            "gain_vs_best_untuned": 1 - after["median_ms"] / min(before["median_ms"], before2["median_ms"]),
            "tuning_hits_after_restart": e2.program_cache_report.tuning_hits,
            "ops_tuned": len(d["ops"]), "candidates": d["candidates"], "failed": d["failed"],
            "launches_timed": d["launches_timed"],
            "variants_chosen": {v: sum(1 for o in d["ops"] if o["variant"] == v) for v in {o["variant"] for o in d["ops"]}},
            "program_bytes_before": size_before, "program_bytes_after": prog.stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mobilenet_v2,resnet18,efficientnet_lite0")
    ap.add_argument("--mode", default="normal")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--budget", type=float, default=None)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    rows = []
    for name in args.models.split(","):
        print(f"tuning {name} ...", file=sys.stderr)
        r = bench(name, args.mode, args.runs, args.device, args.budget)
        rows.append(r)
        print(f"  {name}: {r['untuned']['median_ms']:.2f} / {r['untuned_again']['median_ms']:.2f} ms untuned -> "
              f"{r['tuned_after_restart']['median_ms']:.2f} ms tuned in {r['tune_seconds']:.1f} s; "
              f"file {r['program_bytes_before']} -> {r['program_bytes_after']} bytes", file=sys.stderr)
    json.dump({"benchmark": "tuning", "machine": machine(), "results": rows}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
