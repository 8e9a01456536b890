"""Attribute normalization: one canonical form per op, so kernels never parse ONNX variants.

After this pass (shapes of all values are known):
- Conv / ConvTranspose / MaxPool / AveragePool: kernel_shape, strides, dilations and `pads`
  (begins then ends, one per spatial dim) explicit; auto_pad resolved; group (Conv*),
  ceil_mode / count_include_pad (pools), output_padding (ConvTranspose).
- Reshape / Flatten / Squeeze / Unsqueeze / Identity: only `shape` (the static output shape);
  they alias their input on the GPU.
- Constant inputs that select behaviour become attributes and are dropped from `inputs`: Slice `starts`/`steps`
  per dim (len = rank, the static output `shape` gives the extent), Pad `pads`/`value` (+ `mode`),
  Resize `scales` per dim + the static output `shape` (+ mode, coordinate_transformation_mode,
  nearest_mode), Split `split`,
  ReduceMean `axes` (positive, sorted) + keepdims, Clip `min`/`max`.
- Axes are non-negative: Concat/Split/Softmax `axis`, Transpose `perm`.
- Gemm: alpha, beta, transA, transB explicit.
- Expand: only `shape` (the static output shape). The Reduce* ops: as ReduceMean. LogSoftmax: as
  Softmax. LayerNormalization: non-negative `axis`, `epsilon`. Mod: fmod=1 (float32 values).
"""
from __future__ import annotations

import numpy as np

from mace.errors import ConversionError
from mace.ir.graph import Graph, Node
from mace.ops import conv as conv_rules
from mace.ops import deconv as deconv_rules


def _const(graph: Graph, node: Node, idx: int):
    if len(node.inputs) <= idx or not node.inputs[idx]:
        return None
    name = node.inputs[idx]
    if name not in graph.weights:
        raise ConversionError(f"node {node.name} ({node.op_type}): input {idx} ({name}) must be a constant "
                              f"for mace (it is computed at run time)")
    return np.asarray(graph.weights[name])


def _spatial_pads(node: Node, in_shape, out_shape, kernel, strides, dilations):
    pads = conv_rules.auto_pads(node.attrs.get("auto_pad", "NOTSET"), in_shape[2:], kernel, strides, dilations)
    return pads if pads is not None else list(node.attrs.get("pads", [0] * (2 * len(kernel))))


def normalize(graph: Graph) -> None:
    for node in graph.nodes:
        fn = _RULES.get(node.op_type)
        if fn:
            fn(graph, node)
        node.attrs.pop("auto_pad", None) if node.op_type in ("Conv", "ConvTranspose", "MaxPool", "AveragePool") else None


def _conv(graph, node):
    a = node.attrs
    w = graph.shape(node.inputs[1])
    kernel = list(a.get("kernel_shape", w[2:]))
    nsp = len(kernel)
    a["kernel_shape"] = kernel
    a["strides"] = list(a.get("strides", [1] * nsp))
    a["dilations"] = list(a.get("dilations", [1] * nsp))
    a["group"] = int(a.get("group", 1))
    in_shape, out_shape = graph.shape(node.inputs[0]), graph.shape(node.outputs[0])
    if node.op_type == "ConvTranspose":
        a["output_padding"] = list(a.get("output_padding", [0] * nsp))
        if "output_shape" in a or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            # derive pads from the (static) output shape; one more than the full size is an
            # output_padding (ONNX's pads would be 0 at the begin, -1 at the end)
            a["output_padding"] = _extra_output_padding(node, in_shape, out_shape, kernel, a)
            a["pads"] = deconv_rules.pads_for_output(in_shape[2:], out_shape[2:], kernel, a["strides"], a["dilations"],
                                                     a["output_padding"], a.get("auto_pad"))
            a.pop("output_shape", None)
        else:
            a["pads"] = list(a.get("pads", [0] * (2 * nsp)))
    else:
        a["pads"] = _spatial_pads(node, in_shape, out_shape, kernel, a["strides"], a["dilations"])


def _extra_output_padding(node, in_shape, out_shape, kernel, a) -> list[int]:
    opad = list(a["output_padding"])
    for d in range(len(kernel)):
        full = deconv_rules.full_size(in_shape[2 + d], kernel[d], a["strides"][d], a["dilations"][d], opad[d])
        extra = out_shape[2 + d] - full
        if extra == 1 and a.get("auto_pad", "NOTSET") in ("NOTSET", "SAME_LOWER"):
            opad[d] += 1
        elif extra > 0:
            raise ConversionError(f"node {node.name} (ConvTranspose): output_shape {out_shape[2:]} exceeds the "
                                  f"full output on axis {2 + d} by {extra} (negative pads), which mace does not "
                                  f"compute: give output_padding instead")
    return opad


