"""Converter: folding, fusion, attribute normalization, model file integrity, error paths.

Numerical checks compare against onnxruntime with rtol 1e-4 / atol 1e-4 (fp32)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from ophelpers import check_model, rand

from mace.convert import convert
from mace.errors import ConversionError, ModelFileError
from mace.ir import modelfile


def _conv_bn_relu(rng):
    c_in, c_out = 3, 8
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, 10, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = {
        "w": rand(rng, c_out, c_in, 3, 3), "b": rand(rng, c_out),
        "g": rand(rng, c_out, lo=0.5, hi=1.5), "beta": rand(rng, c_out),
        "m": rand(rng, c_out), "v": rand(rng, c_out, lo=0.5, hi=2.0),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "beta", "m", "v"], ["bn"], epsilon=1e-3),
        helper.make_node("Dropout", ["bn"], ["d"]),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    g = helper.make_graph(nodes, "cbr", [x], [y], [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_batchnorm_folds_into_conv_and_relu_fuses(rng):
    m = _conv_bn_relu(rng)
    graph = convert(m)
    assert [n.op_type for n in graph.nodes] == ["Conv"]
    assert graph.nodes[0].attrs["activation"] == "Relu"
    feeds = {"x": rand(rng, 1, 3, 10, 10)}
    check_model(m, feeds, runtimes=("cpu",))


def _same_pad_chain_model(rng):
    """PyTorch's export of TF 'same' padding: Shape/Gather/.../Pad computing pads at run time."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 9])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    c = lambda name, v: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(v, np.int64)))
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        c("i2", 2), helper.make_node("Gather", ["s", "i2"], ["h"], axis=0),
        c("stride", 2), c("k", 3), c("one", 1), c("zero", 0),
        helper.make_node("Add", ["h", "stride"], ["h1"]),          # ceil(h / stride) =
        helper.make_node("Sub", ["h1", "one"], ["h2"]),             # (h + stride - 1) / stride
        helper.make_node("Div", ["h2", "stride"], ["oh"]),
        helper.make_node("Sub", ["oh", "one"], ["oh1"]),
        helper.make_node("Mul", ["oh1", "stride"], ["t1"]),
        helper.make_node("Add", ["t1", "k"], ["t2"]),
        helper.make_node("Sub", ["t2", "h"], ["total"]),
        helper.make_node("Max", ["total", "zero"], ["tot"]),
        c("two", 2), helper.make_node("Div", ["tot", "two"], ["lo"]),
        helper.make_node("Sub", ["tot", "lo"], ["hi"]),
        helper.make_node("Unsqueeze", ["lo", "zero1"], ["lo1"]),
        helper.make_node("Unsqueeze", ["hi", "zero1"], ["hi1"]),
        helper.make_node("Concat", ["zero2", "zero2", "lo1", "lo1", "zero2", "zero2", "hi1", "hi1"], ["pads"], axis=0),
        helper.make_node("Cast", ["pads"], ["pads64"], to=TensorProto.INT64),
        helper.make_node("Pad", ["x", "pads64"], ["xp"], mode="constant"),
        helper.make_node("Conv", ["xp", "w"], ["y"], strides=[2, 2]),
    ]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "zero1"),
             numpy_helper.from_array(np.array([0], np.int64), "zero2"),
             numpy_helper.from_array(rand(rng, 6, 4, 3, 3), "w")]
    g = helper.make_graph(nodes, "same", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_shape_computation_chain_folds_to_static_pad(rng):
    m = _same_pad_chain_model(rng)
    graph = convert(m)
    assert [n.op_type for n in graph.nodes] == ["Pad", "Conv"]
    assert graph.nodes[0].attrs["pads"] == [0, 0, 1, 1, 0, 0, 1, 1]
    check_model(m, {"x": rand(rng, 1, 4, 9, 9)}, runtimes=("cpu",))


def test_model_file_round_trip_and_corruption(tmp_path, rng):
    graph = convert(_conv_bn_relu(rng), tmp_path / "m.mace")
    g2 = modelfile.load(tmp_path / "m.mace")
    assert [n.op_type for n in g2.nodes] == [n.op_type for n in graph.nodes]
    for k in graph.weights:
        np.testing.assert_array_equal(g2.weights[k], graph.weights[k])
    data = (tmp_path / "m.mace").read_bytes()
    (tmp_path / "trunc.mace").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="trunc.mace.*(truncated|corrupt)"):
        modelfile.load(tmp_path / "trunc.mace")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.mace").write_bytes(bytes(flipped))
    with pytest.raises(ModelFileError, match="checksum"):
        modelfile.load(tmp_path / "flip.mace")
    (tmp_path / "junk.mace").write_bytes(b"hello world" * 10)
    with pytest.raises(ModelFileError, match="not a mace model"):
        modelfile.load(tmp_path / "junk.mace")
    with pytest.raises(ModelFileError, match="no such model file"):
        modelfile.load(tmp_path / "missing.mace")


def test_model_file_loads_without_onnx(tmp_path, rng):
    import subprocess
    import sys
    convert(_conv_bn_relu(rng), tmp_path / "m.mace")
    code = ("import sys; sys.modules['onnx'] = None; sys.modules['onnxruntime'] = None\n"
            "import numpy as np, mace\n"
            f"e = mace.Engine(r'{tmp_path / 'm.mace'}', runtime='cpu')\n"
            "print(e.run({'x': np.ones((1,3,10,10), np.float32)})['y'].shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "(1, 8, 10, 10)" in out.stdout


def test_broken_onnx_file_is_a_clear_error(tmp_path):
    p = tmp_path / "broken.onnx"
    p.write_bytes(b"\x08\x07garbage" * 7)
    with pytest.raises(ConversionError, match="broken.onnx"):
        convert(p)


def test_wrong_input_shape_is_a_clear_error(rng):
    with pytest.raises(ConversionError, match="input x has shape .* fix input_shapes"):
        convert(_conv_bn_relu(rng), input_shapes={"x": [1, 4, 10, 10]})


def test_pool_ceil_mode_shape_disagreement_is_a_clear_error(rng):
    """ceil_mode with a last window starting in the end padding: onnxruntime drops that window,
    ONNX shape inference keeps it; mace refuses instead of producing a wrong shape."""
    from ophelpers import make_model
    x = rand(rng, 1, 2, 6, 6)
    bad = make_model("MaxPool", {"x": x}, {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1],
                                         "ceil_mode": 1})
    with pytest.raises(ConversionError, match="ceil_mode=1.*disagree"):
        convert(bad)
    ok = make_model("MaxPool", {"x": rand(rng, 1, 2, 7, 7)}, {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1})
    assert convert(ok).shape("out0") == (1, 2, 3, 3)
