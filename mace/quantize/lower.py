"""Quantized ONNX (QDQ or QOperator, as onnxruntime's quantize_static writes them) -> float ONNX
ops between QuantizeLinear / DequantizeLinear pairs, before the frontend folds and infers shapes.

- A QOperator node (QLinearConv, QLinearMatMul, MatMulInteger, ConvInteger, QGemm, QLinearAdd,
  QLinearMul, QLinearConcat, QLinear*Pool, QLinearSigmoid, QLinearLeakyRelu, QLinearSoftmax)
  becomes DequantizeLinear on each quantized input, the float op, and QuantizeLinear on its output
  (its int32 bias a DequantizeLinear with scale x_scale * w_scale).
- A layout op that reads a quantized value (MaxPool, Reshape, Transpose...) reads it
  dequantized and its output is quantized again with the same parameters: on the quantization
  grid, so the values are the same.
- DequantizeLinear of a constant (weights, biases) is computed here; int8/uint8 weights are
  recorded, so the model file stores them as 8-bit integers (`mace.quantize.storage`).
What is left, QuantizeLinear -> DequantizeLinear on run-time values, becomes one float op,
FakeQuantize (`mace.quantize.fakequant`), after the frontend.
"""
from __future__ import annotations

import numpy as np

from mace.errors import ConversionError
from mace.ir.quantized import RANGES, dequantize

#: QOperator op -> (float op, quantized inputs as (value, scale, zero point) indices,
#: output (scale, zero point) indices or None, int32 bias index or None)
_QOPS = {
    "QLinearConv": ("Conv", [(0, 1, 2), (3, 4, 5)], (6, 7), 8),
    "QLinearMatMul": ("MatMul", [(0, 1, 2), (3, 4, 5)], (6, 7), None),
    "MatMulInteger": ("MatMul", [(0, None, 2), (1, None, 3)], None, None),
    "ConvInteger": ("Conv", [(0, None, 2), (1, None, 3)], None, None),
    "QGemm": ("Gemm", [(0, 1, 2), (3, 4, 5)], (7, 8), 6),
    "QLinearAdd": ("Add", [(0, 1, 2), (3, 4, 5)], (6, 7), None),
    "QLinearMul": ("Mul", [(0, 1, 2), (3, 4, 5)], (6, 7), None),
    "QLinearGlobalAveragePool": ("GlobalAveragePool", [(0, 1, 2)], (3, 4), None),
    "QLinearAveragePool": ("AveragePool", [(0, 1, 2)], (3, 4), None),
    "QLinearSigmoid": ("Sigmoid", [(0, 1, 2)], (3, 4), None),
    "QLinearLeakyRelu": ("LeakyRelu", [(0, 1, 2)], (3, 4), None),
    "QLinearSoftmax": ("Softmax", [(0, 1, 2)], (3, 4), None),
}
#: ops that move quantized values without arithmetic: exact on dequantized values
_LAYOUT = {"MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Split", "Concat",
           "Identity", "Resize", "DepthToSpace", "SpaceToDepth", "Pad", "Gather", "Expand", "Tile"}
_DROP_ATTRS = {"channels_last", "opset"}


