"""GPU Resize: nearest (any rank <= 6, any axes) and linear / cubic on at most two resampled
axes (NCHW's H and W, NHWC's, a 2-D or 3-D tensor's last two, ...; more axes: CPU fallback).
Sampling tables come from `mace.ops.resize.axis_taps` (float32 coordinates like onnxruntime),
uploaded once at init; the kernels only gather and weigh."""
from __future__ import annotations

import numpy as np

from mace.ops.resize import NEAREST_MODES, TRANSFORMS, axis_taps, is_identity, output_shape
from mace.runtime.opencl.ops.base import gpu_op, i32
from mace.runtime.opencl.ops.movement import MAX_DIMS, FamilyOp, contiguous_strides, numel


def _tables(node, in_shape, out_shape):
    """Per axis (indices, weights, resampled?)."""
    out = []
    for ax in range(len(in_shape)):
        idx, w = axis_taps(in_shape[ax], out_shape[ax], node.attrs["scales"][ax], node.attrs)
        out.append((idx, w, not is_identity(idx, w, in_shape[ax])))
    return out


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
        if mode not in ("linear", "cubic"):
            return False
        out_shape = list(out_shapes[0]) if out_shapes else output_shape(node, in_shapes[0])
        return sum(t[2] for t in _tables(node, list(in_shapes[0]), out_shape)) <= 2

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        in_shape = list(in_shapes[0])
        out_shape = list(out_shapes[0]) if out_shapes else output_shape(node, in_shape)
        self.out_total = numel(out_shape)
        tables = _tables(node, in_shape, out_shape)
        strides = contiguous_strides(in_shape)
        self.nearest = node.attrs.get("mode", "nearest") == "nearest"
        if self.nearest:
            front = MAX_DIMS - len(in_shape)
            tab, offs, pos = [np.zeros(1, np.int32)], [0] * front, 1
            for ax, (idx, _, _) in enumerate(tables):
                tab.append((idx[:, 0] * strides[ax]).astype(np.int32))
                offs.append(pos)
                pos += out_shape[ax]
            self.dims, self.offs = [1] * front + out_shape, offs
            self.tab = rt.upload(np.concatenate(tab), dtype=np.int32)
            self.kern, self.key = self.kernel("resize", "resize_nearest", [])
            return
        scaled = [ax for ax, t in enumerate(tables) if t[2]]
        # the view [A, H, B, W, C]: W the last resampled axis, H the other (or a size-1 dummy)
        ax_w = scaled[-1] if scaled else len(in_shape) - 1
        ax_h = scaled[0] if len(scaled) == 2 else None
        taps = max(t[0].shape[1] for t in tables)
        w_len, w_out = (in_shape[ax_w], out_shape[ax_w]) if in_shape else (1, 1)
        inner = numel(in_shape[ax_w + 1:])
        if ax_h is None:
            outer, mid, h_len, h_out = numel(in_shape[:ax_w]), 1, 1, 1
            yi, yw = np.zeros((1, taps), np.int64), np.zeros((1, taps), np.float32)
            yw[0, 0] = 1.0
        else:
            outer, mid = numel(in_shape[:ax_h]), numel(in_shape[ax_h + 1:ax_w])
            h_len, h_out = in_shape[ax_h], out_shape[ax_h]
            yi, yw = tables[ax_h][0], tables[ax_h][1]
        if in_shape:
            xi, xw = tables[ax_w][0], tables[ax_w][1]
        else:
            xi, xw = np.zeros((1, 1), np.int64), np.ones((1, 1), np.float32)
        yi, yw, xi, xw = (np.pad(t, ((0, 0), (0, taps - t.shape[1]))) for t in (yi, yw, xi, xw))
        self.taps, self.h_out, self.w_out, self.mid, self.inner = taps, h_out, w_out, mid, inner
        self.outer = outer
        self.in_b = w_len * inner
        self.in_a = h_len * mid * self.in_b
        self.yi = rt.upload((yi * (mid * w_len * inner)).astype(np.int32), dtype=np.int32)
        self.yw = rt.upload(yw, dtype=np.float32)
        self.xi = rt.upload((xi * inner).astype(np.int32), dtype=np.int32)
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
        self.kern.set_args(x, outputs[0], self.yi, self.yw, self.xi, self.xw, i32(self.taps), i32(self.h_out),
                           i32(self.w_out), i32(self.mid), i32(self.inner), i32(self.in_a), i32(self.in_b))
        return [self.launch(self.kern, self.key, (self.w_out * self.inner, self.h_out * self.mid, self.outer))]
