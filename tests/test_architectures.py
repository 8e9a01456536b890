"""The mobile transformer architectures (ConvNeXt-T from torchvision, MobileViT-XS and
EfficientFormer-L1 from timm; random weights, scripts/export_architectures.py) convert and
validate against onnxruntime: cosine >= 0.999 and the same argmax on a random input in [0, 1)
with a fresh seed.

Within the suite's time budget (a cold PoCL start of one of them costs tens of seconds): all three
convert and keep their transformer ops fused; MobileViT-XS validates on the CPU runtime and
EfficientFormer-L1 on the GPU runtime (every node a GPU kernel). All three on both runtimes, with
latencies, are `benchmarks/architectures.py`.
"""
from __future__ import annotations

import numpy as np
import pytest

import mace
from mace.convert import convert
from mace.testing import models as test_models
from mace.tools.validate import metrics, onnx_reference

ARCHITECTURES = ["convnext_t", "mobilevit_xs", "efficientformer_l1"]
#: what each must have after conversion (ops, and activations fused into their producers), and no
#: op-by-op leftovers (GELU's Erf, SiLU's Sigmoid, shape arithmetic)
FUSED = {"convnext_t": {"LayerNormalization", "act:Gelu"}, "mobilevit_xs": {"LayerNormalization", "Softmax", "act:Silu"},
         "efficientformer_l1": {"LayerNormalization", "Softmax", "act:Gelu"}}
UNFUSED = {"Erf", "Gelu", "Sigmoid", "Pow", "Sqrt", "Shape", "Gather", "Cast", "Constant", "Identity", "Dropout"}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("architectures")
    out = {}

    def get(name):
        if name not in out:
            onnx_path = test_models.materialize(name)
            out[name] = (onnx_path, root / f"{name}.mace", convert(onnx_path, root / f"{name}.mace"))
        return out[name]
    return get


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_architecture_converts_fused(converted, name):
    graph = converted(name)[2]
    ops = set(graph.op_counts()) | {f"act:{n.attrs['activation']}" for n in graph.nodes if n.attrs.get("activation")}
    assert FUSED[name] <= ops, ops
    assert not UNFUSED & ops, ops


@pytest.mark.parametrize("name, runtime", [("mobilevit_xs", "cpu"), ("efficientformer_l1", "gpu")])
def test_architecture_validates(converted, name, runtime, rng):
    onnx_path, mace_path, graph = converted(name)
    x = rng.uniform(0, 1, graph.shape("input")).astype(np.float32)
    want = onnx_reference(onnx_path, {"input": x})["output"]
    with mace.Engine(mace_path, runtime=runtime, use_program_cache=False) as engine:
        if runtime == "gpu":
            assert not engine.executor.fallback_nodes and not engine.executor.build_fallbacks
        got = engine.run({"input": x})["output"]
    m = metrics(got, want)
    assert m["cosine"] >= 0.999 and m["argmax_agreement"] == 1.0, m
    centered = metrics(got - got.mean(), want - want.mean())
    assert centered["cosine"] >= 0.999, centered
