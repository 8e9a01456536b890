"""MaxPool / AveragePool (1-D and 2-D: pads, strides, dilations, ceil_mode, count_include_pad)
and GlobalAveragePool / GlobalMaxPool on the GPU runtime (`pool.cl`)."""
from __future__ import annotations

import numpy as np

from mace.ops import pool as pool_rules
from mace.runtime.opencl.ops.base import GpuOp, Launch, gpu_op, i32, wide_width


@gpu_op
class PoolOp(GpuOp):
    """`pool2d`: every MaxPool / AveragePool, one output row of one plane per work-item."""

    op_types = ("MaxPool", "AveragePool")

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        return len(in_shapes[0]) in (3, 4) and len(node.outputs) == 1

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        a = node.attrs
        shp, oshp = in_shapes[0], out_shapes[0]
        nsp = len(shp) - 2
        k = list(a["kernel_shape"])
        s = list(a.get("strides", [1] * nsp))
        d = list(a.get("dilations", [1] * nsp))
        p = list(a.get("pads", [0] * (2 * nsp)))
        if nsp == 1:
            shp, oshp = (shp[0], shp[1], 1, shp[2]), (oshp[0], oshp[1], 1, oshp[2])
            k, s, d, p = [1] + k, [1] + s, [1] + d, [0, p[0], 0, p[1]]
        n, c, h, w = shp
        oh, ow = oshp[2], oshp[3]
        opts = ["-DPOOL2D", f"-DKH={k[0]}", f"-DKW={k[1]}", f"-DSH={s[0]}", f"-DSW={s[1]}",
                f"-DDH={d[0]}", f"-DDW={d[1]}"]
        if node.op_type == "MaxPool":
            opts.append("-DPOOL_MAX")
        elif a.get("count_include_pad", 0):
            opts.append("-DCOUNT_PAD")
        self.k, self.key = self.kernel("pool", "pool2d", opts)
        self.args = [i32(h), i32(w), i32(oh), i32(ow), i32(p[0]), i32(p[1]), i32(h + p[2]), i32(w + p[3]), i32(n * c)]
        self.gws, self.lws = (oh, n * c), (1, 1)
        self.flops = pool_rules.flops(out_shapes[0], a["kernel_shape"])

    def bind(self, inputs, outputs):
        self.k.set_args(inputs[0], outputs[0], *self.args)
        return [Launch(self.k, self.gws, self.lws, name=f"{self.node.name}:{self.node.op_type}",
                       program_key=self.key, flops=self.flops)]


@gpu_op
class GlobalPoolOp(GpuOp):
    """`global_pool`: one (n, c) plane per work-item."""

    op_types = ("GlobalAveragePool", "GlobalMaxPool")

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        shp = in_shapes[0]
        self.nc = int(shp[0] * shp[1])
        self.s = int(np.prod(shp[2:], dtype=np.int64)) if len(shp) > 2 else 1
        opts = ["-DGLOBAL_POOL", f"-DWV={wide_width(rt.caps)}"] + (["-DGMAX"] if node.op_type == "GlobalMaxPool" else [])
        self.k, self.key = self.kernel("pool", "global_pool", opts)

    def bind(self, inputs, outputs):
        self.k.set_args(inputs[0], outputs[0], i32(self.s), i32(self.nc))
        return [Launch(self.k, (self.nc,), (1,), name=f"{self.node.name}:{self.node.op_type}",
                       program_key=self.key, flops=float(self.nc * self.s))]
