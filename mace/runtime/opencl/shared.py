"""What every engine of a process shares on an OpenCL device, and the count of what it holds.

- One `cl.Context` per device: programs and buffers of one context can be used by every engine.
- One build per program key per context (`program` / `keep_program`): a second engine, or a
  second execution context of one engine, takes the built program and only creates its kernels.
- Constant uploads (weights, re-laid or not) by content: two engines of one model file, or the
  execution contexts of one engine, hold one device copy of each weight. The table keeps weak
  references: the copy is released when the last engine using it is closed or dropped.
- Device bytes: every buffer the executors allocate is counted while alive (`device_bytes()`),
  so tests and the serving benchmark can see buffers come back at `close()` or `del`.

Locks guard the tables; OpenCL calls themselves are thread-safe except setting the arguments of
one kernel, which is why each execution context binds kernels of its own.
"""
from __future__ import annotations

import hashlib
import threading
import weakref

import numpy as np
import pyopencl as cl

_LOCK = threading.RLock()
_CONTEXTS: dict[int, cl.Context] = {}
_PROGRAMS: dict[tuple[int, str], cl.Program] = {}
_UPLOADS: "weakref.WeakValueDictionary[tuple, DeviceBuffer]" = weakref.WeakValueDictionary()
_LIVE = {"bytes": 0, "buffers": 0}

#: one build at a time per process: two engines starting together build each program once
BUILD_LOCK = threading.RLock()


class DeviceBuffer(cl.Buffer):
    """A cl.Buffer counted in `device_bytes()` from creation until its release (a subclass only
    because PyOpenCL's own buffers take no weak references)."""

    def __init__(self, ctx: cl.Context, flags, size: int = 0, hostbuf=None):
        super().__init__(ctx, flags, size, hostbuf)
        nbytes = int(self.size)
        with _LOCK:
            _LIVE["bytes"] += nbytes
            _LIVE["buffers"] += 1
        weakref.finalize(self, _released, nbytes)


def _released(nbytes: int) -> None:
    with _LOCK:
        _LIVE["bytes"] -= nbytes
        _LIVE["buffers"] -= 1


def device_bytes() -> dict[str, int]:
    """{"bytes", "buffers"}: device memory the executors of this process hold now."""
    with _LOCK:
        return dict(_LIVE)


def context(device: cl.Device) -> cl.Context:
    """The process's context on `device` (created at first use, kept for the process)."""
    with _LOCK:
        ctx = _CONTEXTS.get(device.int_ptr)
        if ctx is None:
            ctx = _CONTEXTS[device.int_ptr] = cl.Context([device])
        return ctx


def program(ctx: cl.Context, key: str) -> cl.Program | None:
    with _LOCK:
        return _PROGRAMS.get((ctx.int_ptr, key))


def keep_program(ctx: cl.Context, key: str, prog: cl.Program | None) -> None:
    """Share `prog` under `key` (None forgets it: a binary that cannot make its kernels)."""
    with _LOCK:
        if prog is None:
            _PROGRAMS.pop((ctx.int_ptr, key), None)
        else:
            _PROGRAMS[(ctx.int_ptr, key)] = prog


def forget_programs() -> None:
    """Build again from now on, as a new process would (engines keep the programs they hold);
    tests of warm starts within one process use it."""
    with _LOCK:
        _PROGRAMS.clear()


def upload(ctx: cl.Context, arr: np.ndarray) -> DeviceBuffer:
    """A read-only device copy of `arr`, shared with every other upload of the same bytes."""
    arr = np.ascontiguousarray(arr)
    data = arr.reshape(-1).view(np.uint8) if arr.nbytes else b""
    key = (ctx.int_ptr, arr.dtype.str, arr.nbytes, hashlib.blake2b(data, digest_size=20).digest())
    with _LOCK:
        buf = _UPLOADS.get(key)
        if buf is None:
            buf = DeviceBuffer(ctx, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR,
                               hostbuf=arr if arr.nbytes else np.zeros(1, arr.dtype))
            _UPLOADS[key] = buf
        return buf
