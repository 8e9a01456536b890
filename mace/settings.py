"""Every MACE_* environment knob, declared once with its default and why it exists."""
from __future__ import annotations

import os
import re

KNOBS = {
    "MACE_DEVICE": "OpenCL device to use: an index into `mace devices` or a name substring",
    "MACE_PROGRAM_PATH": "full path of the compiled program cache file",
    "MACE_PROGRAM_CACHE_MAX_BYTES": "size cap of the program cache file (MACE_OUT_OF_RESOURCES above it)",
    "MACE_TUNING": "1: tune every kernel launch during a normal run and store the records",
    "MACE_COMMAND_BUFFER": "0: enqueue each launch instead of replaying a run recorded with cl_khr_command_buffer "
                           "(used where the device offers it)",
    "MACE_FQ_FUSE": "0: the GPU runtime launches every FakeQuantize of a quantized model on its own instead of "
                    "applying it in the epilogue of the conv that produces its input",
    "MACE_GPU_INT8_WEIGHTS": "0: the GPU runtime keeps 8-bit model weights as float on the device (default: 8-bit, "
                             "dequantized in the kernels)",
    "MACE_TRUSTED_KEYS": "file of trusted public keys (ssh-ed25519 lines) whose signatures make a program cache "
                         "trusted wherever it is kept (default: <user config dir>/mace/trusted_keys)",
    "MACE_CPU_KERNEL_CACHE": "directory of the CPU runtime's compiled-kernel cache (default <user cache dir>/mace/"
                             "cpu-kernels; 0 or off: compile in every process)",
    "MACE_PROGRAM_STORE": "program store URL (directory, http(s)://, s3://) an engine pulls its device's section "
                          "from at start (mace/store)",
    "MACE_PROGRAM_STORE_TIMEOUT": "seconds an engine waits for the program store before compiling from source "
                                  "(default 2)",
    "MACE_PROGRAM_STORE_COPY": "directory of the local copies of program stores (default <user cache dir>/mace/store)",
    "MACE_DEVICE_KEY": "private key (from `mace cache keygen`) a device signs the section it contributes to a "
                       "program store with (publish_on_miss)",
    "MACE_LOG_LEVEL": "logging level of the `mace` logger (default INFO)",
    "MACE_DEVICE_PROBE": "0: trust clGetDeviceInfo instead of probing the device's vector widths in a child "
                         "process (the probe runs once per device; its result is kept in the program cache)",
    "MACE_FARM_DEVICE_CONF": "a farm node's device.yml: the boards it reaches over ssh, advertised as its devices "
                             "and run by its jobs (`mace farm build --device-conf` sets it for a local cluster)",
    "MACE_TEST_FARM_HOLD": "tests only: a directory; each farm job marks itself started there, then waits for "
                           "DIR/release (so a test can kill its node mid-job)",
    "MACE_HARVEST_EXIT_SECONDS": "how long a process waits at exit for compiled programs still being saved to its "
                                 "program file (default 60; those left are compiled again by the next start)",
    "MACE_COMPILE_PROCESSES": "how many processes (PoCL) or threads (other drivers) a cold start compiles its OpenCL "
                              "programs in (default: on PoCL the CPUs this process may use, from 4 up; 1: one at a "
                              "time, in this process)",
    "MACE_TEST_BREAK_BUILD": "tests only: a regex over \"<program> <build options>\" whose builds fail as if the "
                             "driver's compiler had failed (\"abort:\" first: the probe process aborts)",
}


_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _bool(name: str, value: str) -> bool:
    from mace.errors import SettingsError
    try:
        return _BOOL[value.strip().lower()]
    except KeyError:
        raise SettingsError(f"{name}={value!r}: not a boolean: set it to 1 or 0 (or unset it)") from None


def _level(name: str, value: str) -> None:
    from mace.errors import SettingsError
    if value.strip().upper() not in _LEVELS:
        raise SettingsError(f"{name}={value!r}: not a log level: set it to one of {', '.join(_LEVELS)}")


_UNITS = {"": 1, "b": 1}
for _i, _p in enumerate("kmgt", start=1):
    _UNITS.update({_p: 1024**_i, _p + "i": 1024**_i, _p + "ib": 1024**_i, _p + "b": 1000**_i})


def parse_size(text: str) -> int:
    """Bytes from '268435456', '256M', '256MiB' (1024-based) or '256MB' (1000-based).
    Raises ValueError."""
    m = re.fullmatch(r"\s*(\d+)\s*([a-z]*)\s*", text.lower())
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 268435456, 256M or 256MiB)")
    return int(m.group(1)) * _UNITS[m.group(2)]



def _size(name: str, value: str) -> None:
    from mace.errors import SettingsError
    try:
        ok = parse_size(value) > 0
    except ValueError:
        ok = False
    if not ok:
        raise SettingsError(f"{name}={value!r}: not a positive size: set it to e.g. 268435456, 256M or 256MiB")


def _seconds(name: str, value: str) -> None:
    from mace.errors import SettingsError
    try:
        ok = float(value) > 0
    except ValueError:
        ok = False
    if not ok:
        raise SettingsError(f"{name}={value!r}: not a positive number of seconds: set it to e.g. 2 or 0.5")


def _wait_seconds(name: str, value: str) -> None:
    from mace.errors import SettingsError
    try:
        ok = float(value) >= 0
    except ValueError:
        ok = False
    if not ok:
        raise SettingsError(f"{name}={value!r}: not a number of seconds: set it to e.g. 60 (0: do not wait)")


def _count(name: str, value: str) -> None:
    from mace.errors import SettingsError
    if not value.strip().isdigit() or int(value) < 1:
        raise SettingsError(f"{name}={value!r}: not a whole number, 1 or more: set it to e.g. 4 (or unset it)")


#: knobs whose values have a form; the others (a device name, a path) are free text
_CHECKS = {"MACE_TUNING": _bool, "MACE_COMMAND_BUFFER": _bool, "MACE_DEVICE_PROBE": _bool, "MACE_FQ_FUSE": _bool,
           "MACE_GPU_INT8_WEIGHTS": _bool, "MACE_LOG_LEVEL": _level, "MACE_PROGRAM_CACHE_MAX_BYTES": _size,
           "MACE_PROGRAM_STORE_TIMEOUT": _seconds, "MACE_HARVEST_EXIT_SECONDS": _wait_seconds,
           "MACE_COMPILE_PROCESSES": _count}


def check() -> None:
    """Raise SettingsError (one line: the variable, its value, the fix) for the first knob set to a
    value mace cannot use: a typo must not be ignored silently."""
    for name, fn in _CHECKS.items():
        value = get(name)
        if value is not None:
            fn(name, value)


def get(name: str, default: str | None = None) -> str | None:
    assert name in KNOBS, name
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def flag(name: str) -> bool:
    """A boolean knob; SettingsError for a value that is not one."""
    return _bool(name, get(name, "0") or "0")