class _Lowering:
    def __init__(self, model, source: str):
        from onnx import numpy_helper
        self.source, self.model = source, model
        g = model.graph
        self.consts = {i.name: np.asarray(numpy_helper.to_array(i)) for i in g.initializer}
        self.new_consts: dict[str, np.ndarray] = {}
        self.qparams: dict[str, tuple[str, str]] = {}  # quantized run-time value -> (scale, zero point)
        self.int_values: set[str] = set()  # int32 results of MatMulInteger / ConvInteger, computed in float
        self.nodes: list = []
        self.weights: dict[str, dict] = {}
        self._n = 0

    def fail(self, node, why: str) -> ConversionError:
        return ConversionError(f"{self.source}: node {node.name or node.op_type} ({node.op_type}): {why}")

    def fresh(self, base: str) -> str:
        self._n += 1
        return f"{base}__q{self._n}"

    def const(self, base: str, value) -> str:
        name = self.fresh(base)
        self.new_consts[name] = np.asarray(value)
        return name

    def value(self, name: str):
        return self.consts.get(name, self.new_consts.get(name))

    def emit(self, op_type, inputs, outputs, name="", **attrs):
        from onnx import helper
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name or self.fresh(op_type), **attrs))

    def dq(self, x: str, scale: str, zp: str, axis: int | None = None) -> str:
        out = self.fresh(x + "_dq")
        kw = {"axis": axis} if axis is not None else {}
        self.emit("DequantizeLinear", [x, scale, zp] if zp else [x, scale], [out], **kw)
        return out

    def qoperator(self, node, attrs: dict) -> None:
        op, qins, qout, bias = _QOPS[node.op_type]
        ins = list(node.input)
        get = lambda i: ins[i] if i < len(ins) else ""  # noqa: E731
        floats = []
        for k, (v, s, z) in enumerate(qins):
            scale = get(s) if s is not None else self.const("one", np.float32(1.0))
            if not scale:
                raise self.fail(node, f"input {k} has no scale: re-export the model")
            axis = None
            sv = self.value(scale)
            if sv is not None and sv.size > 1:  # per-channel weights: along the output channels
                axis = 1 if op in ("MatMul",) or (op == "Gemm" and not attrs.get("transB", 0)) else 0
            floats.append(self.dq(get(v), scale, get(z), axis))
        if bias is not None and get(bias):
            floats.append(self.dq(get(bias), self._bias_scale(node, ins, qins), "", 0))
        out = node.output[0]
        float_out = self.fresh(out + "_f") if qout else out
        attrs = {k: v for k, v in attrs.items() if k not in _DROP_ATTRS}
        if node.op_type == "QLinearSoftmax":
            attrs = {"axis": attrs.get("axis", -1)}
        self.emit(op, floats, [float_out], name=node.name, **attrs)
        if qout:
            self.emit("QuantizeLinear", [float_out, get(qout[0]), get(qout[1])], [out])
            self.qparams[out] = (get(qout[0]), get(qout[1]))
        else:
            self.int_values.add(out)

    def _bias_scale(self, node, ins, qins) -> str:
        sa, sb = (self.value(ins[qins[0][1]]), self.value(ins[qins[1][1]]))
        if sa is None or sb is None:
            raise self.fail(node, "the scales of a quantized bias must be constants: re-export the model")
        return self.const(node.output[0] + "_bias_scale", (sa.astype(np.float32) * sb.astype(np.float32)).reshape(-1))

    def concat(self, node, attrs: dict) -> None:
        ins = list(node.input)
        floats = [self.dq(ins[k], ins[k + 1], ins[k + 2]) for k in range(2, len(ins), 3)]
        f = self.fresh(node.output[0] + "_f")
        self.emit("Concat", floats, [f], name=node.name, axis=attrs["axis"])
        self.emit("QuantizeLinear", [f, ins[0], ins[1]], [node.output[0]])
        self.qparams[node.output[0]] = (ins[0], ins[1])

    def layout(self, node) -> None:
        """A layout op on quantized values: dequantize its inputs, quantize its outputs alike."""
        from onnx import helper
        first = next(i for i in node.input if i in self.qparams)
        scale, zp = self.qparams[first]
        ins = [self.dq(i, *self.qparams[i]) if i in self.qparams else i for i in node.input]
        if node.op_type == "Pad" and len(ins) > 2 and ins[2]:  # the pad value, dequantized
            c = self.value(ins[2])
            if c is None:
                raise self.fail(node, "a run-time pad value of a quantized tensor is not supported")
            ins[2] = self.const("pad_value", dequantize(c, self.value(scale), self.value(zp)).reshape(()))
        outs = [self.fresh(o + "_f") if o else "" for o in node.output]
        n2 = helper.make_node(node.op_type, ins, outs, name=node.name, domain=node.domain)
        n2.attribute.extend(node.attribute)
        self.nodes.append(n2)
        for o, f in zip(node.output, outs):
            if o:
                self.emit("QuantizeLinear", [f, scale, zp], [o])
                self.qparams[o] = (scale, zp)

    def run(self) -> None:
        from onnx import helper
        for node in self.model.graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant" and len(attrs) == 1 and "value" in attrs:
                from onnx import numpy_helper
                self.consts[node.output[0]] = np.asarray(numpy_helper.to_array(attrs["value"]))
                self.nodes.append(node)
            elif node.op_type in _QOPS:
                self.qoperator(node, attrs)
            elif node.op_type == "QLinearConcat":
                self.concat(node, attrs)
            elif node.op_type == "QuantizeLinear":
                self._check_q(node, attrs)
                self.nodes.append(node)
                self.qparams[node.output[0]] = (node.input[1], node.input[2] if len(node.input) > 2 else "")
            elif node.op_type in ("DynamicQuantizeLinear", "DynamicQuantizeMatMul"):
                raise self.fail(node, "dynamic quantization (scales computed at run time) is not supported: "
                                      "quantize it statically (onnxruntime's quantize_static) or use `quantize: 1`")
            elif node.op_type.startswith("QLinear") or node.op_type.startswith("QGemm"):
                raise self.fail(node, "this quantized op is not supported: quantize the model in QDQ format "
                                      "(quantize_static(..., quant_format=QuantFormat.QDQ))")
            elif node.op_type == "Cast" and node.input[0] in self.int_values:
                self.emit("Identity", [node.input[0]], list(node.output), name=node.name)
            elif node.op_type in _LAYOUT and any(i in self.qparams for i in node.input):
                self.layout(node)
            else:
                self.nodes.append(node)
        self._fold_constant_dq()

    def _check_q(self, node, attrs: dict) -> None:
        zp = self.value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        dtype = zp.dtype.name if zp is not None else "uint8"
        if dtype not in RANGES or attrs.get("block_size"):
            raise self.fail(node, f"quantization to {dtype}{' in blocks' if attrs.get('block_size') else ''} "
                                  f"is not supported (8-bit and 16-bit integers are): re-quantize the model")

    def _fold_constant_dq(self) -> None:
        from onnx import helper
        kept = []
        for node in self.nodes:
            if node.op_type != "DequantizeLinear" or any(i and self.value(i) is None for i in node.input):
                kept.append(node)
                continue
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("block_size"):
                raise self.fail(node, "blocked quantization is not supported: re-quantize per channel or per tensor")
            q = self.value(node.input[0])
            s = self.value(node.input[1])
            z = self.value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            axis = int(attrs.get("axis", 1)) % max(q.ndim, 1) if s.size > 1 else None
            self.new_consts[node.output[0]] = dequantize(q, s, z, axis)
            if q.dtype.name in ("int8", "uint8") and q.ndim >= 1:
                self.weights[node.output[0]] = {"dtype": q.dtype.name, "axis": axis,
                                                "scale": np.asarray(s, np.float32).reshape(-1).tolist(),
                                                "zero_point": (np.asarray(z).reshape(-1).astype(int).tolist()
                                                               if z is not None else [0])}
        self.nodes = kept

    def proto(self):
        from onnx import helper, numpy_helper
        g = self.model.graph
        used = {i for n in self.nodes for i in n.input} | {o.name for o in g.output}
        inits = [i for i in g.initializer if i.name in used]
        inits += [numpy_helper.from_array(v, k) for k, v in self.new_consts.items() if k in used]
        graph = helper.make_graph(self.nodes, g.name, list(g.input), list(g.output), initializer=inits,
                                  value_info=[])
        opsets = [o for o in self.model.opset_import if o.domain in ("", "ai.onnx")]
        m = helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", 13)],
                              producer_name=self.model.producer_name, producer_version=self.model.producer_version)
        m.ir_version = self.model.ir_version
        return m


def is_quantized(model) -> bool:
    quantized = set(_QOPS) | {"QuantizeLinear", "DequantizeLinear", "QLinearConcat", "DynamicQuantizeLinear"}
    return any(n.op_type in quantized or n.op_type.startswith("QLinear") for n in model.graph.node)


def lower(model, source: str = "<onnx>"):
    """(float-op ONNX model, {weight name: how it was quantized}) for a quantized model; the
    model itself and {} for any other."""
    if not is_quantized(model):
        return model, {}
    low = _Lowering(model, source)
    low.run()
    return low.proto(), low.weights
