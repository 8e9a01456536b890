"""Finding the OpenCL device: by index or name (`--device`, MACE_DEVICE), else the first GPU,
else PoCL's CPU device (the embedded default), so everything runs on a machine with no GPU."""
from __future__ import annotations

import pyopencl as cl

from mace import settings
from mace.errors import DeviceError
from mace.runtime.opencl import driver_cache


def list_devices() -> list[cl.Device]:
    driver_cache.prepare()   # before the driver reads its environment
    devices = []
    try:
        platforms = cl.get_platforms()
    except cl.Error:
        platforms = []
    for p in platforms:
        try:
            devices.extend(p.get_devices())
        except cl.Error:
            continue
    return devices


def describe(dev: cl.Device) -> str:
    return f"{dev.platform.name.strip()} / {dev.name.strip()}"


def select_device(spec: str | int | None = None) -> cl.Device:
    devices = list_devices()
    if not devices:
        raise DeviceError("no OpenCL device found: install pocl-binary-distribution (pip) or a GPU driver's ICD")
    if spec is None:
        spec = settings.get("MACE_DEVICE")
    if spec is None or spec == "":
        gpus = [d for d in devices if d.type & cl.device_type.GPU]
        return gpus[0] if gpus else devices[0]
    if isinstance(spec, int) or str(spec).isdigit():
        idx = int(spec)
        if idx >= len(devices):
            raise DeviceError(f"OpenCL device index {idx} out of range: this machine has {len(devices)} "
                              f"(see `mace devices`)")
        return devices[idx]
    needle = str(spec).lower()
    for d in devices:
        if needle in describe(d).lower():
            return d
    names = "; ".join(f"{i}: {describe(d)}" for i, d in enumerate(devices))
    raise DeviceError(f"no OpenCL device matches {spec!r}: choose one of [{names}] with --device")


def stored_or_probed_caps(dev: cl.Device):
    """The device's caps as the default program cache holds them, else probed now (read-only:
    listing devices writes nothing)."""
    from mace.programcache import DeviceFingerprint, ProgramCache
    from mace.runtime.opencl.caps import device_caps
    fp = DeviceFingerprint.from_cl_device(dev)
    section = ProgramCache.open(None, device_fp=fp, log_findings=False).section(fp)
    return device_caps(dev, section if section.get_caps() is not None else None)
