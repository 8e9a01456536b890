"""Quantized models: ONNX QDQ / QOperator models lowered to float ops around fake-quantize
nodes (`lower`, `fakequant`), int8 weights in the .mace file (`storage`), and `quantize: 1`
(calibration through onnxruntime's static quantizer: `calibration`, `quantizer`)."""
