"""Gemm and MatMul on the GPU runtime (`linear.cl`).

Variants: `default` (kernel `gemm`, register tiles for PoCL's CPU device, work-groups of one
work-item; the default on CPU devices) and `gpu_gemm` / `gpu_gemm_t32` (kernel `gemm_tiled`, a
local-memory SGEMM with 16x16 work-groups and 4x4 / 2x2 micro-tiles, i.e. 64x64 / 32x32 output
tiles; the default on other devices, 32x32 first when 64x64 tiles would not give every compute
unit two work-groups). Offered only where the device's work-group and local memory limits fit.

A constant B the model file holds as 8-bit integers stays 8-bit on the device (`qweights`, -DWQ:
dequantized per column in the kernel). `int8_dot` (qdot: full 8-bit, A quantized to bytes, int32
accumulation) is offered to the tuner where the device has integer dot products, B is constant
int8, A row-major and C at most one row. Gemm: alpha, beta, transA, transB; B constant or not (a constant B is re-laid (K, N) at init);
C constant (pre-broadcast to (M, N) at init) or not (read through broadcast strides). MatMul: N-d with NumPy broadcasting of the batch dims (per-batch
offsets computed at init), 1-D operands promoted as NumPy does, B constant or not.
"""
from __future__ import annotations

import numpy as np
import pyopencl as cl

from mace.runtime.opencl.ops import qdot, qweights
from mace.runtime.opencl.ops.base import GpuOp, Launch, f32, gpu_op, i32
from mace.runtime.opencl.ops.conv import GEMM_WG, gemm_fits, gemm_tile, scratch_buffer


def _mr(m: int) -> int:
    for r in (8, 4, 2):
        if m >= r:
            return r
    return 1


