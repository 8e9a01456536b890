"""Full 8-bit pointwise convolutions with integer dot products (`qdot.cl`), the `int8_dot`
variant of a 1x1 Conv of a `quantize: 1` model: offered to the tuner (last: on Intel's CPU runtime
it measured 30x slower than the float kernel) where the device's probe confirmed 8-bit dot
products (`DeviceCaps.integer_dot`), the weights are int8 per output channel
(symmetric), and the input comes from a per-tensor 8-bit FakeQuantize (its grid is what the
kernel recovers exactly). Two launches: the input quantized into a pixel-major char4 scratch
buffer, then the int8 x int8 -> int32 GEMM with the float epilogue (bias, residual, activation)."""
from __future__ import annotations

import numpy as np

from mace.runtime.opencl.ops.base import Launch, f32, i32

VARIANT = "int8_dot"


def input_grid(rt, node) -> tuple[float, int, int, int] | None:
    """(scale, zero point, qmin, qmax) of the per-tensor 8-bit FakeQuantize producing the node's
    input, or None."""
    src = node.inputs[0]
    prod = next((n for n in rt.graph.nodes if src in n.outputs), None)
    if prod is None or prod.op_type != "FakeQuantize" or "dq_scale" in prod.attrs:
        return None
    a = prod.attrs
    scale, zp = np.ravel(a["scale"]), np.ravel(a.get("zero_point", 0))
    if scale.size != 1 or zp.size != 1 or (int(a["qmin"]), int(a["qmax"])) not in ((0, 255), (-128, 127)):
        return None
    return float(scale[0]), int(zp[0]), int(a["qmin"]), int(a["qmax"])


def eligible(op) -> bool:
    """The conv can run `int8_dot` on this device."""
    G = op.g
    pointwise = G["k"] == (1, 1) and G["s"] == (1, 1) and not any(G["pads"]) and G["group"] == 1
    return bool(op.rt.caps.integer_dot) and pointwise and op.qw is not None and op.qw.dtype is np.int8 \
        and op.qw.zero_point is None and input_grid(op.rt, op.node) is not None


class Int8Dot:
    """The two launches of one conv's `int8_dot` variant."""

    def __init__(self, op, act: list[str], scratch_buffer):
        """`scratch_buffer`: conv.py's, for the quantized input (shared with the executor's ops)."""
        rt, G = op.rt, op.g
        self.op = op
        sx, zx, qmin, qmax = input_grid(rt, op.node)
        n, k, m, p = G["n"], G["c"], G["m"], G["h"] * G["w"]
        k4 = -(-k // 4)
        opts = rt.caps.integer_dot.split() + [f"-DQMIN={qmin}", f"-DQMAX={qmax}", f"-DQOFF={128 if qmin == 0 else 0}"]
        self.k_q, self.key_q = op.kernel("qdot", "quantize_cols", opts)
        self.k_mm, self.key = op.kernel("qdot", "qgemm_dot", opts + act)
        wq = np.zeros((m, k4 * 4), np.int8)
        wq[:, :k] = op.qw.q.reshape(m, k).astype(np.int8)
        self.w = rt.upload(wq, dtype=np.int8)
        self.wsum = rt.upload(wq.astype(np.int32).sum(1), dtype=np.int32)
        self.mscale = rt.upload((np.float64(sx) * op.qw.scale.astype(np.float64)).astype(np.float32), dtype=np.float32)
        self.b = rt.upload(op.bias, dtype=np.float32)
        self.xq = scratch_buffer(rt, n * p * k4 * 4)
        self.dims = (n, k, m, p, k4, sx, zx)

    def launches(self, inputs, outputs, res: list) -> list[Launch]:
        n, k, m, p, k4, sx, zx = self.dims
        name = self.op.node.name
        self.k_q.set_args(inputs[0], self.xq, i32(k), i32(p), i32(k4), f32(sx), i32(zx))
        self.k_mm.set_args(self.xq, self.w, self.wsum, self.mscale, self.b, outputs[0], *res,
                           i32(k4), i32(p), i32(m), i32(zx))
        return [Launch(self.k_q, (p, k4, n), None, name=f"{name}/quantize:Conv", program_key=self.key_q),
                Launch(self.k_mm, (p, -(-m // 8), n), None, name=f"{name}:Conv", program_key=self.key,
                       flops=self.op.flops, tune_key_extra={"variant": VARIANT})]
