"""MediaPipe's custom TFLite ops that equal a builtin: rewritten into it before tf2onnx reads the file.

Convolution2DTransposeBias (MediaPipe's segmentation and face graphs) is TRANSPOSE_CONV with its bias
as an input. Its inputs are (input NHWC, filter OHWI, bias), its custom options the raw
TfLiteTransposeConvParams struct (int32 padding 1 SAME / 2 VALID, stride_width, stride_height), as
XNNPACK's delegate reads them; its output shape is that of its output tensor. TRANSPOSE_CONV takes
(output_shape, filter, input, bias). The rewrite goes through LiteRT's own schema (its object API).
"""
from __future__ import annotations

import struct

import numpy as np

from mace.errors import ConversionError

CONV_T_BIAS = "Convolution2DTransposeBias"
#: TfLitePadding (the C enum in the custom options) -> the schema's Padding (SAME 0, VALID 1)
_PADDING = {1: 0, 2: 1}


def _code_name(code) -> str:
    name = code.customCode
    return name.decode() if isinstance(name, (bytes, bytearray)) else (name or "")


def _transpose_conv_code(model, fb) -> int:
    """The index of a TRANSPOSE_CONV operator code (version 3: the bias input), added if missing."""
    op = fb.BuiltinOperator.TRANSPOSE_CONV
    for k, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == op:
            code.version = max(code.version, 3)
            return k
    code = fb.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = op, min(op, 127), 3
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _constant(model, sub, fb, name: str, values: np.ndarray) -> int:
    buf = fb.BufferT()
    buf.data = np.frombuffer(values.astype("<i4").tobytes(), np.uint8)
    model.buffers.append(buf)
    t = fb.TensorT()
    t.name, t.shape, t.type, t.buffer = name, [values.size], fb.TensorType.INT32, len(model.buffers) - 1
    sub.tensors.append(t)
    return len(sub.tensors) - 1


def _rewrite_op(model, sub, op, fb, code: int, source) -> None:
    out = sub.tensors[op.outputs[0]]
    node = out.name.decode() if isinstance(out.name, bytes) else out.name
    raw = bytes(bytearray(op.customOptions if op.customOptions is not None else []))
    if len(raw) < 12 or len(op.inputs) != 3:
        raise ConversionError(f"{source}: node {node}: custom op {CONV_T_BIAS} needs 3 inputs and 12 bytes of "
                              f"options (padding, stride_width, stride_height), got {len(op.inputs)} and "
                              f"{len(raw)}: re-export the model")
    padding, stride_w, stride_h = struct.unpack_from("<3i", raw)
    shape = [int(d) for d in (out.shape if out.shape is not None else [])]
    if padding not in _PADDING or len(shape) != 4 or min(shape) <= 0:
        raise ConversionError(f"{source}: node {node}: custom op {CONV_T_BIAS} with padding {padding} and output "
                              f"shape {shape}: mace needs SAME (1) or VALID (2) padding and a static 4-D output")
    shape_t = _constant(model, sub, fb, f"{node}__output_shape", np.array(shape))
    options = fb.TransposeConvOptionsT()
    options.padding, options.strideW, options.strideH = _PADDING[padding], stride_w, stride_h
    op.inputs = [shape_t, op.inputs[1], op.inputs[0], op.inputs[2]]
    op.opcodeIndex, op.builtinOptionsType, op.builtinOptions = code, fb.BuiltinOptions.TransposeConvOptions, options
    op.customOptions, op.customOptionsFormat = None, 0


def rewrite(data: bytes, source) -> tuple[bytes, int]:
    """(the flatbuffer with every Convolution2DTransposeBias made a TRANSPOSE_CONV, how many)."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils as fbu
    model = fbu.read_model_from_bytearray(bytearray(data))
    custom = {k for k, c in enumerate(model.operatorCodes) if _code_name(c) == CONV_T_BIAS}
    ops = [(sub, op) for sub in model.subgraphs for op in sub.operators if op.opcodeIndex in custom]
    if not ops:
        return data, 0
    code = _transpose_conv_code(model, fb)
    for sub, op in ops:
        _rewrite_op(model, sub, op, fb, code, source)
    return bytes(fbu.convert_object_to_bytearray(model)), len(ops)
