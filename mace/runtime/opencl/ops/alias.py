"""Reshape / Flatten / Squeeze / Unsqueeze / Identity: the output shares input 0's buffer
(dense row-major layout is unchanged), so there is no kernel and no launch."""
from __future__ import annotations

from mace.runtime.opencl.ops.base import GpuOp, gpu_op


@gpu_op
class ShapeAlias(GpuOp):
    op_types = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
    alias = True

    def bind(self, inputs, outputs):
        return []