def _pool(graph, node):
    a = node.attrs
    kernel = list(a["kernel_shape"])
    nsp = len(kernel)
    a["strides"] = list(a.get("strides", [1] * nsp))
    a["dilations"] = list(a.get("dilations", [1] * nsp))
    a["ceil_mode"] = int(a.get("ceil_mode", 0))
    a["count_include_pad"] = int(a.get("count_include_pad", 0))
    a["pads"] = _spatial_pads(node, graph.shape(node.inputs[0]), graph.shape(node.outputs[0]), kernel,
                              a["strides"], a["dilations"])
    if a["ceil_mode"]:
        _check_ceil_mode_shape(graph, node)


def _check_ceil_mode_shape(graph, node):
    """With ceil_mode, a last window that would start inside the end padding is dropped by
    onnxruntime (and PyTorch) but kept by ONNX shape inference: refuse rather than run a model
    whose shapes disagree with the reference."""
    a = node.attrs
    in_shape, out_shape = graph.shape(node.inputs[0]), graph.shape(node.outputs[0])
    nsp = len(a["kernel_shape"])
    for d in range(nsp):
        out = conv_rules.out_size(in_shape[2 + d], a["kernel_shape"][d], a["strides"][d], a["dilations"][d],
                                  a["pads"][d], a["pads"][nsp + d], ceil_mode=True)
        if out != out_shape[2 + d]:
            raise ConversionError(f"node {node.name} ({node.op_type}, ceil_mode=1): its last window starts in "
                                  f"the padding, so ONNX shape inference ({out_shape[2 + d]}) and onnxruntime "
                                  f"({out}) disagree on output dimension {2 + d}: re-export with ceil_mode=0 "
                                  f"or less end padding")


def _axes_attr(graph, node, idx=1, key="axes"):
    v = _const(graph, node, idx)
    if v is not None:
        node.attrs[key] = [int(x) for x in np.atleast_1d(v)]
        node.inputs = node.inputs[:idx]


def _reshape(graph, node):
    node.attrs = {"shape": list(graph.shape(node.outputs[0]))}
    node.inputs = node.inputs[:1]


