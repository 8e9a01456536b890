"""QuantizeLinear -> DequantizeLinear on run-time values -> one float op, FakeQuantize:
y = (clip(rint(x / scale) + zero_point, qmin, qmax) - zero_point) * scale.

After `mace.quantize.lower`, integer values exist only between such pairs; this pass (on the IR,
after the frontend) removes them, so every run-time value is float32 again. Attributes of
FakeQuantize: scale, zero_point (numbers, or lists along `axis`), qmin, qmax, and dq_scale /
dq_zero_point when the dequantization uses other parameters than the quantization.
"""
from __future__ import annotations

import numpy as np

from mace.errors import ConversionError
from mace.ir.graph import Graph, Node
from mace.ir.quantized import RANGES


def _param(graph: Graph, name: str, what: str, node: Node, source: str):
    if not name:
        return 0
    if name not in graph.weights:
        raise ConversionError(f"{source}: node {node.name} ({node.op_type}): its {what} is computed at run time, "
                              f"mace reads it only as a constant: quantize the model statically")
    v = np.asarray(graph.weights[name])
    return v.reshape(()).item() if v.size == 1 else v.reshape(-1).tolist()


def _attrs(graph: Graph, q: Node, dq: Node, source: str) -> dict:
    zp_name = q.inputs[2] if len(q.inputs) > 2 else ""
    dtype = np.asarray(graph.weights[zp_name]).dtype.name if zp_name in graph.weights else "uint8"
    qmin, qmax = RANGES[dtype]
    scale = _param(graph, q.inputs[1], "scale", q, source)
    zp = _param(graph, zp_name, "zero point", q, source)
    attrs = {"scale": scale, "zero_point": zp, "qmin": qmin, "qmax": qmax}
    if isinstance(scale, list) or isinstance(zp, list):
        attrs["axis"] = int(q.attrs.get("axis", 1))
    dq_scale = _param(graph, dq.inputs[1], "scale", dq, source)
    dq_zp = _param(graph, dq.inputs[2] if len(dq.inputs) > 2 else "", "zero point", dq, source)
    if dq_scale != scale or dq_zp != zp:
        attrs["dq_scale"], attrs["dq_zero_point"] = dq_scale, dq_zp
    return attrs


def fuse(graph: Graph, source: str = "<onnx>") -> int:
    """Replace each QuantizeLinear and its DequantizeLinear readers by FakeQuantize nodes
    (one per distinct dequantization); refuse integer values anything else reads."""
    consumers = graph.consumers()
    changed = 0
    for q in [n for n in graph.nodes if n.op_type == "QuantizeLinear"]:
        out = q.outputs[0]
        readers = consumers.get(out, [])
        if out in graph.outputs:
            raise ConversionError(f"{source}: output {out} is quantized (an integer tensor): mace returns float "
                                  f"outputs; end the model with a DequantizeLinear")
        bad = [r for r in readers if r.op_type != "DequantizeLinear"]
        if bad:
            raise ConversionError(f"{source}: node {bad[0].name} ({bad[0].op_type}) reads the quantized value {out}, "
                                  f"which mace computes only as float: quantize the model in QDQ format")
        at = graph.nodes.index(q)
        graph.nodes.remove(q)
        made: list[Node] = []
        for dq in readers:
            attrs = _attrs(graph, q, dq, source)
            same = next((m for m in made if m.attrs == attrs), None)
            graph.nodes.remove(dq)
            if same is not None and dq.outputs[0] not in graph.outputs:
                _rename(graph, dq.outputs[0], same.outputs[0])
                continue
            node = Node(dq.name or f"{q.name}_fq", "FakeQuantize", [q.inputs[0]], [dq.outputs[0]], attrs)
            made.append(node)
        graph.nodes[at:at] = made
        graph.dtypes.pop(out, None)
        graph.shapes.pop(out, None)
        changed += 1
    for dq in graph.nodes:
        if dq.op_type == "DequantizeLinear":
            raise ConversionError(f"{source}: node {dq.name} (DequantizeLinear) reads {dq.inputs[0]}, an integer "
                                  f"input or a value mace does not compute: give the model float inputs")
    return changed


def _rename(graph: Graph, old: str, new: str) -> None:
    for n in graph.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]

