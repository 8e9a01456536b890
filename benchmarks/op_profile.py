"""Per-op GPU profile (OpenCL profiling events): the slowest ops of a model with GFLOP/s.

    python benchmarks/op_profile.py --models mobilenet_v2,resnet18 [--device D] [--top 5]
        [--variants cpu|gpu|default|tuned]

`--variants tuned` runs the tuner (mode normal, a throw-away program file) before profiling;
`--variants cpu` forces the CPU-style kernels (register tiles, work-groups of one) and `gpu`
the GPU-style ones (local-memory tiles) where an op offers them, to compare the two families
on one device; `default` keeps the device's own choice.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import converted, machine  # noqa: E402


def force(engine, family: str) -> None:
    ex = engine.executor
    for name in ex.op_names():
        op = ex.ops[name]
        names = op.variants()
        pick = [v for v in names if v.startswith("gpu_")] if family == "gpu" else \
            [v for v in names if not v.startswith("gpu_")]
        if pick and op.variant not in pick:
            op.use_variant(pick[0])
            ex.rebind(name)


def profile(name: str, device, top: int, family: str, runs: int = 10) -> dict:
    import mace
    _, path = converted(name)
    if family == "tuned":
        import tempfile

        from mace.tuning import tune
        prog = Path(tempfile.mkdtemp(prefix="mace-profile-")) / "mace-cl-compiled-program.bin"
        e = mace.Engine(path, runtime="gpu", device=device, program=prog)
        tune(e, mode="normal")
    else:
        e = mace.Engine(path, runtime="gpu", device=device, use_program_cache=False)
    if family in ("cpu", "gpu"):
        force(e, family)
    x = {"input": np.random.default_rng(0).uniform(0, 1, (1, 3, 224, 224)).astype(np.float32)}
    e.run(x)
    acc: dict[str, list] = {}
    for _ in range(runs):
        _, rows = e.profile(x)
        for n, t, sec, flops in rows:
            a = acc.setdefault(n, [t, [], flops])
            a[1].append(sec)
    table = sorted(((n, t, float(np.median(s)), f) for n, (t, s, f) in acc.items()), key=lambda r: -r[2])
    total = sum(r[2] for r in table)
    return {"model": name, "device": e.summary()["device"], "variants": family, "kernel_total_ms": total * 1e3,
            "top": [{"launch": n, "ms": s * 1e3, "share": s / total, "gflops": (f / s / 1e9) if s and f else None}
                    for n, t, s, f in table[:top]]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mobilenet_v2,resnet18")
    ap.add_argument("--device", default=None)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--variants", default="default", choices=["default", "cpu", "gpu", "tuned"])
    args = ap.parse_args()
    out = [profile(m, args.device, args.top, args.variants) for m in args.models.split(",")]
    for r in out:
        print(f"{r['model']} ({r['variants']}): kernels {r['kernel_total_ms']:.2f} ms", file=sys.stderr)
        for t in r["top"]:
            print(f"   {t['ms']:.3f} ms {t['share'] * 100:4.1f}% {t['gflops'] or 0:7.1f} GF/s  {t['launch']}", file=sys.stderr)
    json.dump({"benchmark": "op_profile", "machine": machine(), "results": out}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
