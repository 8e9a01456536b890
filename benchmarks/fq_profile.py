"""Where a `quantize: 1` model's GPU kernel time goes: float vs quantized (default variants),
kernel time summed by op type from profiling events, and the launch count.

    python benchmarks/fq_profile.py --models mobilenet_v2,resnet18 [--runs 5] [--work DIR]

Set MACE_FQ_FUSE=0 to run the quantized model with every FakeQuantize as its own launch.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import machine  # noqa: E402

import mace  # noqa: E402
from mace.convert import convert  # noqa: E402


def models(name: str, work: Path) -> tuple[Path, Path]:
    """The float and the quantized (4 random calibration inputs in [0, 1)) model files."""
    from mace.quantize.options import QuantizeOptions
    from mace.testing.models import materialize
    fp, qp = work / f"{name}_f.mace", work / f"{name}_q.mace"
    if not qp.exists():
        src, cal = materialize(name), work / f"{name}_cal"
        cal.mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(4):
            np.save(cal / f"{i}.npy", rng.uniform(0, 1, (1, 3, 224, 224)).astype(np.float32))
        convert(src, fp, input_ranges={"input": (0.0, 1.0)})
        convert(src, qp, input_ranges={"input": (0.0, 1.0)}, quantize=QuantizeOptions(calibration=cal))
    return fp, qp


def profile(path: Path, runs: int) -> dict:
    """Min over `runs` of each launch's kernel time, summed by op type."""
    x = {"input": np.random.default_rng(1).uniform(0, 1, (1, 3, 224, 224)).astype(np.float32)}
    with mace.Engine(path, runtime="gpu", use_program_cache=False) as e:
        e.run(x)
        best: dict[str, tuple[str, float]] = {}
        for _ in range(runs):
            _, rows = e.profile(x)
            for n, t, sec, _f in rows:
                best[n] = (t, min(sec, best.get(n, (t, sec))[1]))
        device = e.summary()["device"]
    by_type: dict[str, float] = {}
    for t, s in best.values():
        by_type[t] = by_type.get(t, 0.0) + s * 1e3
    return {"device": device, "launches": len(best), "kernel_ms": round(sum(by_type.values()), 3),
            "by_op_type_ms": {k: round(v, 3) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mobilenet_v2,resnet18")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", default=None, help="keep the converted models here (reused when present)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="mace-fq-"))
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for name in args.models.split(","):
        fp, qp = models(name, work)
        r = {"model": name, "float": profile(fp, args.runs), "quantized": profile(qp, args.runs)}
        print(f"{name}: float {r['float']['kernel_ms']} ms ({r['float']['launches']} launches), quantized "
              f"{r['quantized']['kernel_ms']} ms ({r['quantized']['launches']} launches) on {r['float']['device']}",
              file=sys.stderr)
        out.append(r)
    json.dump({"benchmark": "fq_profile", "machine": machine(), "results": out}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
