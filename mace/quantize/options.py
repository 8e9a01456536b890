"""What `quantize: 1` / `quantize_large_weights: 1` ask for (mace.yml fields and CLI options)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class QuantizeOptions:
    #: "full": int8 weights and uint8 activations (calibrated); "weights": int8 weights, float compute
    mode: str = "full"
    #: calibration statistic of the activation ranges: "minmax" or "percentile" (99.999th)
    stat: str = "minmax"
    #: weights: one scale per output channel (True) or per tensor
    per_channel: bool = True
    #: calibration inputs: a folder of .npy / .npz files or images
    calibration: Path | None = None
    #: activation ranges (`name@@min,max` per line): read when it exists and no calibration is
    #: given; written after a calibration
    range_file: Path | None = None
    #: how many calibration inputs at most (the first, in name order)
    max_inputs: int = 256
