"""ONNX ops that source models bring and mace computes through others.

DepthToSpace and SpaceToDepth (TFLite's DEPTH_TO_SPACE / SPACE_TO_DEPTH, PixelShuffle in
PyTorch) are a Reshape, a 6-D Transpose and a Reshape, which both runtimes run; the channel,
height and width must be static (onnx shape inference gives them for the models tried).
"""
from __future__ import annotations

import numpy as np

from mace.errors import ConversionError


def _attr(node, name, default=None):
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _static_shapes(model) -> dict[str, list[int]]:
    import onnx
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - inference is a help here, not a requirement
        return {}
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        out[vi.name] = [d.dim_value if d.HasField("dim_value") else 0 for d in dims]
    return out


def _plan(node, shape: list[int]):
    """(first reshape, perm, last reshape) for a DepthToSpace / SpaceToDepth on an NCHW shape;
    0 in a reshape keeps the batch dimension as it is."""
    b = int(_attr(node, "blocksize"))
    _, c, h, w = shape
    if node.op_type == "SpaceToDepth":
        return [0, c, h // b, b, w // b, b], [0, 3, 5, 1, 2, 4], [0, c * b * b, h // b, w // b]
    mode = _attr(node, "mode", b"DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode == "CRD":
        return [0, c // (b * b), b, b, h, w], [0, 1, 4, 2, 5, 3], [0, c // (b * b), h * b, w * b]
    return [0, b, b, c // (b * b), h, w], [0, 3, 4, 1, 5, 2], [0, c // (b * b), h * b, w * b]


def expand_depth_space(model, source) -> int:
    """Replace DepthToSpace/SpaceToDepth nodes in place; returns how many."""
    from onnx import helper, numpy_helper
    g = model.graph
    targets = [n for n in g.node if n.op_type in ("DepthToSpace", "SpaceToDepth")]
    if not targets:
        return 0
    shapes = _static_shapes(model)
    nodes = []
    for n in g.node:
        if n not in targets:
            nodes.append(n)
            continue
        shape = shapes.get(n.input[0], [])
        if len(shape) != 4 or not all(shape[1:]):
            raise ConversionError(f"{source}: node {n.name}: {n.op_type} needs a static channel, height and "
                                  f"width (got {shape or 'unknown'}): set static input_shapes")
        first, p, last = _plan(n, shape)
        stem = n.name or n.output[0]
        c1, c2 = f"{stem}__shape6", f"{stem}__shape4"
        g.initializer.extend([numpy_helper.from_array(np.array(first, np.int64), c1),
                              numpy_helper.from_array(np.array(last, np.int64), c2)])
        nodes += [helper.make_node("Reshape", [n.input[0], c1], [f"{stem}__6d"], name=f"{stem}__reshape6"),
                  helper.make_node("Transpose", [f"{stem}__6d"], [f"{stem}__moved"], perm=p,
                                   name=f"{stem}__transpose"),
                  helper.make_node("Reshape", [f"{stem}__moved", c2], [n.output[0]], name=stem)]
    del g.node[:]
    g.node.extend(nodes)
    return len(targets)
