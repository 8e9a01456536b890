"""ConvTranspose on the GPU runtime (1-D and 2-D: groups, strides, dilations, pads,
output_padding), `deconv.cl` kernel `deconv2d` (the only variant): gather form, each work-item
computes OCB output channels of one output pixel; bias and fused activation in the kernel."""
from __future__ import annotations

import numpy as np

from mace.ops import deconv as deconv_rules
from mace.runtime.opencl.ops.base import GpuOp, Launch, gpu_op, i32
from mace.runtime.opencl.ops.conv import round_up


@gpu_op
class ConvTransposeOp(GpuOp):
    op_types = ("ConvTranspose",)
    const_inputs = (1, 2)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        return len(in_shapes[0]) in (3, 4)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        a = node.attrs
        w = consts[1]
        if w is None:
            raise NotImplementedError("ConvTranspose with a non-constant weight")  # pragma: no cover
        shp, oshp = list(in_shapes[0]), list(out_shapes[0])
        nsp = len(shp) - 2
        k = list(w.shape[2:])
        s = list(a.get("strides", [1] * nsp))
        d = list(a.get("dilations", [1] * nsp))
        p = list(a.get("pads", [0] * (2 * nsp)))
        w = np.asarray(w, np.float32)
        if nsp == 1:
            shp, oshp = [shp[0], shp[1], 1, shp[2]], [oshp[0], oshp[1], 1, oshp[2]]
            k, s, d, p = [1] + k, [1] + s, [1] + d, [0, p[0], 0, p[1]]
            w = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2])
        n, c, h, wd = shp
        oh, ow = oshp[2], oshp[3]
        group = int(a.get("group", 1))
        cg, mg = c // group, w.shape[1]
        m = mg * group
        ocb = 8 if mg > 4 else 4
        mb = -(-mg // ocb)
        # (C, Mg, KH, KW) -> [g][mb][kh][kw][cg][ocb]
        wg = w.reshape(group, cg, mg, k[0], k[1])
        packed = np.zeros((group, mb * ocb, k[0], k[1], cg), np.float32)
        packed[:, :mg] = wg.transpose(0, 2, 3, 4, 1)
        packed = packed.reshape(group, mb, ocb, k[0], k[1], cg).transpose(0, 1, 3, 4, 5, 2)
        bias = consts[2] if len(consts) > 2 and consts[2] is not None else np.zeros(m, np.float32)
        bpk = np.zeros((group, mb * ocb), np.float32)
        bpk[:, :mg] = np.asarray(bias, np.float32).reshape(group, mg)
        self.w = rt.upload(np.ascontiguousarray(packed), dtype=np.float32)
        self.b = rt.upload(bpk, dtype=np.float32)
        opts = [f"-DKH={k[0]}", f"-DKW={k[1]}", f"-DSH={s[0]}", f"-DSW={s[1]}", f"-DDH={d[0]}", f"-DDW={d[1]}",
                f"-DOCB={ocb}"] + self.activation_options()
        self.k, self.key = self.kernel("deconv", "deconv2d", opts)
        self.args = [i32(cg), i32(h), i32(wd), i32(oh), i32(ow), i32(group), i32(mb), i32(mg), i32(p[0]), i32(p[1])]
        lx = 16 if ow >= 16 else 1
        self.gws, self.lws = (round_up(ow, lx), oh, n * group * mb), (lx, 1, 1)
        self.flops = deconv_rules.flops(in_shapes[0], consts[1].shape)

    def bind(self, inputs, outputs):
        self.k.set_args(inputs[0], self.w, self.b, outputs[0], *self.args)
        return [Launch(self.k, self.gws, self.lws, name=f"{self.node.name}:{self.node.op_type}",
                       program_key=self.key, flops=self.flops)]
