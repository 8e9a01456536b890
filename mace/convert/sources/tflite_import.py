"""tf2onnx's TFLite frontend, called with its `dequantize` switch (which its from_tflite() does
not expose): an int8 model becomes a float32 graph with float32 constants."""
from __future__ import annotations

import logging

from mace.errors import ConversionError

#: tf2onnx logs every op it maps at INFO and a failure as ERROR: mace reports those itself
for _name in ("tf2onnx", "tensorflow"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def convert(spec, path, inputs: list[str], outputs: list[str], dequantize: bool, opset: int):
    import tensorflow as tf
    from tf2onnx import convert as t2o
    try:
        with tf.device("/cpu:0"):
            model, _ = t2o._convert_common(None, tflite_path=str(path), name="tflite", continue_on_error=True,
                                           opset=opset, input_names=inputs, output_names=outputs,
                                           dequantize=dequantize)
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises ValueError/KeyError/... naming the op
        raise ConversionError(f"{spec.path}: tf2onnx cannot convert it ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    for node in model.graph.node:
        if node.op_type.startswith("TFL_") or node.domain not in ("", "ai.onnx"):
            op = node.op_type.removeprefix("TFL_")
            raise ConversionError(f"{spec.path}: node {node.name}: op {op} is not supported by mace "
                                  f"(no ONNX form for it): replace it in the source model")
    return model
