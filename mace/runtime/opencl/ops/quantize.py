"""FakeQuantize on the GPU runtime (`quantize.cl`): the parameters of each channel along the
quantization axis (one for a per-tensor node) in one float4 buffer uploaded at init."""
from __future__ import annotations

import numpy as np

from mace.runtime.opencl.ops.base import GpuOp, Launch, gpu_op, i32


def _channels(v, c: int) -> np.ndarray:
    a = np.asarray(v, np.float32).reshape(-1)
    return np.broadcast_to(a, (c,)) if a.size == 1 else a


@gpu_op
class FakeQuantizeOp(GpuOp):
    op_types = ("FakeQuantize",)

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        a, shape = node.attrs, tuple(in_shapes[0])
        self.n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        axis = a.get("axis")
        if axis is None or not shape:
            self.c, self.s = 1, self.n
        else:
            axis %= len(shape)
            self.c = int(shape[axis])
            self.s = int(np.prod(shape[axis + 1:], dtype=np.int64))
        scale, zp = _channels(a["scale"], self.c), _channels(a.get("zero_point", 0), self.c)
        params = np.stack([scale, zp, _channels(a.get("dq_scale", a["scale"]), self.c),
                           _channels(a.get("dq_zero_point", a.get("zero_point", 0)), self.c)], axis=1)
        self.params = rt.upload(np.ascontiguousarray(params), dtype=np.float32)
        self.k, self.key = self.kernel("quantize", "fake_quantize",
                                       [f"-DQMIN={int(a['qmin'])}", f"-DQMAX={int(a['qmax'])}"])

    def bind(self, inputs, outputs):
        if self.n == 0:
            return []
        self.k.set_args(inputs[0], self.params, outputs[0], i32(self.c), i32(self.s), i32(self.n))
        return [Launch(self.k, (self.n,), None, name=f"{self.node.name}:{self.node.op_type}",
                       program_key=self.key, flops=4.0 * self.n)]
