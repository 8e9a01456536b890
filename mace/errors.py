"""Typed, user-facing errors.

Every error a user can meet is one line that names the file (or node) and the fix; the CLI
maps `MaceError` to exit code 2 (bad input) without a traceback.
"""
from __future__ import annotations


class MaceError(Exception):
    """Base class: a one-line message meant for the user."""

    exit_code = 2


class ModelFileError(MaceError):
    """A .mace model file is missing, truncated, corrupt or of an unknown version."""


class ConfigError(MaceError):
    """A deployment file (mace.yml / device.yml) is invalid."""


class ConversionError(MaceError):
    """An ONNX model cannot be converted (unsupported op, bad shape, broken file)."""


class InputError(MaceError):
    """Inputs given to a run do not match the model."""


class DeviceError(MaceError):
    """No OpenCL device matches the request, or the device cannot run the model."""


class KernelBuildError(DeviceError):
    """The device's compiler failed to build a program or to create one of its kernels; the op
    takes its next variant, then the CPU runtime (never fatal to a run)."""

    def __init__(self, message: str, *, program: str = "", key: str = "", stage: str = "build",
                 log: str = "", known: bool = False):
        super().__init__(message)
        self.program, self.key, self.stage, self.log, self.known = program, key, stage, log, known


class SettingsError(MaceError):
    """A MACE_* environment variable holds a value mace cannot use."""
