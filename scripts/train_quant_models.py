#!/usr/bin/env python3
"""Trained MobileNetV2, ResNet-18 and EfficientNet-Lite0 (10 classes) for the quantization benchmark.

The test models in tests/models have random weights: they amplify any perturbation (one 8-bit step of
input noise moves MobileNetV2's output to cosine 0.90), so they cannot show what quantization does to
the smooth networks users quantize. These are the same architectures (scripts/make_test_models.py)
trained on scikit-learn's digits (offline, labelled): each 8x8 digit upscaled bilinearly to 3 x SIZE
x SIZE in [0, 1), the example's split (train_test_split(test_size=0.2, random_state=0): 1437 training,
360 held-out digits). Seeded; a few epochs of AdamW with a one-cycle schedule; exported in eval mode
(ONNX opset 17) to the cache with the float test accuracy beside it:

    <cache>/<name>.onnx, <cache>/<name>.json     cache: $MACE_TRAINED_MODELS or ~/.cache/mace/trained-models

Needs torch (the `torch` extra) and scikit-learn to train; `load` and `digits` (numpy only) serve the
benchmark. No weights are kept in the repository. Torch threads: $MACE_TRAIN_THREADS (default 2).

    python scripts/train_quant_models.py                 # the three, when missing
    python scripts/train_quant_models.py --force resnet18
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NAMES = ["mobilenet_v2", "resnet18", "efficientnet_lite0"]
SIZE = 16         # input H = W: the nets are fully convolutional; 16 (twice the digits) trains on 2 busy cores
EPOCHS = {"mobilenet_v2": 5, "resnet18": 4, "efficientnet_lite0": 5}
SEED = 0
FORMAT = 1
DATA = f"sklearn digits, bilinear 8x8 -> 3x{SIZE}x{SIZE}, train_test_split(test_size=0.2, random_state=0)"


def cache_dir() -> Path:
    env = os.environ.get("MACE_TRAINED_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mace" / "trained-models"


def _upsample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Bilinear interpolation with half-pixel centers (torch's align_corners=False) as a matrix."""
    m = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        src = min(max((i + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1)
        lo = int(np.floor(src))
        hi = min(lo + 1, n_in - 1)
        m[i, lo] += 1 - (src - lo)
        m[i, hi] += src - lo
    return m


def digits(size: int = SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): digits as float32 [N, 3, size, size] in [0, 1)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    m = _upsample_matrix(8, size)
    img = np.einsum("oi,nij,pj->nop", m, d.images.astype(np.float64) / 16.0, m)
    x = np.clip(img, 0.0, 255 / 256).astype(np.float32)[:, None].repeat(3, axis=1)
    xtr, xte, ytr, yte = train_test_split(x, d.target.astype(np.int64), test_size=0.2, random_state=0)
    return xtr, ytr, xte, yte


def load(name: str, train_if_missing: bool = True) -> tuple[Path, dict]:
    """The cached model of `name` and its record, trained first when missing (needs torch)."""
    path, meta = cache_dir() / f"{name}.onnx", cache_dir() / f"{name}.json"
    if path.is_file() and meta.is_file():
        rec = json.loads(meta.read_text())
        if rec.get("format") == FORMAT and rec.get("size") == SIZE:
            return path, rec
    if not train_if_missing:
        raise FileNotFoundError(f"{path}: not trained yet: run scripts/train_quant_models.py {name}")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SystemExit(f"{path} is missing and torch is not installed: pip install -e '.[torch]' "
                         f"(or run scripts/train_quant_models.py with a python that has torch)") from None
    return train(name)


def train(name: str) -> tuple[Path, dict]:
    """Train `name` on the digits, export it to the cache; returns (path, record)."""
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_test_models import ARCHS, export_onnx

    torch.manual_seed(SEED)
    torch.set_num_threads(int(os.environ.get("MACE_TRAIN_THREADS", min(2, os.cpu_count() or 1))))
    xtr, ytr, xte, yte = digits()
    # channels-last: torch's CPU depthwise convs train 5x faster in it
    model = ARCHS[name](num_classes=10).to(memory_format=torch.channels_last)
    epochs, batch = EPOCHS[name], 32
    steps = epochs * ((len(xtr) + batch - 1) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps)
    xt, yt = torch.from_numpy(xtr).to(memory_format=torch.channels_last), torch.from_numpy(ytr)
    g = torch.Generator().manual_seed(SEED)
    t0, c0 = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        total = 0.0
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        print(f"{name}: epoch {epoch + 1}/{epochs} loss {total / len(xt):.4f} "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    train_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    model = model.to(memory_format=torch.contiguous_format).eval()
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(xte[k:k + 64])) for k in range(0, len(xte), 64)])
    top1 = float((logits.argmax(1).numpy() == yte).mean() * 100)
    out = cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / path.name
        export_onnx(model, torch.from_numpy(xte[:1]), tmp_path, (1, 10), dynamic_hw=(name == "efficientnet_lite0"))
        os.replace(tmp_path, path)
    rec = {"format": FORMAT, "name": name, "size": SIZE, "input_shape": [1, 3, SIZE, SIZE], "input_range": [0.0, 1.0],
           "data": DATA, "epochs": epochs, "seed": SEED, "train_seconds": round(train_s, 1),
           "train_cpu_seconds": round(cpu_s, 1), "load_average": os.getloadavg()[0],
           "torch_threads": torch.get_num_threads(), "float_test_top1_percent": top1, "test_samples": int(len(yte))}
    (out / f"{name}.json").write_text(json.dumps(rec, indent=1) + "\n")
    print(f"{name}: float top-1 {top1:.2f} % on {len(yte)} held-out digits, trained in {train_s:.0f} s -> {path}",
          file=sys.stderr, flush=True)
    return path, rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"subset of {NAMES} (default: all)")
    ap.add_argument("--force", action="store_true", help="train again even when cached")
    args = ap.parse_args()
    for name in args.names or NAMES:
        if name not in NAMES:
            ap.error(f"unknown model {name}: choose from {', '.join(NAMES)}")
        path, rec = train(name) if args.force else load(name)
        print(json.dumps({"model": name, "path": str(path), **rec}))


if __name__ == "__main__":
    main()
