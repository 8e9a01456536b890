"""ONNX frontend: ONNX model -> IR Graph with static shapes and constant inputs folded away.

Steps: fix the input shapes (from mace.yml or the model), fold every node whose inputs are
constant (ONNX's reference evaluator computes it, so PyTorch's Shape/Gather/Unsqueeze/Concat/
ConstantOfShape/Slice/Cast chains that compute "same" padding disappear), turn `Shape` of a
static tensor into a constant, run ONNX shape inference, then normalize attributes so kernels
see one form (documented in `normalize.py`).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mace import fileio
from mace.errors import ConversionError
from mace.ir.graph import Graph, Node

log = logging.getLogger("mace.convert")

_NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
               "Bernoulli"}
#: a value larger than this (4 GiB of float32) cannot be a mobile model's tensor: refused at
#: conversion with its size rather than failing with MemoryError at run time
MAX_ELEMENTS = 1 << 30


def load_onnx(path) -> "onnx.ModelProto":  # noqa: F821
    import onnx
    path = Path(path)
    if not path.exists():
        raise ConversionError(f"{path}: no such ONNX file")
    fileio.check_readable(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and others for a broken file
        raise ConversionError(f"{path}: not a readable ONNX model ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'parse error'}): re-export it") from None
    if not model.graph.node:
        raise ConversionError(f"{path}: the ONNX graph has no nodes: re-export it")
    return model


def _attr_dict(node) -> dict:
    from onnx import helper
    out = {}
    for a in node.attribute:
        if a.type == a.SPARSE_TENSOR or a.type == a.SPARSE_TENSORS:
            raise ConversionError(f"node {node.name or node.op_type}: attribute {a.name} is a sparse tensor, "
                                  f"which mace does not read: re-export the model with dense constants")
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = _text(v, node, a.name)
        elif isinstance(v, (list, tuple)):
            v = [_text(x, node, a.name) if isinstance(x, bytes) else x for x in v]
        elif hasattr(v, "dims"):  # TensorProto attribute (e.g. ConstantOfShape value)
            v = _tensor(v, f"node {node.name or node.op_type} attribute {a.name}")
        out[a.name] = v
    return out


def _text(b: bytes, node, attr: str) -> str:
    try:
        return b.decode()
    except UnicodeDecodeError:
        raise ConversionError(f"node {node.name or node.op_type}: attribute {attr} is not UTF-8 text: "
                              f"re-export the model") from None


def _tensor(t, what: str) -> np.ndarray:
    """numpy_helper.to_array with a ConversionError for a malformed tensor (data that does not
    match its dims or type, external data that is missing)."""
    from onnx import numpy_helper
    count = 1
    for d in t.dims:
        count *= d
    if any(d < 0 for d in t.dims) or count > MAX_ELEMENTS:
        raise ConversionError(f"{what}: dims {list(t.dims)} are negative or too large: re-export the model")
    try:
        return np.asarray(numpy_helper.to_array(t))
    except Exception as exc:  # noqa: BLE001 - onnx raises ValueError, TypeError, KeyError, OSError...
        raise ConversionError(f"{what} ({t.name or 'unnamed'}): malformed tensor ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:120] if str(exc) else ''}): re-export the model") from None


def _constant(node, attrs: dict, source: str) -> np.ndarray:
    """The value of a Constant node, whichever of its value attributes it uses."""
    if len(attrs) != 1:
        raise ConversionError(f"{source}: Constant node {node.name or node.output[0]} has {len(attrs)} value attributes, "
                              f"not one: re-export the model")
    return np.asarray(next(iter(attrs.values())))


def _eval_node(node, inputs: list, opset: int) -> list[np.ndarray]:
    """Evaluate one node on constant inputs with onnx's reference evaluator."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    names = [f"i{k}" if n else "" for k, n in enumerate(node.input)]
    n2 = helper.make_node(node.op_type, names, [f"o{k}" for k in range(len(node.output))],
                          domain=node.domain)
    n2.attribute.extend(node.attribute)
    g = helper.make_graph([n2], "fold", [], [helper.make_value_info(f"o{k}", helper.TypeProto())
                                             for k in range(len(node.output))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    ev = ReferenceEvaluator(m)
    feeds = {nm: v for nm, v in zip(names, inputs) if nm}
    return [np.asarray(x) for x in ev.run(None, feeds)]


def to_graph(model, input_shapes: dict[str, list[int]] | None = None, source: str = "<onnx>") -> Graph:
    """Fold constants and produce an IR graph (shapes filled by `infer_shapes`)."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    g = model.graph
    consts: dict[str, np.ndarray] = {i.name: _tensor(i, f"{source}: initializer") for i in g.initializer}
    _check_wiring(g, source)
    graph_inputs = [i for i in g.input if i.name not in consts]
    shapes, dtypes = _input_shapes(graph_inputs, dict(input_shapes or {}), source)
    nodes = []
    for node in g.node:
        try:
            attrs = _attr_dict(node)
        except ConversionError as exc:
            raise ConversionError(f"{source}: {exc}") from None
        if node.op_type == "Constant":
            consts[node.output[0]] = _constant(node, attrs, source)
            continue
        nodes.append(node)
    nodes = _fold(model, nodes, consts, shapes, dtypes, graph_inputs, opset, source)
    for v, dims in shapes.items():
        _check_size(v, dims, source, "value")
    for node in nodes:
        _check_params(node, consts, shapes, source)
    return _ir_graph(model, nodes, consts, shapes, dtypes, graph_inputs, opset)


def _input_shapes(graph_inputs, input_shapes: dict, source: str) -> tuple[dict, dict]:
    """Static shapes (the model's, else mace.yml's, else 1 for a dynamic dimension) and element
    types of the graph inputs."""
    import onnx
    shapes: dict[str, list[int]] = {}
    dtypes: dict[str, str] = {}
    for i in graph_inputs:
        if i.type.WhichOneof("value") not in (None, "tensor_type"):
            raise ConversionError(f"{source}: input {i.name} is a {i.type.WhichOneof('value').replace('_type', '')}, "
                                  f"mace reads only tensors: export the model with tensor inputs")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in i.type.tensor_type.shape.dim]
        if i.name in input_shapes:
            want = list(input_shapes[i.name])
            if len(want) != len(dims) or any(d > 0 and d != w for d, w in zip(dims, want)):
                raise ConversionError(f"{source}: input {i.name} has shape {dims} in the model, the given "
                                      f"shape is {want}: fix input_shapes in mace.yml (or --input-shape)")
            dims = want
        if any(d <= 0 for d in dims):
            dims = [1 if d <= 0 else d for d in dims]
            log.info("input %s has dynamic dimensions: using %s (set input_shapes to choose)", i.name, dims)
        shapes[i.name] = dims
        _check_size(i.name, dims, source, "input")
        et = i.type.tensor_type.elem_type
        try:
            dtypes[i.name] = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(et)).name if et else "float32"
        except (KeyError, TypeError, ValueError):
            raise ConversionError(f"{source}: input {i.name} has element type {et}, unknown to onnx: "
                                  f"re-export the model") from None
    unknown_inputs = set(input_shapes) - {i.name for i in graph_inputs}
    if unknown_inputs:
        raise ConversionError(f"{source}: the model has no input named {', '.join(sorted(unknown_inputs))}: "
                              f"its inputs are {', '.join(i.name for i in graph_inputs)}")
    return shapes, dtypes


def _fold(model, nodes, consts, shapes, dtypes, graph_inputs, opset, source) -> list:
    """Fold constants and static Shape/Size ops until nothing changes; shapes of runtime values
    come from onnx inference. Returns the nodes left to run."""
    changed = True
    while changed:
        changed = False
        shapes.update(_infer(model, nodes, consts, shapes, dtypes, graph_inputs, opset))
        rest = []
        for node in nodes:
            value = _static_value(node, shapes)
            if value is not None:
                consts[node.output[0]] = value
                changed = True
                continue
            if node.op_type not in _NEVER_FOLD and all((not i) or i in consts for i in node.input) and node.input:
                try:
                    outs = _eval_node(node, [consts.get(i) for i in node.input], opset)
                except Exception as exc:
                    raise ConversionError(f"{source}: cannot fold constant node {node.name or node.op_type} "
                                          f"({node.op_type}): {exc}") from None
                for name, val in zip(node.output, outs):
                    consts[name] = val
                changed = True
                continue
            rest.append(node)
        nodes = rest
    return nodes


def _static_value(node, shapes) -> np.ndarray | None:
    """The value of a Shape or Size node whose input has a static shape, else None."""
    if node.op_type == "Shape" and node.input[0] in shapes and all(d > 0 for d in shapes[node.input[0]]):
        a = _attr_dict(node)
        return np.array(shapes[node.input[0]], dtype=np.int64)[a.get("start", 0):a.get("end", None)]
    if node.op_type == "Size" and node.input[0] in shapes:
        return np.array(int(np.prod(shapes[node.input[0]], dtype=np.int64)), dtype=np.int64)
    return None


def _ir_graph(model, nodes, consts, shapes, dtypes, graph_inputs, opset) -> Graph:
    g = model.graph
    ir_nodes = [Node(name=node.name or f"{node.op_type}_{k}", op_type=node.op_type, inputs=list(node.input),
                     outputs=list(node.output), attrs=_attr_dict(node)) for k, node in enumerate(nodes)]
    used = {i for n in ir_nodes for i in n.inputs if i}
    outputs = [o.name for o in g.output]
    weights = {k: v for k, v in consts.items() if k in used or k in outputs}
    graph = Graph(name=g.name or "model", nodes=ir_nodes, inputs=[i.name for i in graph_inputs],
                  outputs=outputs, shapes={}, dtypes={}, weights=weights,
                  meta={"opset": opset, "producer": f"{model.producer_name} {model.producer_version}".strip()})
    for v in list(shapes):
        graph.shapes[v] = list(shapes[v])
    graph.dtypes.update(dtypes)
    for k, v in weights.items():
        graph.shapes[k] = list(v.shape)
        graph.dtypes[k] = v.dtype.name
    return graph


def _check_size(name: str, dims, source: str, what: str) -> None:
    count = 1
    for d in dims:
        count *= max(int(d), 1)
    if count > MAX_ELEMENTS:
        raise ConversionError(f"{source}: {what} {name} has shape {list(dims)}, {count} elements "
                              f"({count * 4 / 2**30:.0f} GiB as float32), more than mace allows "
                              f"({MAX_ELEMENTS}): set smaller input_shapes")


def _check_params(node, consts: dict, shapes: dict, source: str) -> None:
    """Parameters whose shapes ONNX shape inference does not check, but kernels rely on: Conv
    weights matching the input's channels, a Conv bias of M values, a Gemm C that broadcasts to the output, BatchNormalization's four vectors
    of C values."""
    ins = list(node.input)
    what = f"{source}: node {node.name or node.op_type} ({node.op_type})"

    def shape(name):
        return list(consts[name].shape) if name in consts else shapes.get(name)
    if node.op_type == "Conv" and len(ins) > 2 and ins[2] and shape(ins[1]) and shape(ins[2]) is not None:
        m, b = shape(ins[1])[0], shape(ins[2])
        if b != [m]:
            raise ConversionError(f"{what}: bias has shape {b}, the weights have {m} output channels: "
                                  f"re-export the model")
    if node.op_type == "Conv" and len(ins) > 1 and shape(ins[0]) and shape(ins[1]):
        group = next((a.i for a in node.attribute if a.name == "group"), 1) or 1
        x, w = shape(ins[0]), shape(ins[1])
        if len(x) < 2 or len(w) < 2 or w[1] * group != x[1]:
            raise ConversionError(f"{what}: the input {x} has {x[1] if len(x) > 1 else '?'} channels, the "
                                  f"weights {w} with group {group} expect {w[1] * group if len(w) > 1 else '?'}: "
                                  f"re-export the model or fix input_shapes")
    out = shapes.get(node.output[0]) if node.output else None
    if node.op_type == "Gemm" and len(ins) > 2 and ins[2] and out and shape(ins[2]) is not None:
        try:
            ok = list(np.broadcast_shapes(tuple(shape(ins[2])), tuple(out))) == list(out)
        except ValueError:
            ok = False
        if not ok:
            raise ConversionError(f"{what}: C has shape {shape(ins[2])}, which does not broadcast to the "
                                  f"output {out}: re-export the model")
    if node.op_type == "BatchNormalization" and ins and len(shapes.get(ins[0], [])) >= 2:
        c = shapes[ins[0]][1]
        for name in ins[1:5]:
            if shape(name) is not None and shape(name) != [c]:
                raise ConversionError(f"{what}: {name} has shape {shape(name)}, the input has {c} channels: "
                                      f"re-export the model")


def _check_wiring(g, source: str) -> None:
    """Every value has one producer (a node, an initializer or a graph input), as onnxruntime
    requires: with two, which one a consumer sees would depend on the order of the nodes. And
    every node input is produced before the node (ONNX graphs are topologically sorted)."""
    seen = {i.name: "an initializer" for i in g.initializer}
    seen.update({i.name: "a graph input" for i in g.input if i.name not in seen})
    for node in g.node:
        for i in node.input:
            if i and i not in seen:
                raise ConversionError(f"{source}: node {node.name or node.op_type} reads {i}, which no earlier "
                                      f"node, initializer or graph input produces: re-export the model")
        for o in node.output:
            if not o:
                continue
            if o in seen:
                raise ConversionError(f"{source}: {o} is produced by node {node.name or node.op_type} and "
                                      f"by {seen[o]}: every tensor needs one producer; re-export the model")
            seen[o] = f"node {node.name or node.op_type}"


def _infer(model, nodes, consts, shapes, dtypes, graph_inputs, opset) -> dict[str, list[int]]:
    """Static shapes of every runtime value via onnx shape inference (with data propagation)."""
    import onnx
    from onnx import helper, numpy_helper
    inputs = [helper.make_tensor_value_info(i.name, i.type.tensor_type.elem_type or onnx.TensorProto.FLOAT,
                                            shapes[i.name]) for i in graph_inputs]
    used = {i for n in nodes for i in n.input}
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items() if k in used]
    g = helper.make_graph(list(nodes), "infer", inputs, [], initializer=inits)
    m = helper.make_model(g, opset_imports=list(model.opset_import))
    m.ir_version = model.ir_version
    try:
        inferred = onnx.shape_inference.infer_shapes(m, data_prop=True)
    except Exception as exc:
        log.debug("onnx shape inference failed: %s", exc)
        return {}
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        if all(d >= 0 for d in dims):
            out[vi.name] = dims
            if t.elem_type:
                dtypes[vi.name] = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name
    return out
