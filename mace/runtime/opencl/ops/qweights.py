"""Weight-only 8-bit on the GPU runtime: a Conv / Gemm / MatMul weight the model file stores as
8-bit integers (`mace.ir.quantized`, meta.quantized_weights) stays 8-bit in device memory (a
quarter of float) and is dequantized in the kernel (`wq.h`: -DWQ, -DWZP), with one scale and
zero point per output channel. The loader hands every runtime float weights; the integers are
recovered here from them and the stored scales, exactly (`quantized.integer_weight`).

Only weights quantized along the kernel's output-channel axis (or per tensor) qualify; anything
else, or a weight a converter pass changed, stays float. `MACE_GPU_INT8_WEIGHTS=0` keeps every
weight float (a comparison run)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mace import settings
from mace.ir import quantized


@dataclass
class QWeight:
    q: np.ndarray          # the integers, as float32 (exact), in the weight's own layout
    dtype: type            # np.int8 or np.uint8, what the device holds
    scale: np.ndarray      # (channels,) float32
    zero_point: np.ndarray | None  # (channels,) float32, None when every zero point is 0

    def options(self) -> list[str]:
        return [f"-DWQ={2 if self.dtype is np.uint8 else 1}"] + (["-DWZP"] if self.zero_point is not None else [])

    def per_channel(self, layout) -> list[np.ndarray]:
        """The scale (and zero point) arrays laid out by `layout` (the bias's packing)."""
        out = [layout(self.scale)]
        if self.zero_point is not None:
            out.append(layout(self.zero_point))
        return out

    def upload(self, rt, packed: np.ndarray):
        """Packed integers (float32 holding them) -> the device's 8-bit copy."""
        return rt.upload(np.asarray(packed).astype(self.dtype), dtype=self.dtype)


def enabled() -> bool:
    return settings.get("MACE_GPU_INT8_WEIGHTS") is None or settings.flag("MACE_GPU_INT8_WEIGHTS")


def weight_of(rt, node, index: int, axis: int, channels: int) -> QWeight | None:
    """The 8-bit form of input `index` of `node`, quantized along `axis` (`channels` of them),
    or None (a float weight, another axis, or not on its stored grid)."""
    if not enabled() or index >= len(node.inputs):
        return None
    name = node.inputs[index]
    info = (rt.graph.meta.get(quantized.META_KEY) or {}).get(name)
    w = rt.graph.weights.get(name)
    if info is None or w is None:
        return None
    w = np.asarray(w)
    if info.get("axis") is not None and info["axis"] % w.ndim != axis % w.ndim:
        return None
    q = quantized.integer_weight(w, info)
    if q is None:
        return None
    scale = np.broadcast_to(np.asarray(info["scale"], np.float32), (channels,)).copy()
    zp = np.broadcast_to(np.asarray(info["zero_point"], np.float32), (channels,)).copy()
    return QWeight(q.astype(np.float32), np.int8 if info["dtype"] == "int8" else np.uint8, scale,
                   zp if np.any(zp) else None)
