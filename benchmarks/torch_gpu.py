"""mace on an OpenCL GPU against PyTorch eager CUDA and torch.compile, batch 1 and 32.

PyTorch runs torchvision's architectures (random weights); mace runs the same architectures
from tests/models (converted with the batch dimension set). Steady medians of CUDA-synchronized
runs after warm-up. Needs torch + torchvision with CUDA and an OpenCL GPU device.

    python benchmarks/torch_gpu.py --device NVIDIA [--batches 1,32] [--models mobilenet_v2,resnet18] [--tune]

`--tune` also runs mace's tuner (mode normal, a throw-away program file) and times the tuned engine.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import CACHE, machine, time_fn  # noqa: E402

from mace.latency import latency_stats  # noqa: E402


def mace_model(name: str, batch: int) -> Path:
    import onnx

    from mace.convert import convert
    from mace.testing.models import materialize
    out = CACHE / f"{name}.b{batch}.mace"
    if out.exists():
        return out
    m = onnx.load(str(materialize(name)))
    for vi in list(m.graph.input) + list(m.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "N"
    out.parent.mkdir(parents=True, exist_ok=True)
    convert(m, out, input_shapes={"input": [batch, 3, 224, 224]})
    return out


def torch_times(name: str, batch: int, runs: int, compile_: bool) -> dict:
    import torch
    import torchvision
    net = getattr(torchvision.models, {"mobilenet_v2": "mobilenet_v2", "resnet18": "resnet18"}[name])()
    net = net.eval().cuda()
    x = torch.rand(batch, 3, 224, 224, device="cuda")
    fn = net
    t_compile = None
    if compile_:
        fn = torch.compile(net)
        t0 = time.perf_counter()
        with torch.no_grad():
            fn(x)
        torch.cuda.synchronize()
        t_compile = time.perf_counter() - t0

    def step():
        with torch.no_grad():
            fn(x)
        torch.cuda.synchronize()
    s = latency_stats(time_fn(step, runs, warmup=10), with_samples=False)
    if t_compile is not None:
        s["first_call_s"] = t_compile
    return s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="NVIDIA")
    ap.add_argument("--models", default="mobilenet_v2,resnet18")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--tune", action="store_true", help="also time mace after its tuner (mode normal)")
    args = ap.parse_args()
    import mace
    rows = []
    for name in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            path = mace_model(name, batch)
            prog = Path(tempfile.mkdtemp(prefix="mace-torch-")) / "mace-cl-compiled-program.bin"
            e = mace.Engine(path, runtime="gpu", device=args.device, program=prog)
            x = {"input": np.random.default_rng(0).uniform(0, 1, (batch, 3, 224, 224)).astype(np.float32)}
            row = {"model": name, "batch": batch, "mace_device": e.summary()["device"],
                   "mace_opencl": latency_stats(time_fn(lambda: e.run(x), args.runs, warmup=5), with_samples=False)}
            _, prof = e.profile(x)
            row["mace_kernel_sum_ms"] = sum(r[2] for r in prof) * 1e3
            if args.tune:
                from mace.tuning import tune
                t0 = time.perf_counter()
                result = tune(e, mode="normal")
                row["mace_tune_s"] = time.perf_counter() - t0
                row["mace_tuned_kept_defaults"] = bool(result.reverted)
                row["mace_opencl_tuned"] = latency_stats(time_fn(lambda: e.run(x), args.runs, warmup=5), with_samples=False)
            row["torch_eager"] = torch_times(name, batch, args.runs, False)
            if not args.no_compile:
                row["torch_compile"] = torch_times(name, batch, args.runs, True)
            rows.append(row)
            print(f"{name} b{batch}: mace {row['mace_opencl']['median_ms']:.2f} ms (kernels {row['mace_kernel_sum_ms']:.2f})"
                  + (f", tuned {row['mace_opencl_tuned']['median_ms']:.2f} ms" if args.tune else "")
                  + f", eager {row['torch_eager']['median_ms']:.2f} ms"
                  + (f", compile {row['torch_compile']['median_ms']:.2f} ms" if "torch_compile" in row else ""),
                  file=sys.stderr)
    json.dump({"benchmark": "torch_gpu", "machine": machine(), "results": rows}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
