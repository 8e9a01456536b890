"""Data movement: the Pad modes both runtimes take (ONNX's names, which are also NumPy's). The
GPU kernel's mode id is a mode's position here (`movement.cl` PAD_*)."""
from __future__ import annotations

PAD_MODES = ("constant", "reflect", "edge", "wrap")
