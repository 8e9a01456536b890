"""BatchNormalization (inference form, standalone, NCHW, rank >= 2) on the GPU runtime.

Variant `batchnorm` (the only one): one (n, c) plane per work-item, scale/shift folded at init
(`mace.ops.batchnorm`), fused activation applied in the kernel.
"""
from __future__ import annotations

import numpy as np

from mace.ops.batchnorm import bn_scale_shift
from mace.runtime.opencl.ops.base import GpuOp, Launch, gpu_op, i32, wide_width


@gpu_op
class BatchNormOp(GpuOp):
    op_types = ("BatchNormalization",)
    const_inputs = (1, 2, 3, 4)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        return len(in_shapes[0]) >= 2 and len(node.inputs) >= 5 and all(node.inputs[1:5]) \
            and len([o for o in node.outputs if o]) == 1

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        if any(t is None for t in consts[1:5]):
            raise NotImplementedError("BatchNormalization with non-constant parameters")  # pragma: no cover
        scale, shift = bn_scale_shift(*consts[1:5], node.attrs.get("epsilon", 1e-5))
        shp = in_shapes[0]
        self.c = int(shp[1])
        self.nc = int(shp[0] * shp[1])
        self.s = int(np.prod(shp[2:], dtype=np.int64)) if len(shp) > 2 else 1
        self.scale = rt.upload(scale, dtype=np.float32)
        self.shift = rt.upload(shift, dtype=np.float32)
        self.k, self.key = self.kernel("batchnorm", "batchnorm",
                                       self.activation_options() + [f"-DWV={wide_width(rt.caps)}"])

    def bind(self, inputs, outputs):
        self.k.set_args(inputs[0], self.scale, self.shift, outputs[0], i32(self.c), i32(self.s), i32(self.nc))
        return [Launch(self.k, (self.nc,), (1,), name=f"{self.node.name}:{self.node.op_type}",
                       program_key=self.key, flops=2.0 * self.nc * self.s)]
