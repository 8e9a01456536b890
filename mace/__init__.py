"""mace: a MACE-style mobile AI compute engine.

ONNX models are converted (`mace convert`) into a checksummed `.mace` file, then run on an
OpenCL GPU runtime (PoCL on the CPU by default) or the NumPy CPU runtime, with a device-bound
compiled program cache (`mace-cl-compiled-program.bin`).
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Engine", "convert", "load_model", "ProgramCache", "MaceError", "__version__"]


def __getattr__(name):  # lazy: `import mace` stays cheap for the CLI's start-up time
    if name == "Engine":
        from mace.runtime.engine import Engine
        return Engine
    if name == "convert":
        from mace.convert import convert
        return convert
    if name == "load_model":
        from mace.ir.modelfile import load
        return load
    if name == "ProgramCache":
        from mace.programcache import ProgramCache
        return ProgramCache
    if name == "MaceError":
        from mace.errors import MaceError
        return MaceError
    raise AttributeError(name)
