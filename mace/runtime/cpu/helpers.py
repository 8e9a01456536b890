"""Plumbing shared by the CPU kernels (conv, deconv, pool, elementwise): channel chunks on a small
thread pool, padded inputs, and the persistent outputs of prepared steps with their fused
activation pass. Geometry (output sizes, window taps) lives in `mace.ops`."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mace.runtime.cpu import activation

F32 = np.float32
THREADS = max(1, min(os.cpu_count() or 1, 4))
_POOL: ThreadPoolExecutor | None = None
_PAR_MIN = 1 << 17  # elements of output below which threading is not worth it


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(THREADS, thread_name_prefix="mace-cpu")
    return _POOL


def parallel_chunks(n: int, fn, work: int) -> None:
    """Run fn(lo, hi) over [0, n) in up to THREADS chunks (NumPy releases the GIL)."""
    k = min(THREADS, n) if work >= _PAR_MIN else 1
    if k <= 1:
        fn(0, n)
        return
    bounds = [n * i // k for i in range(k + 1)]
    futs = [_pool().submit(fn, bounds[i], bounds[i + 1]) for i in range(1, k)]
    fn(bounds[0], bounds[1])
    for f in futs:
        f.result()


def pad_input(x: np.ndarray, begins, ends, value=0.0) -> np.ndarray:
    """x padded on its spatial dims (2..); negative pads crop."""
    nsp = x.ndim - 2
    if not any(begins) and not any(ends):
        return x
    crop = tuple(slice(None) for _ in range(2)) + tuple(
        slice(max(-b, 0), x.shape[2 + d] - max(-e, 0)) for d, (b, e) in enumerate(zip(begins, ends)))
    x = x[crop]
    widths = [(0, 0), (0, 0)] + [(max(b, 0), max(e, 0)) for b, e in zip(begins, ends)]
    if not any(w for pair in widths for w in pair):
        return x
    assert len(widths) == nsp + 2
    return np.pad(x, widths, mode="constant", constant_values=value)


def act_into(acc, act, params, target, residual=None):
    """target = act(acc [+ residual]) in one pass where possible (acc may be a strided view; it
    is overwritten when there is a residual)."""
    if residual is not None:
        acc = np.add(acc, residual.reshape(acc.shape), out=acc)
    if not act:
        if target is not acc:
            np.copyto(target, acc)
        return target
    if act == "Relu":
        return np.maximum(acc, F32(0), out=target)
    if act == "Clip":
        lo, hi = params
        return np.clip(acc, F32(lo), F32(hi), out=target)
    res = activation.apply(np.array(acc, F32), act, params)
    np.copyto(target, res)
    return target


class Prepared:
    """Base of prepared steps: a persistent output (ones-augmented `aug` for batch 1, so a reading
    pointwise conv keeps its bias inside the sgemm) and an optional write target: a consumer's
    padded input buffer (`set_target`)."""

    def _alloc_out(self, out_shape):
        self.out_shape = tuple(out_shape)
        n, m = out_shape[:2]
        p = int(np.prod(out_shape[2:]))
        if n == 1:
            self.aug = np.empty((m + 1, p), F32)
            self.aug[m] = 1.0
            self.out = self.aug[:m].reshape(self.out_shape)
        else:
            self.aug = None
            self.out = np.empty(self.out_shape, F32)
        self.target = None
        self.in_view = None

    def set_target(self, view) -> None:
        self.target = view
        self.aug = None  # its output no longer lands in aug

    def _dest(self):
        return self.out if self.target is None else self.target