def _slice(graph, node):
    rank = len(graph.shape(node.inputs[0]))
    in_shape = graph.shape(node.inputs[0])
    if len(node.inputs) > 1:
        starts = _const(graph, node, 1); ends = _const(graph, node, 2)
        axes = _const(graph, node, 3); steps = _const(graph, node, 4)
    else:
        starts, ends = node.attrs.get("starts"), node.attrs.get("ends")
        axes, steps = node.attrs.get("axes"), None
    axes = list(range(len(starts))) if axes is None else [int(x) % rank for x in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    full_start, full_step = [0] * rank, [1] * rank
    for ax, s, st in zip(axes, starts, steps):
        dim = in_shape[ax]
        s = int(s)
        if s < 0:
            s += dim
        s = min(max(s, 0), dim - 1 if st < 0 else dim)
        full_start[ax], full_step[ax] = s, st
    node.attrs = {"starts": full_start, "steps": full_step, "shape": list(graph.shape(node.outputs[0]))}
    node.inputs = node.inputs[:1]


def _pad(graph, node):
    a = node.attrs
    rank = len(graph.shape(node.inputs[0]))
    if len(node.inputs) > 1:
        pads = [int(x) for x in _const(graph, node, 1)]
        value = _const(graph, node, 2)
        axes = _const(graph, node, 3)
        if axes is not None:
            full = [0] * (2 * rank)
            axes = [int(x) % rank for x in axes]
            for k, ax in enumerate(axes):
                full[ax], full[rank + ax] = pads[k], pads[len(axes) + k]
            pads = full
        a["pads"] = pads
        a["value"] = float(value.reshape(-1)[0]) if value is not None and value.size else 0.0
        node.inputs = node.inputs[:1]
    else:
        a["pads"] = list(a["pads"])
        a["value"] = float(a.get("value", 0.0))
    a["mode"] = a.get("mode", "constant")


def _resize(graph, node):
    a = node.attrs
    in_shape, out_shape = graph.shape(node.inputs[0]), graph.shape(node.outputs[0])
    scales = None
    if node.op_type == "Upsample":
        scales = _const(graph, node, 1) if len(node.inputs) > 1 else a.get("scales")
        node.op_type = "Resize"
    else:
        s = _const(graph, node, 2) if len(node.inputs) > 2 else None
        scales = s if s is not None and s.size else None
    if scales is None:
        scales = [o / i for o, i in zip(out_shape, in_shape)]
    a["scales"] = [float(x) for x in scales]
    a["shape"] = list(out_shape)
    a.setdefault("mode", "nearest")
    a.setdefault("coordinate_transformation_mode", "half_pixel")
    a.setdefault("nearest_mode", "round_prefer_floor")
    a.setdefault("cubic_coeff_a", -0.75)
    a.setdefault("exclude_outside", 0)
    node.inputs = node.inputs[:1]


def _split(graph, node):
    a = node.attrs
    rank = len(graph.shape(node.inputs[0]))
    a["axis"] = int(a.get("axis", 0)) % rank
    a["split"] = [graph.shape(o)[a["axis"]] for o in node.outputs]
    a.pop("num_outputs", None)
    node.inputs = node.inputs[:1]


def _reduce(graph, node):
    a = node.attrs
    rank = len(graph.shape(node.inputs[0]))
    if len(node.inputs) > 1:
        _axes_attr(graph, node)
    axes = a.get("axes")
    if not axes:
        axes = [] if a.get("noop_with_empty_axes", 0) else list(range(rank))
    a["axes"] = sorted(int(x) % rank for x in axes)
    a["keepdims"] = int(a.get("keepdims", 1))
    a.pop("noop_with_empty_axes", None)


def _clip(graph, node):
    a = node.attrs
    lo = _const(graph, node, 1) if len(node.inputs) > 1 else None
    hi = _const(graph, node, 2) if len(node.inputs) > 2 else None
    a["min"] = float(lo) if lo is not None else float(a.get("min", -3.4028234663852886e38))
    a["max"] = float(hi) if hi is not None else float(a.get("max", 3.4028234663852886e38))
    node.inputs = node.inputs[:1]


def _axis(graph, node, default=0):
    rank = len(graph.shape(node.inputs[0]))
    node.attrs["axis"] = int(node.attrs.get("axis", default)) % max(rank, 1)


def _concat(graph, node):
    rank = len(graph.shape(node.outputs[0]))
    node.attrs["axis"] = int(node.attrs["axis"]) % rank


def _softmax(graph, node):
    opset = graph.meta.get("opset", 13)
    _axis(graph, node, -1 if opset >= 13 else 1)
    node.attrs["legacy_flatten"] = int(opset < 13)


def _transpose(graph, node):
    rank = len(graph.shape(node.inputs[0]))
    node.attrs["perm"] = [int(p) % rank for p in node.attrs.get("perm", list(reversed(range(rank))))]


def _gemm(graph, node):
    a = node.attrs
    a["alpha"] = float(a.get("alpha", 1.0)); a["beta"] = float(a.get("beta", 1.0))
    a["transA"] = int(a.get("transA", 0)); a["transB"] = int(a.get("transB", 0))


def _expand(graph, node):
    node.attrs = {"shape": list(graph.shape(node.outputs[0]))}
    node.inputs = node.inputs[:1]


def _mod(graph, node):
    if not int(node.attrs.get("fmod", 0)) and graph.dtypes.get(node.outputs[0], "float32") == "float32":
        raise ConversionError(f"node {node.name} (Mod): fmod=0 (integer modulo) on float32 values, which ONNX "
                              f"defines only with fmod=1: export the model with fmod=1")


def _layer_norm(graph, node):
    _axis(graph, node, -1)
    node.attrs["epsilon"] = float(node.attrs.get("epsilon", 1e-5))


def _bn(graph, node):
    node.attrs["epsilon"] = float(node.attrs.get("epsilon", 1e-5))


def _cast(graph, node):
    """Cast / CastLike / EyeLike: the target is the output's type, as a `dtype` name."""
    node.attrs = {**({"k": int(node.attrs.get("k", 0))} if node.op_type == "EyeLike" else {}),
                  "dtype": graph.dtypes.get(node.outputs[0], "float32")}
    node.inputs = node.inputs[:1]


def _const_attr(graph, node, idx: int, key: str, default) -> None:
    """A constant scalar input (TopK's k, CumSum's axis, Trilu's k) becomes attribute `key`."""
    v = _const(graph, node, idx)
    node.attrs[key] = int(np.asarray(v).reshape(-1)[0]) if v is not None else default
    node.inputs = node.inputs[:idx]


def _top_k(graph, node):
    _const_attr(graph, node, 1, "k", node.attrs.get("k"))
    _axis(graph, node, -1)


def _cumulative(graph, node):
    _const_attr(graph, node, 1, "axis", 0)
    _axis(graph, node)


def _trilu(graph, node):
    _const_attr(graph, node, 1, "k", 0)


def _einsum(graph, node):
    node.attrs["equation"] = node.attrs["equation"].replace(" ", "")


_RULES = {
    "Cast": _cast, "CastLike": _cast, "EyeLike": _cast, "TopK": _top_k, "CumSum": _cumulative,
    "CumProd": _cumulative, "Trilu": _trilu, "Einsum": _einsum,
    **{op: _axis for op in ("Gather", "GatherElements", "ArgMax", "ArgMin", "ScatterElements")},
    "Hardmax": lambda graph, node: _axis(graph, node, -1), "LpNormalization": lambda graph, node: _axis(graph, node, -1),
    "Conv": _conv, "ConvTranspose": _conv, "MaxPool": _pool, "AveragePool": _pool,
    "Squeeze": _reshape, "Unsqueeze": _reshape, "Reshape": _reshape, "Flatten": _reshape, "Identity": _reshape, "Slice": _slice, "Pad": _pad,
    "Resize": _resize, "Upsample": _resize, "Split": _split, "ReduceMean": _reduce, "Clip": _clip,
    "Concat": _concat, "Softmax": _softmax, "Transpose": _transpose,
    "Gemm": _gemm, "BatchNormalization": _bn, "Expand": _expand, "Mod": _mod, "LogSoftmax": _softmax,
    "LayerNormalization": _layer_norm,
    **{op: _reduce for op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                              "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")},
}