class _Linear(GpuOp):
    def _setup(self, m, n, k, nb, off_a, off_b, sam, sak, sbk, sbn, alpha, b_const, c=None, qw=None):
        """c: None, or (constant array or None for the runtime input 2, beta, scm, scn); qw: B's
        8-bit form (qweights.QWeight, per column; b_const then holds its integers)."""
        rt = self.rt
        self.dims = (m, n, k, nb, sbn)
        self.has_c = c is not None
        self.qw = qw
        if qw is not None:
            self.b_const = qw.upload(rt, b_const)
            self.wq_args = [rt.upload(a, dtype=np.float32) for a in qw.per_channel(lambda v: v)]
            self.tuning_attrs = {"weights": np.dtype(qw.dtype).name}
        else:
            self.b_const = rt.upload(b_const) if b_const is not None else None
            self.wq_args = []
        c_arr, beta, scm, scn = c if c is not None else (np.zeros(1, np.float32), 0.0, 0, 0)
        self.c = rt.upload(c_arr) if c_arr is not None else None
        self.offs = (rt.upload(np.asarray(off_a, np.int32), dtype=np.int32),
                     rt.upload(np.asarray(off_b, np.int32), dtype=np.int32))
        self.args = [i32(m), i32(n), i32(k), i32(sam), i32(sak), i32(sbk), i32(sbn), f32(alpha),
                     f32(beta), i32(scm), i32(scn), i32(nb)]
        self.flops = 2.0 * nb * m * n * k
        caps = rt.caps
        gpu = [v for v in ("gpu_gemm", "gpu_gemm_t32") if gemm_fits(caps, gemm_tile(v))]
        if len(gpu) == 2 and self._tiles(4) < 2 * caps.compute_units:
            gpu = gpu[::-1]  # too few 64x64 tiles to fill the device: 32x32 tiles first
        cpu = caps.is_cpu
        self._variants = ["default"] + gpu if cpu or not gpu else gpu + ["default"]
        # full 8-bit where the device has integer dot products (qdot): for the tuner
        self.int8 = None
        self._int8_bias = qdot.linear_bias(self, n, k, nb * m, (sam, sak) == (k, 1), not np.any(off_b), c)
        if self._int8_bias is not None:
            self._int8_w = (np.asarray(b_const).T, qw.scale * np.float32(alpha))
            self._variants.append(qdot.VARIANT)
        self._variants = self.first_working_variant(self._variants)

    def _tiles(self, t: int) -> int:
        m, n, _, nb, _ = self.dims
        return -(-m // (16 * t)) * -(-n // (16 * t)) * nb

    def variants(self) -> list[str]:
        return list(self._variants)

    def use_variant(self, name: str) -> None:
        super().use_variant(name)
        m, n, k, nb, sbn = self.dims
        self.int8 = None
        if name == qdot.VARIANT:  # A's rows (all batches) x B's columns, bias and activation in the epilogue
            w2, scale = self._int8_w
            self.int8 = qdot.Int8Gemm(self, self.activation_options(), scratch_buffer, w2, scale, self._int8_bias,
                                      rows=(1, nb * m, k))
            return
        opts = self.activation_options() + (["-DHAS_C"] if self.has_c else []) \
            + (self.qw.options() if self.qw is not None else [])
        if name.startswith("gpu_gemm"):  # local-memory tiled SGEMM, 16x16 work-groups
            t = gemm_tile(name)
            self.k, self.key = self.kernel("linear", "gemm_tiled", opts + ["-DTILED", f"-DTM={t}", f"-DTN={t}"])
            self.gws = (-(-n // (16 * t)) * GEMM_WG, -(-m // (16 * t)) * GEMM_WG, nb)
            self.lws = (GEMM_WG, GEMM_WG, 1)
            return
        vw, pb = self.rt.caps.vector_width(n) if sbn == 1 else (1, 1)
        mr = _mr(m)
        self.k, self.key = self.kernel("linear", "gemm", opts + [f"-DVW={vw}", f"-DPB={pb}", f"-DMR={mr}"])
        self.gws = (-(-n // (vw * pb)), -(-m // mr), nb)
        self.lws = (1, 1, 1)

    def bind(self, inputs, outputs):
        if self.int8 is not None:
            return self.int8.launches(inputs, outputs, [], self.node.name, self.node.op_type)
        b = self.b_const if self.b_const is not None else inputs[1]
        c = self.c if self.c is not None else inputs[2]
        self.k.set_args(inputs[0], b, c, outputs[0], *self.wq_args, *self.offs, *self.args)
        return [Launch(self.k, self.gws, self.lws, name=f"{self.node.name}:{self.node.op_type}",
                       program_key=self.key, flops=self.flops, tune_key_extra={"variant": self.variant})]


@gpu_op
class GemmOp(_Linear):
    op_types = ("Gemm",)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        return len(in_shapes[0]) == 2 and len(in_shapes[1]) == 2

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        a = node.attrs
        ta, tb = int(a.get("transA", 0)), int(a.get("transB", 0))
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        (ar, ac), (br, bc) = in_shapes[0], in_shapes[1]
        m, k = (ac, ar) if ta else (ar, ac)
        n = br if tb else bc
        sam, sak = (1, m) if ta else (k, 1)
        b_const = qw = None
        if consts[1] is not None:
            qw = qweights.weight_of(rt, node, 1, 0 if tb else 1, n)
            bm = qw.q if qw is not None else np.asarray(consts[1], np.float32)
            b_const = np.ascontiguousarray(bm.T if tb else bm)
            sbk, sbn = n, 1
        else:
            sbk, sbn = (1, k) if tb else (n, 1)
        c = None
        if len(node.inputs) > 2 and node.inputs[2] and beta != 0.0:
            if consts[2] is not None:  # pre-broadcast to (M, N)
                c_full = np.broadcast_to(np.asarray(consts[2], np.float32), (m, n))
                c = (np.ascontiguousarray(c_full), beta, n, 1)
            else:  # broadcast strides of the runtime C
                cs = [1] * (2 - len(in_shapes[2])) + list(in_shapes[2])
                c = (None, beta, cs[1] if cs[0] > 1 else 0, 1 if cs[1] > 1 else 0)
        self._setup(m, n, k, 1, [0], [0], sam, sak, sbk, sbn, alpha, b_const, c, qw)


@gpu_op
class MatMulOp(_Linear):
    op_types = ("MatMul",)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        sa, sb = list(in_shapes[0]), list(in_shapes[1])
        if len(sa) == 1:
            sa = [1] + sa
        if len(sb) == 1:
            sb = sb + [1]
        m, k = sa[-2], sa[-1]
        n = sb[-1]
        batch = np.broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2]))
        nb = int(np.prod(batch, dtype=np.int64))
        # element offset of each (broadcast) batch entry in A and B
        ia = np.arange(int(np.prod(sa[:-2], dtype=np.int64)), dtype=np.int64).reshape(sa[:-2]) * (m * k)
        ib = np.arange(int(np.prod(sb[:-2], dtype=np.int64)), dtype=np.int64).reshape(sb[:-2]) * (k * n)
        off_a = np.broadcast_to(ia.reshape((1,) * (len(batch) - ia.ndim) + ia.shape), batch).reshape(-1)
        off_b = np.broadcast_to(ib.reshape((1,) * (len(batch) - ib.ndim) + ib.shape), batch).reshape(-1)
        qw = qweights.weight_of(rt, node, 1, -1, n) if consts[1] is not None and len(in_shapes[1]) >= 2 else None
        b_const = None if consts[1] is None else qw.q if qw is not None else np.asarray(consts[1], np.float32)
        self._setup(m, n, k, nb, off_a, off_b, k, 1, n, 1, 1.0, b_const, qw=qw)
