"""A built program's binary read, and a kernel launched, without holding Python's GIL.

Asking a driver for `CL_PROGRAM_BINARIES` can take seconds per program (PoCL generates the
generic work-group function of every kernel then). PyOpenCL holds the GIL through that call,
so a harvest in a background thread would stall the engine's runs; the same two
`clGetProgramInfo` calls made through ctypes release it. The ICD loader is the one PyOpenCL
already loaded (a program handle dispatches to its own driver through any loader); where it
cannot be found, PyOpenCL's `get_info` is used. A cold start launches kernels once while compile
processes wait for this process's threads (`launch`): PoCL may generate code inside
clEnqueueNDRangeKernel, which PyOpenCL also calls holding the GIL.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

import pyopencl as cl

log = logging.getLogger("mace.opencl")

_PROGRAM_BINARY_SIZES = 0x1165
_PROGRAM_BINARIES = 0x1166
_lib: list = []
_cdll: list = []     # the loader itself, once found
_lib_lock = threading.Lock()


def _loader():
    """The OpenCL ICD loader mapped into this process (PyOpenCL's), or None."""
    with _lib_lock:
        if not _lib:
            _lib.append(_find_loader())
        return _lib[0]


def _find_loader():
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            paths = [line.split()[-1] for line in maps if "libOpenCL" in line and "/" in line]
    except OSError:
        pass
    found = ctypes.util.find_library("OpenCL")
    for path in paths[:1] + ([found] if found else []):
        try:
            lib = ctypes.CDLL(path)
            fn = lib.clGetProgramInfo
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_int32
        fn.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_size_t, ctypes.c_void_p,
                       ctypes.POINTER(ctypes.c_size_t)]
        _cdll.append(lib)
        return fn
    return None


def program_binary(prog: cl.Program) -> bytes:
    """The binary of `prog`, built for one device (b"" when the driver offers none).
    Raises cl.Error (or RuntimeError) when the driver refuses."""
    fn = _loader()
    if fn is None or prog.get_info(cl.program_info.NUM_DEVICES) != 1:
        return bytes(prog.get_info(cl.program_info.BINARIES)[0])
    handle = ctypes.c_void_p(prog.int_ptr)
    size = ctypes.c_size_t(0)
    rc = fn(handle, _PROGRAM_BINARY_SIZES, ctypes.sizeof(size), ctypes.byref(size), None)
    if rc != 0:
        raise RuntimeError(f"clGetProgramInfo(CL_PROGRAM_BINARY_SIZES) failed: {rc}")
    if size.value == 0:
        return b""
    buf = ctypes.create_string_buffer(size.value)
    ptrs = (ctypes.c_void_p * 1)(ctypes.cast(buf, ctypes.c_void_p))
    rc = fn(handle, _PROGRAM_BINARIES, ctypes.sizeof(ptrs), ptrs, None)
    if rc != 0:
        raise RuntimeError(f"clGetProgramInfo(CL_PROGRAM_BINARIES) failed: {rc}")
    return buf.raw


def launch(queue: cl.CommandQueue, kernel: cl.Kernel, gws, lws) -> None:
    """Enqueue `kernel` and wait for it, the GIL released (PyOpenCL's calls where the loader
    cannot be found)."""
    _loader()
    fn = getattr(_cdll[0], "clEnqueueNDRangeKernel", None) if _cdll else None
    if fn is None:
        cl.enqueue_nd_range_kernel(queue, kernel, gws, lws)
        queue.finish()
        return
    dims = len(gws)
    glob = (ctypes.c_size_t * dims)(*gws)
    loc = (ctypes.c_size_t * dims)(*lws) if lws is not None else None
    rc = fn(ctypes.c_void_p(queue.int_ptr), ctypes.c_void_p(kernel.int_ptr), ctypes.c_uint32(dims), None,
            glob, loc, ctypes.c_uint32(0), None, None)
    if rc != 0:
        raise RuntimeError(f"clEnqueueNDRangeKernel failed: {rc}")
    queue.finish()
