"""`mace demo`: the main job on the embedded default, end to end.

Converts the bundled example (a small CNN trained on scikit-learn's digits, shipped with its
held-out test set) per its mace.yml, runs it on the GPU runtime (PoCL by default) and the CPU
runtime, and reports test-set accuracy, outputs and timings for both.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mace.latency import latency_stats

EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "digits"


def run_demo(device=None, program=None, echo=None, build_dir: Path | None = None) -> dict:
    import platformdirs

    import mace
    from mace.config import load_config
    from mace.convert.deployment import convert_config

    say = echo or (lambda *_: None)
    loaded = load_config(EXAMPLE_DIR / "mace.yml")
    build_dir = build_dir or Path(platformdirs.user_cache_dir("mace")) / "demo-build"
    t0 = time.perf_counter()
    (converted,) = convert_config(loaded, build_dir)
    convert_s = time.perf_counter() - t0
    say(f"converted {converted.onnx_path.name} -> {converted.output} ({converted.nodes} ops) in {convert_s:.2f} s")
    data = np.load(EXAMPLE_DIR / "digits_test.npz")
    x, y = data["x"].astype(np.float32), data["y"]
    result = {"model": str(converted.output), "convert_seconds": convert_s, "test_samples": int(len(y)),
              "runtimes": {}}
    for runtime in ("gpu", "cpu"):
        t0 = time.perf_counter()
        engine = mace.Engine(converted.output, runtime=runtime, device=device, program=program)
        init_s = time.perf_counter() - t0
        name = engine.input_names[0]
        out_name = engine.output_names[0]
        preds, lat = [], []
        first_out = None
        for i in range(len(y)):
            t1 = time.perf_counter()
            out = engine.run({name: x[i:i + 1]})[out_name]
            lat.append(time.perf_counter() - t1)
            if first_out is None:
                first_out = out
            preds.append(int(np.argmax(out)))
        acc = float(np.mean(np.array(preds) == y))
        steady = latency_stats(lat[1:], with_samples=False)
        entry = {"init_ms": init_s * 1e3, "first_run_ms": lat[0] * 1e3, "median_ms": steady.get("median_ms"),
                 "p90_ms": steady.get("p90_ms"), "accuracy": acc,
                 "first_sample": {"label": int(y[0]), "predicted": preds[0],
                                  "logits": [round(float(v), 4) for v in first_out.ravel()]}}
        s = engine.summary()
        if "device" in s:
            entry["device"] = s["device"]
            entry["program_cache"] = s.get("program_cache")
        result["runtimes"][runtime] = entry
        where = f" on {s['device']}" if "device" in s else ""
        say(f"[{runtime}{where}] test accuracy {acc * 100:.2f}% over {len(y)} digits; init {init_s * 1e3:.1f} ms, "
            f"first run {lat[0] * 1e3:.2f} ms, median {entry['median_ms']:.3f} ms, p90 {entry['p90_ms']:.3f} ms")
        say(f"[{runtime}] sample 0: label {y[0]}, predicted {preds[0]}, logits {entry['first_sample']['logits']}")
    return result
