"""PyTorch sources: torch.export (.pt2), TorchScript and module:callable of a torchvision-style
net, and torchvision's MobileNetV3-Small exported, validated on both runtimes against PyTorch;
layouts; missing shapes and extras."""
from __future__ import annotations

import sys

import pytest
from src_checks import convert_and_validate

from mace.convert import convert
from mace.errors import ConversionError


@pytest.mark.parametrize("form", ["pt2", "torchscript", "callable"])
def test_torch_forms_validate_against_pytorch(torch_models, tmp_path, form):
    shapes = {"input": [1, 3, 32, 32]}
    graph, _ = convert_and_validate(torch_models[form], tmp_path / f"{form}.mace", input_shapes=shapes)
    assert graph.inputs == ["input"] and graph.outputs == ["output"]
    assert graph.meta["source"]["platform"] == "pytorch"


def test_torchvision_mobilenet_v3_small_validates_against_pytorch(torchvision_model, tmp_path):
    graph, results = convert_and_validate(torchvision_model, tmp_path / "mnv3.mace")
    assert graph.shape("input") == (1, 3, 64, 64) and graph.shape("output") == (1, 10)
    ops = graph.op_counts()
    assert {"Conv", "GlobalAveragePool", "Mul", "Gemm"} <= set(ops), ops       # Mul: squeeze-excitation


def test_nhwc_inputs_on_request(torch_models, tmp_path):
    io = {"input_tensors": ["image"], "output_tensors": ["logits"], "input_formats": ["NHWC"]}
    graph, _ = convert_and_validate(torch_models["callable"], tmp_path / "nhwc.mace", runtimes=("cpu",),
                                    input_shapes={"image": [1, 32, 32, 3]}, io=io)
    assert graph.shape("image") == (1, 32, 32, 3) and graph.outputs == ["logits"]


def test_torchscript_needs_input_shapes(torch_models, tmp_path):
    with pytest.raises(ConversionError, match="needs its input shapes.*input_shapes"):
        convert(torch_models["torchscript"], tmp_path / "x.mace")


def test_missing_framework_names_the_extra(torch_models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)               # import torch -> ImportError
    with pytest.raises(ConversionError, match=r"pip install 'mace-engine\[torch\]'"):
        convert(torch_models["pt2"], tmp_path / "x.mace")
