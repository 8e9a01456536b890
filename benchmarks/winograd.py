"""Winograd F(2x2,3x3) vs the default Conv variant on ResNet-18's 3x3 stride-1 convs (GPU runtime):
conv_variants.py with these layers, batch 1 and the `winograd` variant by default.

    python benchmarks/winograd.py [--device D] [--runs 30] [--variants winograd,gpu_winograd] [--batch 1]
        [--data-type fp32_fp32]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conv_variants import RESNET18_3X3, main  # noqa: E402

if __name__ == "__main__":
    main(benchmark="winograd", layers=RESNET18_3X3, batch=1, variants="winograd")
