"""Full 8-bit convolutions and GEMMs (`qdot.cl`): the `int8_dot` variant of a Conv (any kernel
size, stride, dilation and padding; one group) and of a Gemm / MatMul with a constant B, in a
`quantize: 1` model, where the device's probe confirmed 8-bit dot products
(`DeviceCaps.integer_dot`), the weights are int8 per output channel (symmetric), and the input
comes from a per-tensor 8-bit FakeQuantize (its grid is what the kernel recovers exactly).
Launches: the input quantized to bytes (a padded copy and its im2col for a conv with a window;
straight into the GEMM's layout for a pointwise conv or A), then the u8 x s8 -> int32 GEMM with
the float epilogue (bias, residual, activation). Offered to the
tuner, last: on Intel's CPU runtime it measures about as fast as the float kernels (faster on
some MobileNetV2 expansion convs, slower on most other layers; benchmarks/int8_layers.py)."""
from __future__ import annotations

import numpy as np

from mace.runtime.opencl.ops.base import Launch, f32, i32
from mace.runtime.opencl.ops.quantize import per_tensor

VARIANT = "int8_dot"
#: output channels and 16-pixel blocks per work-item
TM, PB = 8, 2
#: the int32 accumulator holds K products of 255 x 127
MAX_K = (2**31 - 1) // (255 * 127)


def input_grid(rt, node) -> tuple[float, int, int, int] | None:
    """(scale, zero point, qmin, qmax) of the per-tensor 8-bit FakeQuantize producing the node's
    input, or None."""
    src = node.inputs[0]
    prod = next((n for n in rt.graph.nodes if src in n.outputs), None)
    if prod is None or prod.op_type != "FakeQuantize":
        return None
    grid = per_tensor(prod.attrs)
    return grid if grid is not None and grid[2:] in ((0, 255), (-128, 127)) else None


def _int8_symmetric(op) -> bool:
    return bool(op.rt.caps.integer_dot) and op.qw is not None and op.qw.dtype is np.int8 \
        and op.qw.zero_point is None and input_grid(op.rt, op.node) is not None


