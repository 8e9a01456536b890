"""Steady latency with the run recorded once (cl_khr_command_buffer) against per-launch enqueues.

Same engine, same kernels; the two modes alternate in blocks so a noisy neighbour hits both.
Devices without the extension report why and no numbers.

    python benchmarks/command_buffer.py --device NVIDIA [--models mobilenet_v2,resnet18] [--runs 200]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from common import converted, machine, time_fn  # noqa: E402

from mace.latency import latency_stats  # noqa: E402


def bench(name: str, device, runs: int) -> dict:
    import mace
    _, path = converted(name)
    engine = mace.Engine(path, runtime="gpu", device=device)
    ex = engine.executor
    feed = {n: np.random.default_rng(0).uniform(-1, 1, engine.input_shape(n)).astype(np.float32)
            for n in engine.input_names}
    out = {"model": name, "device": engine.summary().get("device"), "launches": len(ex.launches)}
    ex.set_command_buffer(True)
    engine.run(feed)
    if ex.command_buffer is None:
        return dict(out, recorded=False, why=ex.command_buffer_note)
    recorded_out = engine.run(feed)
    blocks = {True: [], False: []}
    for _ in range(2):
        for mode in (True, False):
            ex.set_command_buffer(mode)
            blocks[mode].append(time_fn(lambda: engine.run(feed), runs))
    ex.set_command_buffer(False)
    plain_out = engine.run(feed)
    same = all(np.array_equal(recorded_out[k], plain_out[k]) for k in recorded_out)
    best = {m: min(b, key=np.median) for m, b in blocks.items()}
    rec = latency_stats(best[True], with_samples=False)
    plain = latency_stats(best[False], with_samples=False)
    return dict(out, recorded=True, outputs_equal=same, command_buffer=rec, per_launch=plain,
                speedup=plain["median_ms"] / rec["median_ms"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--models", default="mobilenet_v2,resnet18,squeezenet1_1")
    ap.add_argument("--runs", type=int, default=200)
    a = ap.parse_args(argv)
    results = [bench(m, a.device, a.runs) for m in a.models.split(",")]
    print(json.dumps({"machine": machine(), "results": results}, indent=1))
    for r in results:
        if r["recorded"]:
            print(f"{r['model']}: {r['launches']} launches, recorded {r['command_buffer']['median_ms']:.3f} ms vs "
                  f"per-launch {r['per_launch']['median_ms']:.3f} ms ({r['speedup']:.2f}x), "
                  f"outputs equal: {r['outputs_equal']}", file=sys.stderr)
        else:
            print(f"{r['model']}: not recorded ({r['why']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
