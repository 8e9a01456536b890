"""FakeQuantize: QuantizeLinear then DequantizeLinear in float (the arithmetic is
`mace.ir.quantized`'s, shared with the converter and the model file)."""
from __future__ import annotations

import numpy as np

from mace.ir.quantized import per_axis


def fake_quantize(x: np.ndarray, attrs: dict) -> np.ndarray:
    """(clip(rint(x / scale) + zero_point, qmin, qmax) - zero_point) * scale, float32; dq_scale /
    dq_zero_point, when given, dequantize."""
    x = np.asarray(x, np.float32)
    axis = attrs.get("axis")
    s = per_axis(attrs["scale"], x.ndim, axis)
    z = per_axis(attrs.get("zero_point", 0), x.ndim, axis)
    q = np.divide(x, s)
    np.rint(q, out=q)
    q += z
    np.clip(q, np.float32(attrs["qmin"]), np.float32(attrs["qmax"]), out=q)
    if "dq_scale" in attrs:
        s, z = per_axis(attrs["dq_scale"], x.ndim, axis), per_axis(attrs["dq_zero_point"], x.ndim, axis)
    q -= z
    q *= s
    return q
