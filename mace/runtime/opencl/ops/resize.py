"""GPU Resize: nearest (any rank <= 6, any axis) and linear / cubic on the last two axes (leading
axes unscaled, any rank). Sampling tables come from the CPU runtime's `axis_taps` (float32
coordinates like onnxruntime), uploaded once at init; the kernels only gather and weigh."""
from __future__ import annotations

import numpy as np

from mace.runtime.cpu.ops.resize import NEAREST_MODES, TRANSFORMS, axis_taps, is_identity, output_shape
from mace.runtime.opencl.ops.base import gpu_op, i32
from mace.runtime.opencl.ops.movement import MAX_DIMS, FamilyOp, contiguous_strides, numel


def _leading_identity(node, in_shape, out_shape) -> bool:
    for ax in range(len(in_shape) - 2):
        idx, w = axis_taps(in_shape[ax], out_shape[ax], node.attrs["scales"][ax], node.attrs)
        if not is_identity(idx, w, in_shape[ax]):
            return False
    return True


@gpu_op
class Resize(FamilyOp):
    op_types = ("Resize",)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        a = node.attrs
        if a.get("coordinate_transformation_mode", "half_pixel") not in TRANSFORMS or int(a.get("antialias", 0)):
            return False
        mode = a.get("mode", "nearest")
        if mode == "nearest":
            return len(in_shapes[0]) <= MAX_DIMS and a.get("nearest_mode", "round_prefer_floor") in NEAREST_MODES
        return mode in ("linear", "cubic") and _leading_identity(node, in_shapes[0], out_shapes[0])

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        a = node.attrs
        in_shape = list(in_shapes[0])
        out_shape = list(out_shapes[0]) if out_shapes else output_shape(node, in_shape)
        self.out_total = numel(out_shape)
        self.nearest = a.get("mode", "nearest") == "nearest"
        if self.nearest:
            strides = contiguous_strides(in_shape)
            front = MAX_DIMS - len(in_shape)
            tab, offs = [np.zeros(1, np.int32)], [0] * front
            pos = 1
            for ax in range(len(in_shape)):
                idx, _ = axis_taps(in_shape[ax], out_shape[ax], a["scales"][ax], a)
                tab.append((idx[:, 0] * strides[ax]).astype(np.int32))
                offs.append(pos)
                pos += out_shape[ax]
            self.dims = [1] * front + out_shape
            self.offs = offs
            self.tab = rt.upload(np.concatenate(tab), dtype=np.int32)
            self.kern, self.key = self.kernel("resize", "resize_nearest", [])
            return
        shp_in = [1, 1] + in_shape
        shp_out = [1, 1] + out_shape
        h, w, oh, ow = shp_in[-2], shp_in[-1], shp_out[-2], shp_out[-1]
        sc = [1.0, 1.0] + list(a["scales"])
        yi, yw = axis_taps(h, oh, sc[-2], a)
        xi, xw = axis_taps(w, ow, sc[-1], a)
        self.taps = yi.shape[1]
        self.rows, self.oh, self.ow, self.in_hw = numel(out_shape[:-2]), oh, ow, h * w
        self.yi = rt.upload((yi * w).astype(np.int32), dtype=np.int32)
        self.yw = rt.upload(yw, dtype=np.float32)
        self.xi = rt.upload(xi.astype(np.int32), dtype=np.int32)
        self.xw = rt.upload(xw, dtype=np.float32)
        self.kern, self.key = self.kernel("resize", "resize_taps", [])

    def bind(self, inputs, outputs):
        if self.out_total == 0:
            return []
        x = self.with_consts(inputs)[0]
        if self.nearest:
            self.kern.set_args(x, outputs[0], self.tab, *map(i32, self.dims[1:]), *map(i32, self.offs))
            d = self.dims
            return [self.launch(self.kern, self.key, (d[5], int(np.prod(d[:5]))))]
        self.kern.set_args(x, outputs[0], self.yi, self.yw, self.xi, self.xw, i32(self.taps), i32(self.oh),
                           i32(self.ow), i32(self.in_hw))
        return [self.launch(self.kern, self.key, (self.ow, self.oh, self.rows))]
