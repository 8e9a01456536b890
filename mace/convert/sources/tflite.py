"""TFLite flatbuffers (.tflite), float and int8-quantized.

Converted by tf2onnx's TFLite frontend (its own reader of the TFLite schema; chosen over
tflite2onnx by measurement: docs/sources.md). An int8 model is converted dequantized (weights
become float32 constants, quantize/dequantize pairs go) until mace runs quantized graphs: an
info line says so. Custom ops of MediaPipe-style graphs are checked first: those mace refuses
are named with the node (its first output tensor) and the file; Convolution2DTransposeBias
becomes TRANSPOSE_CONV (sources/tflite_custom.py). Tensor names are the flatbuffer's; I/O stay NHWC.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from mace.convert.sources import Imported, quiet_framework_logs, require
from mace.convert.sources.shapes import check_names, layout_of
from mace.errors import ConversionError

log = logging.getLogger("mace.convert")
OPSET = 17
_FIX = "name them as in the .tflite file (input_tensors/output_tensors in mace.yml)"
#: custom ops mace refuses, and why
REFUSED_CUSTOM = {
    "MaxPoolingWithArgmax2D": "its argmax indices output has no mace op (MaxPool indices are refused)",
    "MaxPoolWithArgmax": "its argmax indices output has no mace op (MaxPool indices are refused)",
    "MaxUnpooling2D": "it scatters by argmax indices, which mace does not compute",
}


def inspect(spec) -> dict:
    """What the flatbuffer holds: I/O tensor names, op names per node, quantized or not."""
    tfl = require("tflite", "tflite", spec.path)
    data = Path(spec.path).read_bytes()
    try:
        model = tfl.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
        return _read(tfl, model, spec)
    except Exception as exc:  # noqa: BLE001 - flatbuffers raises struct.error/IndexError/... on garbage
        raise ConversionError(f"{spec.path}: not a readable TFLite flatbuffer ({type(exc).__name__}): "
                              f"re-export it with TF's TFLite converter") from None


def _read(tfl, model, spec) -> dict:
    if model.SubgraphsLength() != 1:
        log.info("%s: %d subgraphs: the first is converted", spec.path, model.SubgraphsLength())
    sub = model.Subgraphs(0)
    codes = [model.OperatorCodes(k) for k in range(model.OperatorCodesLength())]
    names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
    tensor = lambda k: sub.Tensors(k).Name().decode()
    nodes, quantized = [], False
    for k in range(sub.OperatorsLength()):
        op = sub.Operators(k)
        code = codes[op.OpcodeIndex()]
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = code.CustomCode().decode() if code.CustomCode() else names.get(builtin, str(builtin))
        out = tensor(op.Outputs(0)) if op.OutputsLength() else f"op{k}"
        nodes.append((name, out))
        quantized |= name in ("QUANTIZE", "DEQUANTIZE")
    for k in range(sub.TensorsLength()):
        t = sub.Tensors(k)
        quantized |= t.Type() in (tfl.TensorType.INT8, tfl.TensorType.UINT8) and t.Quantization() is not None
    return {"inputs": [tensor(sub.Inputs(k)) for k in range(sub.InputsLength())],
            "outputs": [tensor(sub.Outputs(k)) for k in range(sub.OutputsLength())],
            "nodes": nodes, "quantized": quantized}


def to_onnx(spec) -> Imported:
    info = inspect(spec)
    for op, node in info["nodes"]:
        if op in REFUSED_CUSTOM:
            raise ConversionError(f"{spec.path}: node {node}: custom op {op} is not supported by mace "
                                  f"({REFUSED_CUSTOM[op]}): cut the graph before it")
    ins = check_names(spec.input_tensors, info["inputs"], "input", spec.path, _FIX)
    outs = check_names(spec.output_tensors, info["outputs"], "output", spec.path, _FIX)
    quiet_framework_logs()
    require("tf2onnx", "tflite", spec.path)
    from mace.convert.sources import tflite_import
    with tempfile.TemporaryDirectory(prefix="mace-tflite-") as tmp:
        path = _builtin_form(spec, Path(tmp))
        model = tflite_import.convert(spec, path, ins, outs, dequantize=info["quantized"], opset=OPSET)
    notes = []
    if info["quantized"]:
        notes.append(f"{spec.path}: an int8-quantized TFLite model: converted dequantized (float32 weights "
                     f"and activations) until mace runs quantized graphs")
    return Imported(model, _layouts(model.graph.input), _layouts(model.graph.output), notes)


def _builtin_form(spec, tmp: Path) -> Path:
    """The file tf2onnx reads: the source, or a copy whose MediaPipe custom ops with a builtin
    equal are rewritten into it."""
    from mace.convert.sources import tflite_custom
    data, count = tflite_custom.rewrite(Path(spec.path).read_bytes(), spec.path)
    if not count:
        return Path(spec.path)
    log.info("%s: %d %s op(s) converted as TRANSPOSE_CONV with bias", spec.path, count, tflite_custom.CONV_T_BIAS)
    path = tmp / Path(spec.path).name
    path.write_bytes(data)
    return path


def _layouts(values) -> dict[str, str]:
    return {v.name: layout_of(len(v.type.tensor_type.shape.dim), "NHWC") for v in values}


def reference(spec, feeds: dict, input_names: list[str], output_names: list[str]) -> dict:
    """The LiteRT interpreter's outputs on `feeds` (in the source layout); int8 I/O quantized and
    dequantized with the tensors' own scale and zero point."""
    import numpy as np
    quiet_framework_logs()
    interp_mod = require("ai_edge_litert.interpreter", "tflite", spec.path)
    it = interp_mod.Interpreter(model_path=str(spec.path))
    it.allocate_tensors()
    for d in it.get_input_details():
        x = np.asarray(feeds[d["name"]], np.float32)
        if d["dtype"] != np.float32:
            scale, zero = d["quantization"]
            info = np.iinfo(d["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        it.set_tensor(d["index"], x.astype(d["dtype"]).reshape(d["shape"]))
    it.invoke()
    got = {}
    for d in it.get_output_details():
        y = it.get_tensor(d["index"])
        if d["dtype"] != np.float32:
            scale, zero = d["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        got[d["name"]] = y
    return {n: got[n] for n in output_names}
