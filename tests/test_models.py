"""Real models exported from PyTorch validate on both runtimes against onnxruntime.

Each model is converted once per session; inputs are random in [0, 1) with a fresh seed.
Pass: cosine similarity >= 0.999 (fp32) on the CPU and the GPU (PoCL) runtime, and top-1 agreement.
"""
from __future__ import annotations

import numpy as np
import pytest

import mace
from mace.convert import convert
from mace.testing import models as test_models
from mace.tools.validate import metrics, onnx_reference

MODELS = ["mobilenet_v1", "mobilenet_v2", "resnet18", "squeezenet1_1", "efficientnet_lite0"]
FOLDED_AWAY = {"Shape", "Gather", "Unsqueeze", "ConstantOfShape", "Cast", "Constant", "BatchNormalization",
               "Identity", "Dropout"}


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    out = {}
    root = tmp_path_factory.mktemp("models")

    def get(name):
        if name not in out:
            onnx_path = test_models.materialize(name)
            graph = convert(onnx_path, root / f"{name}.mace")
            out[name] = (onnx_path, root / f"{name}.mace", graph)
        return out[name]
    return get


@pytest.mark.parametrize("name", MODELS)
def test_model_converts_and_folds(converted, name):
    _, _, graph = converted(name)
    ops = graph.op_counts()
    assert not FOLDED_AWAY & set(ops), ops
    assert ops.get("Conv", 0) > 10


@pytest.mark.parametrize("runtime", ["cpu", "gpu"])
@pytest.mark.parametrize("name", MODELS)
def test_model_validates(converted, name, runtime, rng):
    onnx_path, mace_path, graph = converted(name)
    x = rng.uniform(0, 1, graph.shape("input")).astype(np.float32)
    want = onnx_reference(onnx_path, {"input": x})["output"]
    engine = mace.Engine(mace_path, runtime=runtime, use_program_cache=False)
    got = engine.run({"input": x})["output"]
    m = metrics(got, want)
    assert m["cosine"] >= 0.999, m
    assert m["argmax_agreement"] == 1.0, m
    # logits can share a large offset (squeezenet's are ~247 +- 2), which cosine barely sees:
    # the centered outputs must agree as well
    centered = metrics(got - got.mean(), want - want.mean())
    assert centered["cosine"] >= 0.999, centered
    if runtime == "gpu":  # strides share a depthwise program, row widths two: two per kernel size at most
        from mace.runtime.opencl.ops.conv import ConvOp
        ops = [op for op in engine.executor.ops.values() if isinstance(op, ConvOp) and op.variant == "depthwise"]
        for k in {op.g["k"] for op in ops}:
            programs = {op.key for op in ops if op.g["k"] == k}
            assert len(programs) <= 2, sorted(programs)
