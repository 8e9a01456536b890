"""Graph optimizations on the IR, each a small function `pass(graph) -> number of changes`."""
from __future__ import annotations

import numpy as np

from mace.convert.fusions import fuse_gelu, fuse_layer_norm
from mace.ir.graph import Graph, Node
from mace.ops.batchnorm import fold_into_conv

FUSABLE_ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Gelu")
ACTIVATION_PRODUCERS = ("Conv", "ConvTranspose", "Gemm", "Add", "Sub", "Mul", "Div", "BatchNormalization")


def _rename_input(graph: Graph, old: str, new: str) -> None:
    for n in graph.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]
    graph.outputs = [new if o == old else o for o in graph.outputs]


def remove_identity(graph: Graph) -> int:
    """Drop Identity and (inference-time) Dropout, rewiring their readers to the input."""
    changed = 0
    for n in list(graph.nodes):
        if n.op_type in ("Identity", "Dropout"):
            src, dst = n.inputs[0], n.outputs[0]
            graph.nodes.remove(n)
            if dst in graph.outputs and src in graph.inputs:
                # keep a copy node so an output never aliases an input
                graph.nodes.append(Node(n.name, "Identity", [src], [dst]))
                continue
            if dst in graph.outputs:
                # the producer of src now writes the graph output name directly
                for p in graph.nodes:
                    p.outputs = [dst if o == src else o for o in p.outputs]
                _rename_input(graph, src, dst)
                graph.shapes[dst] = graph.shapes.get(src, graph.shapes.get(dst))
            else:
                _rename_input(graph, dst, src)
            changed += 1
    return changed


def fold_batchnorm(graph: Graph) -> int:
    """Conv followed by BatchNormalization (Conv output read only by the BN) -> one Conv."""
    changed = 0
    consumers = graph.consumers()
    producers = graph.producers()
    for bn in list(graph.nodes):
        if bn.op_type != "BatchNormalization" or any(i not in graph.weights for i in bn.inputs[1:5]):
            continue
        conv = producers.get(bn.inputs[0])
        if conv is None or conv.op_type != "Conv" or len(consumers.get(bn.inputs[0], [])) != 1 \
                or bn.inputs[0] in graph.outputs or conv.inputs[1] not in graph.weights \
                or conv.attrs.get("activation"):
            continue
        b = graph.weights[conv.inputs[2]] if len(conv.inputs) > 2 and conv.inputs[2] else None
        w, b = fold_into_conv(graph.weights[conv.inputs[1]], b, *(graph.weights[i] for i in bn.inputs[1:5]),
                              bn.attrs.get("epsilon", 1e-5))
        w_name, b_name = conv.inputs[1] + "_bnfold", conv.name + "_bias_bnfold"
        graph.weights[w_name], graph.weights[b_name] = w, b
        graph.shapes[w_name], graph.shapes[b_name] = list(w.shape), [w.shape[0]]
        graph.dtypes[w_name] = graph.dtypes[b_name] = "float32"
        conv.inputs = [conv.inputs[0], w_name, b_name]
        conv.outputs = [bn.outputs[0]]
        graph.nodes.remove(bn)
        changed += 1
    return changed


def _activation_params(node: Node) -> list[float]:
    a = node.attrs
    if node.op_type == "Clip":
        return [a["min"], a["max"]]
    if node.op_type == "LeakyRelu":
        return [float(a.get("alpha", 0.01))]
    if node.op_type == "HardSigmoid":
        return [float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))]
    return []


def _activation_name(node: Node) -> str:
    """The fused activation's name: the op type, GeluTanh for Gelu's tanh approximation."""
    if node.op_type == "Gelu" and node.attrs.get("approximate", "none") == "tanh":
        return "GeluTanh"
    return node.op_type


def fuse_silu(graph: Graph) -> int:
    """x * Sigmoid(x) (SiLU / Swish, as exporters write it) -> activation "Silu" of x's producer,
    when that producer takes a fused activation and x has no other reader: one kernel, not three."""
    changed = 0
    consumers = graph.consumers()
    producers = graph.producers()
    for mul in list(graph.nodes):
        if mul.op_type != "Mul" or len(mul.inputs) != 2 or mul.attrs.get("activation"):
            continue
        for x, s in (mul.inputs, mul.inputs[::-1]):
            sig, prod = producers.get(s), producers.get(x)
            if sig is None or sig.op_type != "Sigmoid" or sig.inputs != [x] or prod is None \
                    or prod.op_type not in ACTIVATION_PRODUCERS or prod.attrs.get("activation") \
                    or len(prod.outputs) != 1 or x in graph.outputs or s in graph.outputs \
                    or {id(n) for n in consumers.get(x, [])} != {id(sig), id(mul)} or len(consumers.get(s, [])) != 1:
                continue
            prod.attrs["activation"], prod.attrs["activation_params"] = "Silu", []
            prod.outputs = [mul.outputs[0]]
            graph.nodes.remove(sig)
            graph.nodes.remove(mul)
            producers[mul.outputs[0]] = prod
            changed += 1
            break
    return changed


