"""Every MACE_* environment knob, declared once with its default and why it exists."""
from __future__ import annotations

import os

KNOBS = {
    "MACE_DEVICE": "OpenCL device to use: an index into `mace devices` or a name substring",
    "MACE_PROGRAM_PATH": "full path of the compiled program cache file",
    "MACE_PROGRAM_CACHE_MAX_BYTES": "size cap of the program cache file (MACE_OUT_OF_RESOURCES above it)",
    "MACE_TUNING": "1: tune every kernel launch during a normal run and store the records",
    "MACE_COMMAND_BUFFER": "0: enqueue each launch instead of replaying a run recorded with cl_khr_command_buffer "
                           "(used where the device offers it)",
    "MACE_LOG_LEVEL": "logging level of the `mace` logger (default INFO)",
    "MACE_DEVICE_PROBE": "0: trust clGetDeviceInfo instead of probing the device's vector widths in a child "
                         "process (the probe runs once per device; its result is kept in the program cache)",
    "MACE_TEST_BREAK_BUILD": "tests only: a regex over \"<program> <build options>\" whose builds fail as if the "
                             "driver's compiler had failed (\"abort:\" first: the probe process aborts)",
}


def get(name: str, default: str | None = None) -> str | None:
    assert name in KNOBS, name
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def flag(name: str) -> bool:
    return (get(name, "0") or "0").lower() in ("1", "true", "yes", "on")