def _fits(k: int, p: int) -> bool:
    """int32 accumulators and int indices (the kernels' byte matrix is K x P16 per image)."""
    return k <= MAX_K and k * (-(-p // 16) * 16) < 2**31


def eligible(op) -> bool:
    """The conv can run `int8_dot` on this device (one group: a GEMM over im2col columns)."""
    G = op.g
    k = G["cg"] * G["k"][0] * G["k"][1]
    return G["group"] == 1 and _fits(k, G["n"] * G["oh"] * G["ow"]) and _int8_symmetric(op)


def linear_bias(op, n: int, k: int, rows: int, rows_a: bool, b_shared: bool, c) -> np.ndarray | None:
    """The per-column bias of a Gemm / MatMul that can run `int8_dot` on this device (A
    row-major, one B for every batch, C absent or one row broadcast down the rows), or None."""
    if not (rows_a and b_shared and _fits(k, rows) and _int8_symmetric(op)):
        return None
    if c is None:
        return np.zeros(n, np.float32)
    c_arr, beta = c[0], c[1]
    if c_arr is None or not np.all(c_arr == c_arr[:1]):
        return None
    return (beta * np.asarray(c_arr[0], np.float64)).astype(np.float32)


class Int8Gemm:
    """The launches of one op's `int8_dot` variant: `w2` (M, K) int8 integers, `scale` (M,)
    per output channel, `bias` (M,) float; conv geometry `g` (dict of conv.py) or `rows` (P, K)
    for a row-major A (Gemm / MatMul: output (P, M) row-major)."""

    def __init__(self, op, act: list[str], scratch_buffer, w2: np.ndarray, scale: np.ndarray,
                 bias: np.ndarray, rows: tuple[int, int, int] | None = None):
        rt = op.rt
        self.op = op
        sx, zx, qmin, qmax = input_grid(rt, op.node)
        uoff = 128 if qmin < 0 else 0
        m, k = w2.shape
        opts = rt.caps.integer_dot.split() + [f"-DQMIN={qmin}", f"-DQMAX={qmax}", f"-DUOFF={uoff}", f"-DTM={TM}", f"-DPB={PB}"]
        self.steps = []  # (kernel, args, gws, lws, program key, name suffix) before the GEMM
        if rows is None:
            G = op.g
            (kh, kw), (sh, sw), (dh, dw), (pt, pl, pb, pr) = G["k"], G["s"], G["d"], G["pads"]
            opts += [f"-DKH={kh}", f"-DKW={kw}", f"-DSH={sh}", f"-DSW={sw}", f"-DDH={dh}", f"-DDW={dw}"]
            n, c, h, w, p = G["n"], G["c"], G["h"], G["w"], G["oh"] * G["ow"]
            kq, key_q = op.kernel("qdot", "quantize_pad", opts)
            if (kh, kw, sh, sw) == (1, 1, 1, 1) and not any(G["pads"]):  # one row of P pixels, no im2col
                self.steps.append((kq, [1, p, 1, p, -(-p // 16) * 16, 0, 0], (p, 1, n * c), None, key_q, "quantize"))
                scratch = 0
            else:
                hp, wp = h + pt + pb, w + pl + pr
                self.pad = scratch_buffer(rt, n * c * hp * wp, 1)
                self.steps.append((kq, [h, w, hp, wp, wp, pt, pl], (wp, hp, n * c), None, key_q, "quantize"))
                ki, key_i = op.kernel("qdot", "im2col_u8", opts)
                self.steps.append((ki, [c, hp, wp, G["oh"], G["ow"]], (G["oh"], c, n), (1, 1, 1), key_i, "im2col"))
                scratch = 2
        else:
            opts += ["-DROWS"]
            n, p, _ = rows
            kq, key_q = op.kernel("qdot", "quantize_rows", opts)
            self.steps.append((kq, [k, p], (k, p, n), None, key_q, "quantize"))
            scratch = 0
        self.k_mm, self.key = op.kernel("qdot", "qgemm_u8", opts + act)
        mb = -(-m // TM)
        wt = np.zeros((mb * TM, k), np.int8)
        wt[:m] = np.rint(w2).astype(np.int8)
        self.w = rt.upload(np.ascontiguousarray(wt.reshape(mb, TM, k).transpose(0, 2, 1)), dtype=np.int8)
        self.wsum = rt.upload(wt[:m].astype(np.int32).sum(1), dtype=np.int32)
        self.mscale = rt.upload((np.float64(sx) * scale.astype(np.float64)).astype(np.float32), dtype=np.float32)
        self.b = rt.upload(np.asarray(bias, np.float32), dtype=np.float32)
        self.xq = scratch_buffer(rt, n * -(-p // 16) * 16 * k, scratch)
        self.dims = (n, k, m, p, mb, sx, zx, zx + uoff)

    def launches(self, inputs, outputs, res: list, name: str, op_type: str) -> list[Launch]:
        n, k, m, p, mb, sx, zx, zu = self.dims
        out = []
        for i, (kern, args, gws, lws, key, what) in enumerate(self.steps):
            src, dst = (inputs[0], self.xq) if len(self.steps) == 1 else \
                ((inputs[0], self.pad) if i == 0 else (self.pad, self.xq))
            scale_args = [f32(1.0 / sx), i32(zx)] if what == "quantize" else []
            kern.set_args(src, dst, *[i32(a) for a in args], *scale_args)
            out.append(Launch(kern, gws, lws, name=f"{name}/{what}:{op_type}", program_key=key))
        self.k_mm.set_args(self.xq, self.w, self.wsum, self.mscale, self.b, outputs[0], *res,
                           i32(k), i32(p), i32(m), i32(zu))
        return out + [
                Launch(self.k_mm, (-(-p // (16 * PB)), mb, n), None, name=f"{name}:{op_type}", program_key=self.key,
                       flops=self.op.flops, tune_key_extra={"variant": VARIANT})]
