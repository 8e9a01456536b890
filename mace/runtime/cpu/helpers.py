"""Plumbing shared by the CPU kernels (conv, deconv, pool, elementwise): channel chunks on a small
thread pool (as many threads as the running engine asked for), padded inputs, plane views for the
compiled kernels, and the persistent outputs of prepared steps with their fused epilogue pass
(bias, residual, activation). Geometry (output sizes, window taps) lives in `mace.ops`."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mace.runtime.cpu import activation, kernels

F32 = np.float32
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_PAR_MIN = 1 << 15  # elements of output below which threading is not worth it
_local = threading.local()


def physical_cores() -> int:
    """Cores this process may run on, counting SMT siblings once (the default `threads`)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for c in cpus:
        try:
            base = f"/sys/devices/system/cpu/cpu{c}/topology/"
            with open(base + "physical_package_id") as f1, open(base + "core_id") as f2:
                cores.add((f1.read().strip(), f2.read().strip()))
        except OSError:
            cores.add(("cpu", str(c)))
    return max(1, len(cores))


THREADS = physical_cores()


def set_threads(n: int | None) -> None:
    """Threads the kernels of runs on this thread use (the executor sets its engine's)."""
    _local.threads = n


def threads() -> int:
    return getattr(_local, "threads", None) or THREADS


def _pool(n: int) -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < n:
            _POOL = ThreadPoolExecutor(n, thread_name_prefix="mace-cpu")
        return _POOL


def parallel_chunks(n: int, fn, work: int) -> None:
    """Run fn(lo, hi) over [0, n) in up to `threads()` chunks (the kernels release the GIL)."""
    t = threads()
    k = min(t, n) if work >= _PAR_MIN else 1
    if k <= 1:
        fn(0, n)
        return
    bounds = [n * i // k for i in range(k + 1)]
    pool = _pool(t)
    futs = [pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, k)]
    fn(bounds[0], bounds[1])
    for f in futs:
        f.result()


def plane(a: np.ndarray):
    """(flat buffer, offset, channel stride, row stride) in elements of a float32 (1, C, H, W) or
    (C, H, W) view whose rows are contiguous, over a C-contiguous buffer; else None."""
    if a.dtype != F32 or a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[0] != 1) or a.strides[-1] != 4:
        return None
    root = a
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not root.flags.c_contiguous or root.dtype != F32 or not root.flags.writeable:
        return None
    off = a.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    cs, rs = a.strides[-3], a.strides[-2]
    if off % 4 or cs % 4 or rs % 4:
        return None
    return root.reshape(-1), off // 4, cs // 4, rs // 4


_ZERO_BIAS: dict[int, np.ndarray] = {}


def act_params(params) -> tuple:
    """The two float32 activation parameters the compiled kernels take (zeros where unused)."""
    return (tuple(F32(v) for v in params) + (F32(0), F32(0)))[:2]


def epilogue_plan(acc, act, params, target, residual=None, bias=None):
    """fn(lo, hi) writing target = act(acc + bias [+ residual]) for channels [lo, hi) with the
    compiled kernel (so a caller can run it right after the GEMM rows of the same channels); None
    where an operand is not a plane view or numba is off."""
    if act not in kernels.ACT or not kernels.available():
        return None
    from mace.runtime.cpu.kernels import epilogue   # after `available`: numba's dispatcher by then
    pa, py = plane(acc), plane(target)
    pr = plane(residual) if residual is not None else None
    if pa is None or py is None or (residual is not None and (pr is None or residual.shape[-3:] != acc.shape[-3:])):
        return None
    c, oh, ow = acc.shape[-3:]
    if target.shape[-3:] != (c, oh, ow):
        return None
    if bias is None:
        bias = _ZERO_BIAS.get(c)
        if bias is None:
            bias = _ZERO_BIAS.setdefault(c, np.zeros(c, F32))
    p0, p1 = act_params(params)
    rr, code, has_res = (pr if pr is not None else pa), kernels.ACT[act], pr is not None
    return lambda lo, hi: epilogue(*pa, bias, has_res, *rr, *py, oh, ow, code, p0, p1, lo, hi)


def compiled_epilogue(acc, act, params, target, residual=None, bias=None) -> bool:
    """`epilogue_plan` run over every channel, split over the threads; False: nothing written."""
    plan = epilogue_plan(acc, act, params, target, residual, bias)
    if plan is None:
        return False
    parallel_chunks(acc.shape[-3], plan, acc.size)
    return True


class _BlasSingle:
    """BLAS runs single-threaded while any mace CPU run is in flight: the runtime splits its GEMMs
    over its own threads (a BLAS thread team of its own, spinning on a loaded machine or beside a
    second client thread, made runs up to 10x slower). The process's setting is restored when the
    last run ends."""

    def __init__(self):
        self.lock, self.active, self.saved, self.libs = threading.Lock(), 0, [], None

    def __enter__(self):
        with self.lock:
            if self.active == 0:
                if self.libs is None:
                    try:
                        from threadpoolctl import ThreadpoolController
                        self.libs = ThreadpoolController().select(user_api="blas").lib_controllers
                    except Exception:  # noqa: BLE001 - no control: BLAS keeps its own threads
                        self.libs = []
                self.saved = [lib.num_threads for lib in self.libs]
                for lib in self.libs:
                    lib.set_num_threads(1)
            self.active += 1

    def __exit__(self, *exc):
        with self.lock:
            self.active -= 1
            if self.active == 0:
                for lib, n in zip(self.libs, self.saved):
                    lib.set_num_threads(n)


blas_single = _BlasSingle()


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


def act_into(acc, act, params, target, residual=None, bias=None):
    """target = act(acc [+ bias] [+ residual]) in one pass: the compiled epilogue, else NumPy
    (acc may be a strided view; NumPy overwrites it when there is a residual or bias)."""
    if compiled_epilogue(acc, act, params, target, residual, bias):
        return target
    if bias is not None:
        acc = np.add(acc, bias.reshape(-1, 1, 1), out=acc)
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
