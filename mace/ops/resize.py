"""Resize sampling rules (and Upsample's, renamed by the converter): the ONNX coordinate
transforms, nearest rounding, and the per-axis tap tables (`axis_taps`: source indices and weights
per output index, computed in float32 like onnxruntime so ties round the same way). The CPU kernel
and the GPU kernels sample with the same tables, so both runtimes agree bit for bit on positions."""
from __future__ import annotations

import numpy as np

TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn",
              "half_pixel_symmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
_F = np.float32


def original_coords(in_len: int, out_len: int, scale: float, transform: str) -> np.ndarray:
    """x_original of every output index (float32), per the ONNX coordinate_transformation_mode."""
    x = np.arange(out_len, dtype=_F)
    s = _F(scale)
    if transform == "half_pixel":
        return (x + _F(0.5)) / s - _F(0.5)
    if transform == "pytorch_half_pixel":
        return (x + _F(0.5)) / s - _F(0.5) if out_len > 1 else np.zeros(out_len, _F)
    if transform == "align_corners":
        return np.zeros(out_len, _F) if out_len == 1 else x * _F(in_len - 1) / _F(out_len - 1)
    if transform == "asymmetric":
        return x / s
    if transform == "tf_half_pixel_for_nn":
        return (x + _F(0.5)) / s
    if transform == "half_pixel_symmetric":
        adj = _F(out_len) / (s * _F(in_len))
        center = _F(in_len) / _F(2)
        offset = center * (_F(1) - adj)
        return offset + (x + _F(0.5)) / s - _F(0.5)
    raise ValueError(f"Resize: coordinate_transformation_mode {transform!r} is not supported")


def _cubic_coeffs(s: np.ndarray, a: float) -> np.ndarray:
    a = _F(a)
    s = s.astype(_F)
    one = _F(1)
    c0 = ((a * (s + one) - _F(5) * a) * (s + one) + _F(8) * a) * (s + one) - _F(4) * a
    c1 = ((a + _F(2)) * s - (a + _F(3))) * s * s + one
    t = one - s
    c2 = ((a + _F(2)) * t - (a + _F(3))) * t * t + one
    t2 = _F(2) - s
    c3 = ((a * t2 - _F(5) * a) * t2 + _F(8) * a) * t2 - _F(4) * a
    return np.stack([c0, c1, c2, c3], axis=1)


def axis_taps(in_len: int, out_len: int, scale: float, attrs: dict) -> tuple[np.ndarray, np.ndarray]:
    """(indices [out_len, T] int64 in [0, in_len), weights [out_len, T] float32) for one axis;
    T = 1 (nearest), 2 (linear) or 4 (cubic)."""
    mode = attrs.get("mode", "nearest")
    if float(scale) == 1.0 and in_len == out_len:
        # an unscaled axis is copied, whatever the transform (onnxruntime does the same; only
        # tf_half_pixel_for_nn would otherwise shift it by half a pixel)
        taps = {"nearest": 1, "linear": 2, "cubic": 4}.get(mode, 1)
        idx = np.repeat(np.arange(out_len, dtype=np.int64)[:, None], taps, axis=1)
        w = np.zeros((out_len, taps), _F)
        w[:, 0] = 1
        return idx, w
    x = original_coords(in_len, out_len, scale, attrs.get("coordinate_transformation_mode", "half_pixel"))
    last = in_len - 1
    if mode == "nearest":
        nm = attrs.get("nearest_mode", "round_prefer_floor")
        fl = np.floor(x)
        tie = x == fl + _F(0.5)
        if nm == "round_prefer_floor":
            r = np.where(tie, fl, np.round(x))
        elif nm == "round_prefer_ceil":
            r = np.where(tie, np.ceil(x), np.round(x))
        elif nm == "floor":
            r = fl
        elif nm == "ceil":
            r = np.ceil(x)
        else:
            raise ValueError(f"Resize: nearest_mode {nm!r} is not supported")
        idx = np.clip(r, 0, last).astype(np.int64)
        return idx[:, None], np.ones((out_len, 1), _F)
    if mode == "linear":
        xc = np.clip(x, _F(0), _F(last))
        i0 = np.minimum(np.floor(xc).astype(np.int64), last)
        i1 = np.minimum(i0 + 1, last)
        w1 = (xc - i0.astype(_F)).astype(_F)
        w0 = (i1.astype(_F) - xc).astype(_F)
        same = i0 == i1
        w0 = np.where(same, _F(0.5), w0)
        w1 = np.where(same, _F(0.5), w1)
        return np.stack([i0, i1], 1), np.stack([w0, w1], 1).astype(_F)
    if mode == "cubic":
        fl = np.floor(x)
        w = _cubic_coeffs(x - fl, float(attrs.get("cubic_coeff_a", -0.75)))
        idx = fl.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
        if int(attrs.get("exclude_outside", 0)):
            w = np.where((idx < 0) | (idx > last), _F(0), w)
            w = (w / np.sum(w, axis=1, keepdims=True)).astype(_F)
        return np.clip(idx, 0, last), w.astype(_F)
    raise ValueError(f"Resize: mode {mode!r} is not supported")


def is_identity(idx: np.ndarray, w: np.ndarray, in_len: int) -> bool:
    """True when the table copies the axis unchanged (every weight sits on the output's own index)."""
    n = idx.shape[0]
    if n != in_len:
        return False
    own = idx == np.arange(n)[:, None]
    return bool(np.all(np.where(own, True, w == 0))) and bool(np.allclose(np.sum(np.where(own, w, 0), 1), 1))


def output_shape(node, in_shape) -> list[int]:
    shape = node.attrs.get("shape")
    if shape is not None:
        return [int(d) for d in shape]
    return [int(np.floor(d * s)) for d, s in zip(in_shape, node.attrs["scales"])]
