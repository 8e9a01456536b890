"""TFLite sources from TF's converter: float and int8 (run dequantized), the mobile ops outside
the core set, MediaPipe's Convolution2DTransposeBias, and the refusals (MediaPipe's argmax pooling
and unpooling among them) that name the op, the node and the file."""
from __future__ import annotations

import logging

import pytest
from src_checks import convert_and_validate

import mace
from mace.convert import convert
from mace.errors import ConversionError


def test_float_resnet_validates_against_litert(tf_models, tmp_path):
    graph, _ = convert_and_validate(tf_models["tflite"], tmp_path / "f.mace")
    assert graph.meta["source"]["platform"] == "tflite"


def test_int8_runs_dequantized_with_an_info_line(tf_models, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="mace"):
        graph, results = convert_and_validate(tf_models["int8"], tmp_path / "q.mace")
    assert any("int8-quantized" in r.getMessage() and "dequantized" in r.getMessage() for r in caplog.records)
    assert not {"QuantizeLinear", "DequantizeLinear"} & set(graph.op_counts())
    assert results["cpu"]["outputs"]                                  # compared with LiteRT's int8 run


def test_mobile_ops_prelu_hardswish_depth_to_space_resize_transpose_conv(tf_models, tmp_path):
    graph, _ = convert_and_validate(tf_models["ops"], tmp_path / "ops.mace")
    ops = graph.op_counts()
    assert {"PRelu", "HardSwish", "Resize", "ConvTranspose"} <= set(ops), ops


def test_mediapipe_conv_transpose_bias_runs_as_transpose_conv(tf_models, tmp_path):
    """MediaPipe's Convolution2DTransposeBias (SAME and VALID, stride 2), validated against LiteRT
    running the custom op itself (its XNNPACK delegate implements it) and against TF's own
    TRANSPOSE_CONV in the file it was made from."""
    import numpy as np

    from mace.convert.sources import reference_outputs
    graph, _ = convert_and_validate(tf_models["deconv_bias"], tmp_path / "d.mace")
    assert graph.op_counts().get("ConvTranspose") == 2, graph.op_counts()
    x = np.random.default_rng(1).uniform(-1, 1, graph.shape("x")).astype(np.float32)
    want = reference_outputs(tf_models["deconv"], graph, {"x": x})[graph.outputs[0]]
    with mace.Engine(tmp_path / "d.mace", runtime="cpu") as engine:
        got = engine.run({"x": x})[graph.outputs[0]]
    assert got.shape == want.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("key,words", [
    ("argmax", ["MaxPoolWithArgmax", "node Identity", "argmax.tflite"]),
    ("pool_unpool", ["custom op MaxPoolingWithArgmax2D", "node MaxPool2d", "pool_unpool.tflite"]),
    ("unpool", ["custom op MaxUnpooling2D", "node Identity", "unpool.tflite"]),
])
def test_unsupported_ops_name_op_node_and_file(tf_models, tmp_path, key, words):
    with pytest.raises(ConversionError) as err:
        convert(tf_models[key], tmp_path / "x.mace")
    assert all(w in str(err.value) for w in words), str(err.value)
    assert "\n" not in str(err.value)


def test_converted_model_runs_without_the_frameworks(tf_models, tmp_path):
    """A .mace file from a source model runs in a process where no framework can be imported."""
    import subprocess
    import sys
    out = tmp_path / "f.mace"
    convert(tf_models["tflite"], out)
    code = ("import sys\n"
            "for m in ('tensorflow', 'tf2onnx', 'tflite', 'ai_edge_litert', 'torch'): sys.modules[m] = None\n"
            "import numpy as np, mace\n"
            f"e = mace.Engine({str(out)!r}, runtime='cpu')\n"
            "y = e.run({n: np.ones(e.graph.shape(n), np.float32) for n in e.graph.inputs})\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('tensorflow', 'torch') and sys.modules[k]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
