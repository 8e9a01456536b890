"""Record a whole run's kernel launches once and replay them with one call (cl_khr_command_buffer).

PyOpenCL does not wrap the extension, so its entry points are looked up with
`clGetExtensionFunctionAddressForPlatform` from the ICD loader PyOpenCL itself links, and called
through ctypes with PyOpenCL's raw handles (`int_ptr`). Kernel arguments are captured when a
command is recorded, which suits the executor: every argument is bound once at init, and a rebind
(tuning) makes the executor record again. Commands are chained by sync points, so the replay runs
them in recorded order whatever ordering the driver would otherwise allow.

Anything unexpected (extension missing, a driver rejecting the queue or a command) leaves the
executor on plain per-launch enqueues; `reason` says why.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os

import pyopencl as cl

log = logging.getLogger("mace.opencl")

EXTENSION = "cl_khr_command_buffer"
_DEVICE_REQUIRED_QUEUE_PROPERTIES = 0x12AA

_vp, _u32, _i32, _size = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int32, ctypes.c_size_t
_SIGNATURES = {
    # name: (restype, argtypes)
    "clCreateCommandBufferKHR": (_vp, [_u32, ctypes.POINTER(_vp), _vp, ctypes.POINTER(_i32)]),
    "clCommandNDRangeKernelKHR": (_i32, [_vp, _vp, _vp, _vp, _u32, _vp, ctypes.POINTER(_size),
                                         ctypes.POINTER(_size), _u32, ctypes.POINTER(_u32),
                                         ctypes.POINTER(_u32), _vp]),
    "clFinalizeCommandBufferKHR": (_i32, [_vp]),
    "clEnqueueCommandBufferKHR": (_i32, [_u32, ctypes.POINTER(_vp), _vp, _u32, _vp, _vp]),
    "clReleaseCommandBufferKHR": (_i32, [_vp]),
}


class CommandBufferError(RuntimeError):
    """The driver refused a command-buffer call; the executor falls back to plain enqueues."""


def _loader() -> ctypes.CDLL:
    """The ICD loader PyOpenCL is linked against (its wheel bundles one), else the system's."""
    bundled = sorted(glob.glob(os.path.join(os.path.dirname(cl.__file__), ".libs", "libOpenCL*.so*")))
    path = bundled[0] if bundled else ctypes.util.find_library("OpenCL")
    if not path:
        raise CommandBufferError("no OpenCL ICD loader library found")
    lib = ctypes.CDLL(path)
    lib.clGetExtensionFunctionAddressForPlatform.restype = _vp
    lib.clGetExtensionFunctionAddressForPlatform.argtypes = [_vp, ctypes.c_char_p]
    lib.clGetDeviceInfo.restype = _i32
    lib.clGetDeviceInfo.argtypes = [_vp, _u32, _size, _vp, ctypes.POINTER(_size)]
    return lib


def offered(device: cl.Device) -> bool:
    return EXTENSION in device.extensions.split()


class _Api:
    """The extension's entry points for one platform."""

    def __init__(self, device: cl.Device):
        self.lib = _loader()
        for name, (restype, argtypes) in _SIGNATURES.items():
            addr = self.lib.clGetExtensionFunctionAddressForPlatform(device.platform.int_ptr, name.encode())
            if not addr:
                raise CommandBufferError(f"the driver exports no {name}")
            setattr(self, name, ctypes.CFUNCTYPE(restype, *argtypes)(addr))

    def required_queue_properties(self, device: cl.Device) -> int:
        value = ctypes.c_uint64(0)
        err = self.lib.clGetDeviceInfo(device.int_ptr, _DEVICE_REQUIRED_QUEUE_PROPERTIES, 8, ctypes.byref(value), None)
        return int(value.value) if err == 0 else 0


def _check(err: int, what: str) -> None:
    if err != 0:
        raise CommandBufferError(f"{what} failed with OpenCL error {err}")


class RecordedRun:
    """The kernel launches of one run, recorded once; `enqueue()` replays them all."""

    def __init__(self, queue: cl.CommandQueue, launches):
        device = queue.device
        if not offered(device):
            raise CommandBufferError(f"the device does not offer {EXTENSION}")
        self.api = api = _Api(device)
        required = api.required_queue_properties(device)
        if required & ~int(queue.properties):
            raise CommandBufferError(f"the device needs queue properties {required:#x} for command buffers")
        self._queues = (_vp * 1)(queue.int_ptr)
        err = _i32(0)
        self.handle = api.clCreateCommandBufferKHR(1, self._queues, None, ctypes.byref(err))
        _check(err.value, "clCreateCommandBufferKHR")
        self.count = 0
        self._launches = list(launches)  # keeps the recorded kernels (and their buffers) alive
        try:
            prev = None
            for launch in launches:
                gws = (_size * len(launch.gws))(*launch.gws)
                lws = (_size * len(launch.lws))(*launch.lws) if launch.lws is not None else None
                point = _u32(0)
                wait = (_u32 * 1)(prev) if prev is not None else None
                _check(api.clCommandNDRangeKernelKHR(self.handle, None, None, launch.kernel.int_ptr, len(launch.gws),
                                                      None, gws, lws, 1 if wait else 0, wait, ctypes.byref(point),
                                                      None), f"recording {launch.name}")
                prev = point.value
                self.count += 1
            _check(api.clFinalizeCommandBufferKHR(self.handle), "clFinalizeCommandBufferKHR")
        except CommandBufferError:
            self.release()
            raise

    def enqueue(self) -> None:
        """Replay on the queue the run was recorded for."""
        _check(self.api.clEnqueueCommandBufferKHR(1, self._queues, self.handle, 0, None, None),
               "clEnqueueCommandBufferKHR")

    def release(self) -> None:
        if getattr(self, "handle", None):
            self.api.clReleaseCommandBufferKHR(self.handle)
            self.handle = None

    def __del__(self):
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter teardown
            pass


def record(queue: cl.CommandQueue, launches) -> tuple[RecordedRun | None, str]:
    """(recorded run, "") or (None, why not)."""
    try:
        return RecordedRun(queue, launches), ""
    except (CommandBufferError, OSError, AttributeError) as exc:
        return None, str(exc)
