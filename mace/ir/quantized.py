"""8-bit weights in the .mace file, and the quantization arithmetic every part shares (ONNX's
QuantizeLinear / DequantizeLinear: round half to even, saturate to the integer type's range).

A float weight that is exactly dequantize(q, scale, zero point) is stored as q (int8 or uint8), its
parameters in the header's meta.quantized_weights ({name: {dtype, scale: [...], zero_point: [...],
axis}}); the loader dequantizes it again with the same float32 operations, so the weights a
runtime sees are bit for bit those of the conversion."""
from __future__ import annotations

import numpy as np

#: integer element type -> (qmin, qmax)
RANGES = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767),
          "int32": (-(2 ** 31), 2 ** 31 - 1)}


def per_axis(v, ndim: int, axis: int | None) -> np.ndarray:
    """A scale or zero point as a float32 array broadcasting along `axis` of an ndim-D tensor."""
    a = np.asarray(v, np.float32)
    if a.ndim == 0 or a.size == 1 or axis is None:
        return a.reshape(()) if a.size == 1 else a
    shape = [1] * ndim
    shape[axis % ndim] = a.size
    return a.reshape(shape)


def dequantize(q: np.ndarray, scale, zero_point, axis: int | None = None) -> np.ndarray:
    """(q - zero_point) * scale in float32, the same operations at conversion and at load."""
    q = np.asarray(q)
    s = per_axis(scale, q.ndim, axis)
    z = per_axis(zero_point if zero_point is not None else 0, q.ndim, axis)
    return ((q.astype(np.float32) - z) * s).astype(np.float32, copy=False)


def quantize(x: np.ndarray, scale, zero_point, qmin: int, qmax: int, axis: int | None = None) -> np.ndarray:
    """clip(rint(x / scale) + zero_point, qmin, qmax) as float32 holding integers."""
    x = np.asarray(x, np.float32)
    s = per_axis(scale, x.ndim, axis)
    z = per_axis(zero_point if zero_point is not None else 0, x.ndim, axis)
    q = np.rint(np.divide(x, s))
    q += z
    return np.clip(q, np.float32(qmin), np.float32(qmax), out=q)

META_KEY = "quantized_weights"


def _quantize_exact(w: np.ndarray, info: dict) -> np.ndarray | None:
    """q with dequantize(q) == w bit for bit, or None when w is not on the grid (a converter pass
    changed it)."""
    axis = info.get("axis")
    s, z = np.asarray(info["scale"], np.float32), np.asarray(info["zero_point"], np.float32)
    if axis is not None and (w.ndim <= axis or w.shape[axis] != s.size):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.rint(np.asarray(w, np.float32) / per_axis(s, w.ndim, axis)) + per_axis(z, w.ndim, axis)
    lo, hi = RANGES[info["dtype"]]
    if not np.all(np.isfinite(q)):
        return None
    q = np.clip(q, lo, hi).astype(info["dtype"])
    return q if np.array_equal(dequantize(q, s, z, axis), w) else None


def integer_weight(w: np.ndarray, info: dict) -> np.ndarray | None:
    """The 8-bit integers of a loaded weight (the GPU runtime keeps them on the device), or None."""
    return _quantize_exact(np.asarray(w), info)


def mark(graph, infos: dict) -> int:
    """Record in graph.meta the weights that can be stored as 8-bit integers; returns how many."""
    kept = {}
    for name, info in infos.items():
        w = graph.weights.get(name)
        if w is not None and np.asarray(w).dtype == np.float32 and _quantize_exact(np.asarray(w), info) is not None:
            kept[name] = dict(info)
    if kept:
        graph.meta[META_KEY] = kept
    else:
        graph.meta.pop(META_KEY, None)
    return len(kept)


def pack(graph) -> dict:
    """The weights to write: quantized ones as 8-bit integers, the rest as they are."""
    infos = graph.meta.get(META_KEY) or {}
    out = {}
    for name, w in graph.weights.items():
        q = _quantize_exact(np.asarray(w), infos[name]) if name in infos else None
        out[name] = q if q is not None else w
    return out


def check(meta: dict, weights: dict, fail) -> None:
    """Every quantized weight entry of a header is well formed (fail(what) -> exception)."""
    infos = meta.get(META_KEY, {})
    if not isinstance(infos, dict):
        raise fail(f"meta.{META_KEY} is not an object")
    for name, info in infos.items():
        w = weights.get(name)
        ok = isinstance(info, dict) and info.get("dtype") in ("int8", "uint8") and w is not None \
            and w.dtype.name == info["dtype"] and isinstance(info.get("scale"), list) \
            and isinstance(info.get("zero_point"), list) and info["scale"] and info["zero_point"] \
            and all(type(x) in (int, float) and np.isfinite(x) for x in info["scale"] + info["zero_point"])
        axis = info.get("axis") if isinstance(info, dict) else None
        if ok and axis is not None:
            ok = type(axis) is int and 0 <= axis < w.ndim and w.shape[axis] == len(info["scale"]) \
                and len(info["zero_point"]) in (1, len(info["scale"]))
        elif ok:
            ok = len(info["scale"]) == 1 and len(info["zero_point"]) == 1
        if not ok:
            raise fail(f"quantized weight {name!r} has a malformed entry")


def unpack(meta: dict, weights: dict) -> dict:
    """Float weights again (after `check`)."""
    infos = meta.get(META_KEY) or {}
    for name, info in infos.items():
        z = info["zero_point"]
        weights[name] = dequantize(weights[name], info["scale"], z if len(z) > 1 else z[0], info.get("axis"))
    return weights
