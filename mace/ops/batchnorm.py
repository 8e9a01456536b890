"""BatchNormalization folded to a per-channel scale and shift (float64 math, float32 results),
shared by the standalone kernels of both runtimes and by the Conv + BN folding pass."""
from __future__ import annotations

import numpy as np


def _scale(gamma, var, eps) -> np.ndarray:
    return np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)


def bn_scale_shift(gamma, beta, mean, var, eps) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) in float32 so that y = x * scale + shift per channel."""
    scale = _scale(gamma, var, eps)
    shift = np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * scale
    return scale.astype(np.float32), shift.astype(np.float32)


def fold_into_conv(w, b, gamma, beta, mean, var, eps) -> tuple[np.ndarray, np.ndarray]:
    """A Conv's (weight, bias) with the following BN folded in, float32; `b` None means no bias."""
    scale = _scale(gamma, var, eps)
    w = np.asarray(w, np.float64)
    b = np.zeros(w.shape[0]) if b is None else np.asarray(b, np.float64)
    w_f = (w * scale.reshape(-1, *[1] * (w.ndim - 1))).astype(np.float32)
    b_f = ((b - np.asarray(mean, np.float64)) * scale + np.asarray(beta, np.float64)).astype(np.float32)
    return w_f, b_f