def fuse_activations(graph: Graph) -> int:
    """Fold an activation into its producer when the producer's output has no other reader."""
    changed = 0
    consumers = graph.consumers()
    producers = graph.producers()
    for act in list(graph.nodes):
        if act.op_type not in FUSABLE_ACTIVATIONS or len(act.inputs) != 1:
            continue
        src = act.inputs[0]
        prod = producers.get(src)
        if prod is None or prod.op_type not in ACTIVATION_PRODUCERS or prod.attrs.get("activation") \
                or len(consumers.get(src, [])) != 1 or src in graph.outputs or len(prod.outputs) != 1:
            continue
        prod.attrs["activation"] = _activation_name(act)
        prod.attrs["activation_params"] = _activation_params(act)
        prod.outputs = [act.outputs[0]]
        graph.nodes.remove(act)
        producers[act.outputs[0]] = prod
        changed += 1
    return changed


def fuse_hardswish(graph: Graph) -> int:
    """x * HardSigmoid(x, 1/6, 1/2) (as some exporters emit HardSwish) -> HardSwish(x)."""
    changed = 0
    consumers = graph.consumers()
    producers = graph.producers()
    for mul in list(graph.nodes):
        if mul.op_type != "Mul" or len(mul.inputs) != 2:
            continue
        for a, b in (mul.inputs, mul.inputs[::-1]):
            hs = producers.get(b)
            if hs is not None and hs.op_type == "HardSigmoid" and hs.inputs[0] == a \
                    and abs(hs.attrs.get("alpha", 0.2) - 1 / 6) < 1e-6 and abs(hs.attrs.get("beta", 0.5) - 0.5) < 1e-6 \
                    and len(consumers.get(b, [])) == 1:
                graph.nodes.remove(hs)
                mul.op_type, mul.inputs, mul.attrs = "HardSwish", [a], {}
                changed += 1
                break
    return changed


def fuse_residual_add(graph: Graph) -> int:
    """Conv -> Add(conv_out, r) -> one Conv with a 4th input r and attr `residual: 1`:
    y = act(conv(x) + bias + r). Only where the conv output's one reader is the Add (and it is
    not a graph output), r is a runtime float tensor of exactly the conv output's shape (no
    broadcasting, not a weight), and the conv has no fused activation yet; the Add's activation
    (fused earlier by fuse_activations) moves to the conv. A missing bias becomes a zero weight.
    The conv moves to the Add's place in the node order (r may be produced after the conv)."""
    changed = 0
    consumers = graph.consumers()
    producers = graph.producers()
    for add in list(graph.nodes):
        if add.op_type != "Add" or len(add.inputs) != 2 or len(add.outputs) != 1:
            continue
        out_shape = graph.shapes.get(add.outputs[0])
        for src, res in (add.inputs, add.inputs[::-1]):
            conv = producers.get(src)
            if conv is None or conv.op_type != "Conv" or len(conv.outputs) != 1 or src == res \
                    or conv.attrs.get("activation") or conv.attrs.get("residual") \
                    or len(consumers.get(src, [])) != 1 or src in graph.outputs \
                    or len(conv.inputs) < 2 or conv.inputs[1] not in graph.weights \
                    or (len(conv.inputs) > 2 and conv.inputs[2] and conv.inputs[2] not in graph.weights) \
                    or not res or res in graph.weights or res not in graph.shapes \
                    or graph.dtypes.get(res, "float32") != "float32" \
                    or graph.dtypes.get(src, "float32") != "float32" \
                    or list(graph.shapes[res]) != list(graph.shapes[src]) or list(graph.shapes[src]) != list(out_shape):
                continue
            if len(conv.inputs) < 3 or not conv.inputs[2]:
                m = int(np.asarray(graph.weights[conv.inputs[1]]).shape[0])
                b_name = conv.name + "_bias_zero"
                graph.weights[b_name] = np.zeros(m, np.float32)
                graph.shapes[b_name], graph.dtypes[b_name] = [m], "float32"
                conv.inputs = conv.inputs[:2] + [b_name]
            conv.inputs = conv.inputs[:3] + [res]
            conv.attrs["residual"] = 1
            if add.attrs.get("activation"):
                conv.attrs["activation"] = add.attrs["activation"]
                conv.attrs["activation_params"] = list(add.attrs.get("activation_params", []))
            conv.outputs = [add.outputs[0]]
            # the conv takes the Add's place: every input (r included) is ready there
            graph.nodes.remove(conv)
            graph.nodes[graph.nodes.index(add)] = conv
            producers[add.outputs[0]] = conv
            del producers[src]
            changed += 1
            break
    return changed


def remove_dead(graph: Graph) -> int:
    """Remove nodes whose outputs nobody reads, and weights nobody uses."""
    before = len(graph.nodes)
    live = set(graph.outputs)
    kept = []
    for n in reversed(graph.nodes):
        if any(o in live for o in n.outputs if o):
            kept.append(n)
            live.update(i for i in n.inputs if i)
    graph.nodes = list(reversed(kept))
    for k in [k for k in graph.weights if k not in live]:
        del graph.weights[k]
    return before - len(graph.nodes)


def choose_layout(graph: Graph) -> None:
    """Both runtimes use dense NCHW buffers; GPU op modules re-lay weights at engine init
    (e.g. blocked output channels) so the file stays runtime-neutral."""
    graph.meta["layout"] = "NCHW"


PIPELINE = (remove_identity, fold_batchnorm, fuse_layer_norm, fuse_gelu, fuse_hardswish, fuse_silu,
            fuse_activations, fuse_residual_add, remove_dead)


def optimize(graph: Graph) -> dict[str, int]:
    stats = {p.__name__: p(graph) for p in PIPELINE}
    choose_layout(graph)
    return stats
