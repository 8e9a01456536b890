"""FakeQuantize on the GPU runtime (`quantize.cl`). Per tensor (one scale and zero point, the same
for the dequantization: what `quantize: 1` writes): `fake_quantize4`, the parameters as kernel
arguments; and where it is the only reader of a conv's output, no launch at all: the conv applies
it in its epilogue (`mace.runtime.opencl.fqfuse`). Otherwise `fake_quantize`, the parameters of
each channel along the quantization axis in one float4 buffer uploaded at init."""
from __future__ import annotations

import numpy as np

from mace.runtime.opencl.ops.base import GpuOp, Launch, f32, gpu_op, i32


def _channels(v, c: int) -> np.ndarray:
    a = np.asarray(v, np.float32).reshape(-1)
    return np.broadcast_to(a, (c,)) if a.size == 1 else a


def per_tensor(attrs: dict) -> tuple[float, int, int, int] | None:
    """(scale, zero point, qmin, qmax) of a per-tensor FakeQuantize that dequantizes with the
    parameters it quantizes with, else None."""
    scale, zp = np.ravel(attrs["scale"]), np.ravel(attrs.get("zero_point", 0))
    if "dq_scale" in attrs or scale.size != 1 or zp.size != 1 or attrs.get("axis") is not None:
        return None
    return float(scale[0]), int(zp[0]), int(attrs["qmin"]), int(attrs["qmax"])


def fq_options(grid) -> list[str]:
    """Compile options of a kernel with the fused per-tensor FakeQuantize (FAKEQ in common.h)."""
    return ["-DFQ", f"-DQMIN={grid[2]}", f"-DQMAX={grid[3]}"]


def fq_args(grid) -> list:
    """FQ_ARGS of common.h: scale, its float32 inverse, zero point."""
    s = np.float32(grid[0])
    return [f32(s), f32(np.float32(1.0) / s), i32(grid[1])]


class InPlaceFakeQuantize:
    """`fake_quantize4` over a buffer in place: after a conv variant that has no fused epilogue
    (Winograd, split K, int8_dot) when the FakeQuantize reading it launches nothing."""

    def __init__(self, op: GpuOp, grid, n: int):
        self.op, self.grid, self.n = op, grid, n
        self.k, self.key = op.kernel("quantize", "fake_quantize4", fq_options(grid))

    def launch(self, buf, name: str) -> Launch:
        self.k.set_args(buf, buf, i32(self.n), *fq_args(self.grid))
        return Launch(self.k, (-(-self.n // 4),), None, name=f"{name}/fq:FakeQuantize", program_key=self.key,
                      flops=4.0 * self.n)


@gpu_op
class FakeQuantizeOp(GpuOp):
    op_types = ("FakeQuantize",)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        a, shape = node.attrs, tuple(in_shapes[0])
        self.n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        #: set by the fusion pass: its producer applies it (this op is then an alias, no launch)
        self.fused_into = None
        self.grid = per_tensor(a)
        if self.grid is not None:
            self.k, self.key = self.kernel("quantize", "fake_quantize4", fq_options(self.grid))
            return
        axis = a.get("axis")
        if axis is None or not shape:
            self.c, self.s = 1, self.n
        else:
            axis %= len(shape)
            self.c = int(shape[axis])
            self.s = int(np.prod(shape[axis + 1:], dtype=np.int64))
        scale, zp = _channels(a["scale"], self.c), _channels(a.get("zero_point", 0), self.c)
        params = np.stack([np.float32(1.0) / scale, zp, _channels(a.get("dq_scale", a["scale"]), self.c),
                           _channels(a.get("dq_zero_point", a.get("zero_point", 0)), self.c)], axis=1)
        self.params = rt.upload(np.ascontiguousarray(params), dtype=np.float32)
        self.k, self.key = self.kernel("quantize", "fake_quantize",
                                       [f"-DQMIN={int(a['qmin'])}", f"-DQMAX={int(a['qmax'])}"])

    def bind(self, inputs, outputs):
        if self.n == 0 or self.fused_into is not None:
            return []
        name = f"{self.node.name}:{self.node.op_type}"
        if self.grid is not None:
            self.k.set_args(inputs[0], outputs[0], i32(self.n), *fq_args(self.grid))
            return [Launch(self.k, (-(-self.n // 4),), None, name=name, program_key=self.key, flops=4.0 * self.n)]
        self.k.set_args(inputs[0], self.params, outputs[0], i32(self.c), i32(self.s), i32(self.n))
        return [Launch(self.k, (self.n,), None, name=name, program_key=self.key, flops=4.0 * self.n)]
