#!/usr/bin/env python3
"""Export the mobile transformer architectures mace validates (needs torch, torchvision and timm;
NOT dependencies of mace):

    pip install torch==2.14.1 torchvision==0.29.1 timm
    python scripts/export_architectures.py                 # all of them
    python scripts/export_architectures.py convnext_t      # some of them

Each model gets random weights of the right scale (convolution and linear weights normal with
std 1/sqrt(fan-in), norm scales in [0.5, 1.5], biases and other parameters small, from a fixed
seed; BatchNormalization statistics from random images), is exported with the TorchScript
exporter (opset 17, eval mode: BatchNormalization folded, constants folded), and is written
in the compact form of `mace.testing.models`:
tests/models/<name>.onnx with every initializer of more than 4096 elements stripped of its data,
and tests/models/<name>.json, the recipe that refills each of them with seeded normal values of
the exported tensor's own mean and std. `mace.testing.models.materialize(name)` rebuilds the
runnable model with numpy and onnx only, so onnxruntime and mace see the same weights.
The script checks the materialized model on onnxruntime: finite logits of order 1 that depend
on the input.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
from make_test_models import recipe_json  # noqa: E402  (the one recipe layout)

from mace.testing import models as tm  # noqa: E402

OPSET = 17
#: name -> (library, constructor name, input side, seed)
ARCHITECTURES = {
    "convnext_t": ("torchvision", "convnext_tiny", 224, 21),
    "mobilevit_xs": ("timm", "mobilevit_xs", 256, 22),
    "efficientformer_l1": ("timm", "efficientformer_l1", 224, 23),
}
NORMS = (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm)


def build(name: str) -> nn.Module:
    lib, ctor, _, _ = ARCHITECTURES[name]
    if lib == "torchvision":
        import torchvision
        return getattr(torchvision.models, ctor)(weights=None)
    import timm
    return timm.create_model(ctor, pretrained=False)


def randomize(model: nn.Module, seed: int) -> None:
    """Random weights of the right scale for every parameter and running statistic."""
    g = torch.Generator().manual_seed(seed)
    done = set()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                w = mod.weight
                w.normal_(0.0, 1.0 / math.sqrt(w[0].numel()), generator=g)
                if mod.bias is not None:
                    mod.bias.uniform_(-0.1, 0.1, generator=g)
            elif isinstance(mod, NORMS):
                if getattr(mod, "weight", None) is not None:
                    mod.weight.uniform_(0.5, 1.5, generator=g)
                    mod.bias.uniform_(-0.1, 0.1, generator=g)
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.1, 0.1, generator=g)
                    mod.running_var.uniform_(0.5, 1.5, generator=g)
            else:
                continue
            done.update(id(p) for p in mod.parameters(recurse=False))
        for p in model.parameters():  # layer scales, attention biases, ...
            if id(p) not in done:
                p.uniform_(-0.5, 0.5, generator=g)


@torch.no_grad()
def calibrate_bn(model: nn.Module, side: int, seed: int) -> None:
    """BatchNormalization running statistics from the activations of random images (inputs in
    [0, 1), as the tests feed), so that each one normalizes and the logits depend on the input."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    if bns:
        model(torch.rand(8, 3, side, side, generator=torch.Generator().manual_seed(seed + 500)))
    model.eval()


def export(model: nn.Module, side: int) -> onnx.ModelProto:
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=["output"])
    m = onnx.load_from_string(buf.getvalue())
    m.producer_name = "mace/scripts/export_architectures.py"
    del m.graph.value_info[:]
    return m


def compact(full: onnx.ModelProto, seed: int) -> tuple[onnx.ModelProto, list[dict]]:
    """Strip every initializer of more than COMPACT_THRESHOLD elements, with a recipe entry of
    the tensor's own mean and std."""
    m = onnx.ModelProto()
    m.CopyFrom(full)
    entries = []
    for k, init in enumerate(m.graph.initializer):
        n = int(np.prod(init.dims)) if len(init.dims) else 1
        if n <= tm.COMPACT_THRESHOLD or init.data_type != onnx.TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init).astype(np.float64)
        entry = {"name": init.name, "shape": list(init.dims), "dtype": "float32", "seed": seed * 10000 + k,
                 "mean": float(np.float32(arr.mean())), "std": float(np.float32(arr.std())),
                 "nonneg": bool((arr >= 0).all())}
        if entry["nonneg"]:  # |normal(0, s)| has mean s * sqrt(2 / pi)
            entry["mean"], entry["std"] = 0.0, float(np.float32(arr.mean() / math.sqrt(2 / math.pi)))
        entry["sha256"] = hashlib.sha256(tm.generate_tensor(entry).tobytes()).hexdigest()
        entries.append(entry)
        dims, dtype = list(init.dims), init.data_type
        init.Clear()
        init.name, init.data_type = entry["name"], dtype
        init.dims.extend(dims)
    return m, entries


def check_logits(model: onnx.ModelProto, side: int) -> dict:
    """Finite logits of order 1 that change with the input, on onnxruntime."""
    sess = ort.InferenceSession(tm.serialize(model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    outs = [sess.run(None, {"input": rng.uniform(0, 1, (1, 3, side, side)).astype(np.float32)})[0]
            for _ in range(2)]
    scale = float(np.abs(outs[0]).max())
    change = float(np.abs(outs[0] - outs[1]).max())
    assert np.isfinite(outs[0]).all() and 1e-2 < scale < 1e3 and change > 1e-2 * scale, (scale, change)
    return {"max_abs_logit": scale, "input_dependence": change}


def make(name: str) -> dict:
    lib, ctor, side, seed = ARCHITECTURES[name]
    torch.manual_seed(seed)
    model = build(name).eval()
    randomize(model, seed)
    calibrate_bn(model, side, seed)
    full = export(model, side)
    small, entries = compact(full, seed)
    recipe = {
        "format": 1,
        "name": name,
        "generator": "scripts/export_architectures.py",
        "source": f"{lib} {ctor} (torch {torch.__version__.split('+')[0]}, random weights)",
        "input": {"name": "input", "shape": [1, 3, side, side], "dtype": "float32", "range": [0.0, 1.0]},
        "output": {"name": "output", "shape": [1, 1000], "dtype": "float32"},
        "compact_threshold": tm.COMPACT_THRESHOLD,
        "initializers": entries,
    }
    rebuilt = tm.build_model(onnx.load_from_string(tm.serialize(small)), recipe)
    recipe["model_sha256"] = hashlib.sha256(tm.serialize(rebuilt)).hexdigest()
    stats = check_logits(rebuilt, side)
    out = tm.MODELS_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.onnx").write_bytes(tm.serialize(small))
    (out / f"{name}.json").write_text(recipe_json(recipe))
    return {"name": name, "stripped": len(entries), "compact_bytes": (out / f"{name}.onnx").stat().st_size, **stats}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help=f"of {', '.join(ARCHITECTURES)} (default: all)")
    args = ap.parse_args()
    unknown = sorted(set(args.names) - set(ARCHITECTURES))
    if unknown:
        ap.error(f"unknown architecture(s) {', '.join(unknown)}: choose from {', '.join(ARCHITECTURES)}")
    torch.set_num_threads(2)
    for name in args.names or list(ARCHITECTURES):
        print(make(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
