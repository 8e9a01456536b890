""".tflite files with MediaPipe's custom ops, made inside the tests: TF's converter writes builtins,
LiteRT's object API then rewrites them into the custom ops as MediaPipe graphs carry them (the
custom_code and the raw C struct of options that XNNPACK's delegate reads)."""
from __future__ import annotations

import struct

import numpy as np


def conv_transpose_net(seed=0):
    """Conv, then two transposed convs with bias (SAME stride 2, VALID stride 2, no activation)."""
    import tensorflow as tf
    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    conv = L.Conv2D(6, 3, padding="same")
    up = L.Conv2DTranspose(4, 3, strides=2, padding="same", bias_initializer="random_uniform")
    up2 = L.Conv2DTranspose(3, 2, strides=2, padding="valid", bias_initializer="random_uniform")

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="x")])
    def f(x):
        return up2(up(conv(x)))
    return f


def pool_unpool_net(seed=0):
    """MAX_POOL_2D -> CONV_2D -> RESIZE_NEAREST_NEIGHBOR: the places of MediaPipe's
    MaxPoolingWithArgmax2D and MaxUnpooling2D in its segmentation graphs."""
    import tensorflow as tf
    tf.keras.utils.set_random_seed(seed)
    conv = tf.keras.layers.Conv2D(4, 3, padding="same")

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 4], tf.float32, name="x")])
    def f(x):
        y = conv(tf.nn.max_pool2d(x, 2, 2, "VALID"))
        return tf.image.resize(y, (8, 8), method="nearest")
    return f


def _model(path):
    from ai_edge_litert.tools import flatbuffer_utils as fbu
    return fbu.read_model_from_bytearray(bytearray(path.read_bytes()))


def _save(model, path):
    from ai_edge_litert.tools import flatbuffer_utils as fbu
    path.write_bytes(bytes(fbu.convert_object_to_bytearray(model)))
    return path


def _custom_code(model, name: str) -> int:
    from ai_edge_litert import schema_py_generated as fb
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
    code.customCode, code.version = name, 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _ops(model, builtin: int):
    sub = model.subgraphs[0]
    for op in sub.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            yield sub, op


def _make_custom(op, code: int, options: bytes, inputs: list[int], outputs: list[int]):
    op.opcodeIndex, op.inputs, op.outputs = code, inputs, outputs
    op.builtinOptionsType, op.builtinOptions = 0, None
    op.customOptions = np.frombuffer(options, np.uint8)


def _tensor(sub, like: int, name: str, dtype=None) -> int:
    import copy
    t = copy.deepcopy(sub.tensors[like])
    t.name, t.buffer, t.quantization = name, 0, None
    if dtype is not None:
        t.type = dtype
    sub.tensors.append(t)
    return len(sub.tensors) - 1


def with_conv_transpose_bias(src, dst):
    """Every TRANSPOSE_CONV (output_shape, filter, input, bias) becomes Convolution2DTransposeBias
    (input, filter, bias) with TfLiteTransposeConvParams {padding 1 SAME / 2 VALID, stride_w, stride_h}."""
    from ai_edge_litert import schema_py_generated as fb
    model = _model(src)
    code = _custom_code(model, "Convolution2DTransposeBias")
    ops = list(_ops(model, fb.BuiltinOperator.TRANSPOSE_CONV))
    for _, op in ops:
        o = op.builtinOptions
        assert o.fusedActivationFunction == 0 and len(op.inputs) == 4
        raw = struct.pack("<3i", o.padding + 1, o.strideW, o.strideH)
        _make_custom(op, code, raw, [op.inputs[2], op.inputs[1], op.inputs[3]], op.outputs)
    assert ops
    return _save(model, dst)


def with_argmax_unpooling(src, dst, pool=True):
    """MAX_POOL_2D -> MaxPoolingWithArgmax2D (a second output: the indices) and RESIZE_NEAREST_NEIGHBOR
    -> MaxUnpooling2D (values, indices), options TfLitePoolParams {padding 2 VALID, strides, filter,
    activation}. pool=False leaves the pool and feeds the unpooling's indices from a new graph input."""
    from ai_edge_litert import schema_py_generated as fb
    model = _model(src)
    sub = model.subgraphs[0]
    params = struct.pack("<6i", 2, 2, 2, 2, 2, 0)
    (_, mp), = _ops(model, fb.BuiltinOperator.MAX_POOL_2D)
    (_, rs), = _ops(model, fb.BuiltinOperator.RESIZE_NEAREST_NEIGHBOR)
    indices = _tensor(sub, mp.outputs[0], "argmax_indices", fb.TensorType.FLOAT32)
    if pool:
        _make_custom(mp, _custom_code(model, "MaxPoolingWithArgmax2D"), params, mp.inputs, [mp.outputs[0], indices])
    else:
        sub.inputs = [*sub.inputs, indices]
    _make_custom(rs, _custom_code(model, "MaxUnpooling2D"), params, [rs.inputs[0], indices], rs.outputs)
    return _save(model, dst)
