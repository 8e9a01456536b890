"""Conv on the GPU runtime (1-D and 2-D; groups, strides, dilations, explicit asymmetric pads).

Variants (`conv.cl`, `depthwise.cl`):
- `conv2d` pointwise: 1x1, stride 1, no pads -> a blocked GEMM over the flattened H*W pixels (each
  work-item: 8 output channels x 32 pixels; `pointwise_oc16`, for the tuner when M >= 16: 16 x 16).
- `im2col` + `conv2d` pointwise: non-depthwise convs with short output rows (OW < 16: ResNet's
  14x14 / 7x7 stages) and strided 1x1 convs (downsamples), when Cg*KH*KW >= 32: GEMM over columns.
- `conv2d` direct: every other non-depthwise conv (3x3, 5x5, 7x7, strided, dilated, grouped), same
  register tile over an output row of the zero-padded input, one vector (PB 1) per tile.
- `depthwise`: group == C == M; each work-item computes RB output rows x VW pixels of a channel,
  pads handled by lane masks (no copy). Strides are kernel arguments and VW takes two values per
  device, so a model's depthwise convs of one kernel size share at most two programs
  (MobileNetV2's cold start builds two instead of eight).
GPU-style variants (`gpu_conv.cl`; the default on non-CPU devices, offered to the tuner on CPU
devices too, and only where the device's work-group size (256) and local memory fit):
- `gpu_gemm` / `gpu_gemm_t32` / `gpu_gemm_t128` (1x1 stride-1 unpadded convs): tiled SGEMM,
  16x16 work-groups, each work-item a 4x4 (64x64 tiles) / 2x2 (32x32) / 8x8 (128x128: large
  problems, batch 32) micro-tile, K tiles of 16 in local memory.
- `gpu_direct` / `gpu_direct_t32` / `gpu_direct_t128` (other non-depthwise convs): the same kernel as an
  implicit GEMM (-DIMPLICIT): the B tile is gathered from the NCHW input with bounds checks (zero padding).
- `gpu_im2col`: im2col + the tiled GEMM (tile picked like the default below). `gpu_depthwise`: one
  work-item per output element, lws (16, 4, 1); strides are arguments too.
Offered to the tuner last, never the default (`winograd.cl`, `winograd.py`):
- `winograd` (3x3, stride 1, dilation 1, one group, 2-D): Winograd F(2x2,3x3) in three launches:
  input transform (pads as zeros, no copy), 16 GEMMs (the pointwise `conv2d` kernel, one group
  per transform position, weights transformed on the host), output transform with the bias,
  residual and activation. 2.25x fewer multiplies; the transforms cost memory traffic.
- `gpu_winograd` (non-CPU devices, same convs): the same transforms around the tiled GEMM of
  gpu_conv.cl, the 16 GEMMs as its group dimension (64x64 or 32x32 tiles like `gpu_im2col`).
On GPUs the `_t32` variant comes first when 64x64 tiles would give fewer than two work-groups per
compute unit (small maps: ResNet's 7x7 / 14x14 stages).
`int8_dot` (one-group convs of `quantize: 1` models where the device has 8-bit integer dot products, `qdot`):
the input quantized to bytes (im2col), u8 x s8 -> int32 GEMM, float epilogue; offered to the tuner, not the
default (on Intel's CPU runtime about as fast as `pointwise`).
8-bit weights (the model file's, `qweights`): every variant but Winograd's keeps them 8-bit on the device
(-DWQ, wq.h): conv2d scales its accumulators per output channel, the others dequantize at the weight load.
Padded direct convs first copy the input into a zero-padded scratch buffer (`pad_input`, one launch) so the
conv kernel never tests bounds; im2col writes the zeros itself. Bias, a folded residual Add (`residual` attr:
-DRESIDUAL, input 3 passed right after the output buffer), the fused activation and a fused per-tensor
FakeQuantize (`fqfuse`: -DFQ, or an in-place launch after the NO_FQ variants) are applied in the conv kernel,
in that order, by every variant. Kernels run with explicit local size (1, 1, 1): PoCL's default (lws None)
makes one huge work-group, i.e. one CPU thread.
"""
from __future__ import annotations

import numpy as np
import pyopencl as cl

from mace.ops import conv as conv_rules
from mace.ops.conv import as_2d
from mace.runtime.opencl import fqfuse
from mace.runtime.opencl.ops import qdot, qweights, winograd
from mace.runtime.opencl.ops.base import GpuOp, Launch, gpu_op, i32

#: work-items per work-group for the register-tiled kernels: PoCL's default picks one huge
#: work-group (one CPU thread); tiles are independent so (1, 1, 1) always divides.
TILE_LWS = (1, 1, 1)


def round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def scratch_buffer(rt, nbytes: int, slot: int = 0) -> cl.Buffer:
    """A scratch buffer shared by the ops of one executor (the queue is in order, and each user
    writes it and reads it back within its own launches); an op that needs two at once asks for
    two slots. Plain buffers, not sub-buffers of one: NVIDIA's driver crashes when a sub-buffer
    is released while a kernel still has it as an argument (a variant switch does that)."""
    pool = rt.__dict__.setdefault("_mace_scratch", {}).setdefault(slot, [])
    for buf in pool:
        if buf.size >= nbytes:
            return buf
    buf = cl.Buffer(rt.ctx, cl.mem_flags.READ_WRITE, size=max(nbytes, 4))
    pool.append(buf)
    return buf


class PadStep:
    """Zero-pads the input into a scratch buffer (one launch) for padded convs."""

    def __init__(self, op: GpuOp, n, c, h, w, pads):
        self.op = op
        pt, pl, pb, pr = pads
        self.dims = (n, c, h, w, h + pt + pb, w + pl + pr, pt, pl)
        self.kernel, self.key = op.kernel("conv", "pad_input", ["-DPAD_ONLY"])
        hp, wp = self.dims[4], self.dims[5]
        self.buf = scratch_buffer(op.rt, n * c * hp * wp * op.rt.store_dtype.itemsize)

    def launch(self, src: cl.Buffer, name: str) -> Launch:
        n, c, h, w, hp, wp, pt, pl = self.dims
        self.kernel.set_args(src, self.buf, i32(h), i32(w), i32(hp), i32(wp), i32(pt), i32(pl))
        lx = 16 if wp >= 16 else 1
        return Launch(self.kernel, (round_up(wp, lx), hp, n * c), (lx, 1, 1), name=f"{name}/pad:{self.op.node.op_type}", program_key=self.key)


class Im2colStep:
    """Lays the conv's input out as (N*G, Cg*KH*KW, OH*OW) columns in a scratch buffer (one launch)."""

    def __init__(self, op: GpuOp, n, c, h, w, oh, ow, group, kernel, strides, dil, pads):
        self.op = op
        cg = c // group
        self.rows = cg * kernel[0] * kernel[1]
        self.p = oh * ow
        self.ng = n * group
        self.gws = (oh, cg, n * group)
        self.kernel, self.key = op.kernel("conv", "im2col", ["-DPAD_ONLY"])
        self.buf = scratch_buffer(op.rt, self.ng * self.rows * self.p * op.rt.store_dtype.itemsize)
        self.args = [i32(v) for v in (cg, h, w, oh, ow, pads[0], pads[1], kernel[0], kernel[1], strides[0],
                                      strides[1], dil[0], dil[1])]

    def launch(self, src: cl.Buffer, name: str) -> Launch:
        self.kernel.set_args(src, self.buf, *self.args)
        return Launch(self.kernel, self.gws, (1, 1, 1),
                      name=f"{name}/im2col:{self.op.node.op_type}", program_key=self.key)


class WinogradSteps:
    """The launches around the `winograd` variant's GEMMs (winograd.cl): input -> V (N, 16, CP, T)
    and Mt (N, 16, M, T) -> output. V and Mt are live together: two scratch slots. Local size
    (1, 1, 1) like the register-tiled kernels (a GPU gets its driver's choice)."""

    def __init__(self, op: ConvOp, act: list[str]):
        self.op = op
        G, rt = op.g, op.rt
        n, c, m, oh, ow = G["n"], G["c"], G["m"], G["oh"], G["ow"]
        self.ty, self.tx = -(-oh // 2), -(-ow // 2)
        self.t = self.ty * self.tx
        isz = rt.store_dtype.itemsize
        self.cp = winograd.plane_rows(c, self.t, isz)
        # VT tiles per vector: 8 needs float16 rows, 4 float8 (caps.max_vector_width)
        vt = [f"-DVT={8 if self.tx >= 8 and rt.caps.max_vector_width >= 16 else 4}"]
        self.k_in, self.key_in = op.kernel("winograd", "winograd_input", vt)
        self.k_out, self.key_out = op.kernel("winograd", "winograd_output", act + vt)
        self.bias = rt.upload(op.bias, dtype=np.float32)
        self.v = scratch_buffer(rt, n * 16 * self.cp * self.t * isz, slot=0)
        self.mt = scratch_buffer(rt, n * 16 * m * self.t * isz, slot=1)

    def input_launch(self, src: cl.Buffer, name: str) -> Launch:
        G = self.op.g
        self.k_in.set_args(src, self.v, *(i32(x) for x in (G["c"], self.cp, G["h"], G["w"], self.ty, self.tx,
                                                            G["pads"][0], G["pads"][1])))
        return Launch(self.k_in, (self.ty, self.cp, G["n"]), TILE_LWS,
                      name=f"{name}/winograd_in:{self.op.node.op_type}", program_key=self.key_in)

    def output_launch(self, out: cl.Buffer, res: list, name: str) -> Launch:
        G = self.op.g
        self.k_out.set_args(self.mt, self.bias, out, *res, *(i32(x) for x in (G["m"], G["oh"], G["ow"], self.ty,
                                                                            self.tx)))
        return Launch(self.k_out, (self.ty, G["m"], G["n"]), TILE_LWS,
                      name=f"{name}/winograd_out:{self.op.node.op_type}", program_key=self.key_out)


def pack_oc_blocks(w: np.ndarray, ocb: int) -> np.ndarray:
    """(G, Mg, Cg, KH, KW) weights as conv2d reads them: [G][Mg/OCB][Cg][KH][KW][OCB] float32,
    zero-filled past Mg."""
    group, mg = w.shape[:2]
    mb = -(-mg // ocb)
    packed = np.zeros((group, mb * ocb) + w.shape[2:], np.float32)
    packed[:, :mg] = w
    return np.ascontiguousarray(packed.reshape((group, mb, ocb) + w.shape[2:]).transpose(0, 1, 3, 4, 5, 2))


#: GPU variants: the tiled GEMM's work-group (GEMM_WG x GEMM_WG, fixed by reqd_work_group_size in
#: gpu_conv.cl) and the per-pixel depthwise kernel's local size
GEMM_WG = 16
#: depth of the tiled GEMM's K tiles (TK in gpu_conv.cl)
GEMM_TK = 16
DW_LWS = (16, 4, 1)


def gemm_tile(variant: str, wgs=None, caps=None) -> int:
    """Micro-tile (TM = TN) of a tiled-GEMM variant: `*_t32` 2 (32x32 tiles), `*_t128` 8
    (128x128), else 4 (64x64); `gpu_im2col` and `gpu_winograd` pick 2 when 64x64 tiles would not
    give the device two work-groups per unit."""
    if variant.endswith("_t32") or variant == "gpu_direct_splitk":
        return 2
    if variant.endswith("_t128"):
        return 8
    if variant in ("gpu_im2col", "gpu_winograd") and wgs is not None and caps is not None \
            and not caps.is_cpu and wgs(4) < 2 * caps.compute_units:
        return 2
    return 4


def gemm_fits(caps, t: int) -> bool:
    """The device can run a 16x16 work-group with the (GEMM_TK x 16t) float A and B tiles in local
    memory (16 KiB at t = 8; OpenCL guarantees 32 KiB on GPUs)."""
    return caps.fits_work_group((GEMM_WG, GEMM_WG), 2 * GEMM_TK * GEMM_WG * t * 4)


def use_im2col(cg, kh, kw, sw, ow) -> bool:
    """Default variant choice for non-depthwise, non-pointwise convs: row tiles waste SIMD lanes
    on short rows (OW < 16), and a strided 1x1 conv is a cheap subsampling copy + GEMM; there
    im2col + the pointwise GEMM kernel is faster (measured on PoCL), unless Cg*KH*KW is tiny.
    The tuner times both."""
    return cg * kh * kw >= 32 and (ow < 16 or (kh == kw == 1 and sw > 1))


#: variant family -> ConvOp builder, first match wins ("gpu_depthwise" before "gpu"; "*" the rest)
BUILDERS = {"int8_dot": "_build_int8_dot", "gpu_depthwise": "_build_gpu_depthwise", "depthwise": "_build_depthwise",
            "gpu": "_build_tiled_gemm", "*": "_build_register_tiled"}


@gpu_op
class ConvOp(GpuOp):
    op_types = ("Conv",)
    const_inputs = (1, 2)

    @classmethod
    def supports(cls, node, in_shapes, out_shapes):
        return len(in_shapes[0]) in (3, 4) and len(in_shapes) >= 2

    def __init__(self, rt, node, in_shapes, out_shapes, consts):
        super().__init__(rt, node, in_shapes, out_shapes, consts)
        a = node.attrs
        w = consts[1]
        if w is None:
            raise NotImplementedError("Conv with a non-constant weight")  # pragma: no cover
        (n, c, h, wd), (oh, ow), (kh, kw), (sh, sw), (dh, dw), pads = as_2d(in_shapes[0], out_shapes[0], w.shape, a)
        group = int(a.get("group", 1))
        m = w.shape[0]
        cg, mg = c // group, m // group
        self.w4 = np.asarray(w, np.float32).reshape(m, cg, kh, kw)
        # 8-bit weights in the model file stay 8-bit on the device (every variant but Winograd's)
        self.qw = qweights.weight_of(rt, node, 1, 0, m)
        self.wsrc = self.w4 if self.qw is None else self.qw.q.reshape(m, cg, kh, kw)
        if self.qw is not None:
            self.tuning_attrs = {"weights": np.dtype(self.qw.dtype).name}
        bias = consts[2] if len(consts) > 2 and consts[2] is not None else None
        if bias is None and len(node.inputs) > 2 and node.inputs[2]:
            raise NotImplementedError("Conv with a non-constant bias")  # pragma: no cover
        self.bias = np.zeros(m, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(m)
        # a folded residual Add (`residual` attr, input 3): every variant adds it before ACTIVATE
        self.residual = bool(a.get("residual")) and len(node.inputs) > 3 and bool(node.inputs[3])
        if self.residual and (len(consts) > 3 and consts[3] is not None):
            raise NotImplementedError("Conv with a constant residual")  # pragma: no cover
        self.g = dict(n=n, c=c, h=h, w=wd, oh=oh, ow=ow, m=m, group=group, cg=cg, mg=mg, k=(kh, kw),
                      s=(sh, sw), d=(dh, dw), pads=tuple(pads))
        self.flops = conv_rules.flops(out_shapes[0], w.shape)
        self.fq, self.out_elems = fqfuse.grid_of(rt, node), int(np.prod(out_shapes[0], dtype=np.int64))  # fqfuse
        caps = rt.caps
        cpu = caps.is_cpu
        if cg == 1 and mg == 1 and group > 1:
            gpu = ["gpu_depthwise"] if caps.fits_work_group(DW_LWS) else []
            self._variants = ["depthwise"] + gpu if cpu else gpu + ["depthwise"]
        else:
            pointwise = kh == kw == 1 and sh == sw == 1 and not any(pads)
            if pointwise:
                tiled = ["pointwise", "pointwise_oc16"] if mg >= 16 else ["pointwise"]
                gpu = ["gpu_gemm", "gpu_gemm_t32", "gpu_gemm_t128"]
            else:
                both = ["direct", "im2col"]
                tiled = both[::-1] if use_im2col(cg, kh, kw, sw, ow) else both
                gpu = ["gpu_direct", "gpu_direct_t32", "gpu_im2col"]
                if cg * kh * kw >= 64:
                    gpu.append("gpu_direct_splitk")
                gpu.append("gpu_direct_t128")
            gpu = [v for v in gpu if gemm_fits(caps, self._tile(v))]
            if not cpu and len(gpu) > 1 and self._tile(gpu[0]) == 4 and self._tile(gpu[1]) == 2 \
                    and self._gemm_wgs(4) < 2 * caps.compute_units:
                gpu[0], gpu[1] = gpu[1], gpu[0]  # too few 64x64 tiles to fill the device: 32x32 tiles
            if not cpu and "gpu_direct_splitk" in gpu and self._gemm_wgs(2) < caps.compute_units \
                    and cg * kh * kw >= 1024:
                gpu.remove("gpu_direct_splitk")  # even 32x32 tiles leave units idle: split K
                gpu.insert(0, "gpu_direct_splitk")
            self._variants = tiled + gpu if cpu or not gpu else gpu + tiled
            if qdot.eligible(self):  # full 8-bit where the device has integer dot products: for the tuner
                self._variants.append(qdot.VARIANT)
            # winograd.cl moves 2*VT input columns as one vector (VT = 4 or 8): float8 at least
            if winograd.qualifies(len(in_shapes[0]), (kh, kw), (sh, sw), (dh, dw), group) \
                    and caps.max_vector_width >= 8 and self.qw is None:
                self._variants.append("winograd")
                if not cpu and gemm_fits(caps, self._tile("gpu_winograd")):
                    self._variants.append("gpu_winograd")
        self._variants = self.first_working_variant(self._variants)

    def _gemm_wgs(self, t: int, wino: bool = False) -> int:
        """Work-groups of the tiled GEMM with a t x t micro-tile per work-item (16t x 16t tiles);
        `wino`: gpu_winograd's 16 GEMMs of M rows x T (2x2 output tiles) columns per image."""
        G = self.g
        b = 16 * t
        if wino:
            cols, rows, gemms = -(-G["oh"] // 2) * -(-G["ow"] // 2), G["m"], G["n"] * 16
        else:
            cols, rows, gemms = G["oh"] * G["ow"], G["mg"], G["n"] * G["group"]
        return -(-cols // b) * -(-rows // b) * gemms

    def _tile(self, variant: str) -> int:
        """gemm_tile for this conv's geometry."""
        return gemm_tile(variant, lambda t: self._gemm_wgs(t, wino=variant == "gpu_winograd"), self.rt.caps)

    def variants(self) -> list[str]:
        return list(self._variants)

    def use_variant(self, name: str) -> None:
        super().use_variant(name)
        self._build(name)

    def _build(self, variant: str) -> None:
        """Build `variant`'s kernels and weights: one small builder per family (BUILDERS)."""
        self.pad = self.im2col = self.wino = self.int8 = None
        self.lws = TILE_LWS
        family = next(f for f in BUILDERS if variant == f or variant.startswith(f + "_") or f == "*")
        getattr(self, BUILDERS[family])(variant, self._geometry_options(), self.activation_options()
                                        + (["-DRESIDUAL"] if self.residual else []) + fqfuse.build_options(self, variant))
        fqfuse.add_args(self, variant)

    def _upload_weights(self, packed: np.ndarray, layout) -> tuple[cl.Buffer, list[str]]:
        """Packed weights on the device: float, or 8-bit with their scales (zero points) laid out
        by `layout` like the bias (`self.wq_args`, passed after it); returns the -DWQ options."""
        if self.qw is None:
            self.wq_args = []
            return self.rt.upload(packed, dtype=np.float32), []
        self.wq_args = [self.rt.upload(a, dtype=np.float32) for a in self.qw.per_channel(layout)]
        return self.qw.upload(self.rt, packed), self.qw.options()

    def _geometry_options(self) -> list[str]:
        (kh, kw), (sh, sw), (dh, dw) = self.g["k"], self.g["s"], self.g["d"]
        return [f"-DKH={kh}", f"-DKW={kw}", f"-DSH={sh}", f"-DSW={sw}", f"-DDH={dh}", f"-DDW={dw}"]

    def _build_int8_dot(self, variant: str, geo: list[str], act: list[str]) -> None:
        G = self.g
        self.int8 = qdot.Int8Gemm(self, act, scratch_buffer, self.qw.q.reshape(G["m"], -1), self.qw.scale, self.bias)

    def _depthwise_args(self) -> list:
        G = self.g
        return [i32(G["c"]), i32(G["h"]), i32(G["w"]), i32(G["oh"]), i32(G["ow"]), i32(G["n"] * G["c"]),
                i32(G["pads"][0]), i32(G["pads"][1]), i32(G["s"][0]), i32(G["s"][1])]

    def _depthwise_options(self) -> list[str]:
        """Both depthwise kernels' compile-time geometry (strides are arguments)."""
        (kh, kw), (dh, dw) = self.g["k"], self.g["d"]
        return [f"-DKH={kh}", f"-DKW={kw}", f"-DDH={dh}", f"-DDW={dw}"]

    def _build_gpu_depthwise(self, variant: str, geo: list[str], act: list[str]) -> None:
        """One work-item per output element (gpu_conv.cl depthwise_px)."""
        rt, G = self.rt, self.g
        kh, kw = G["k"]
        self.w, wq = self._upload_weights(self.wsrc.reshape(G["m"], kh * kw), lambda v: v)
        self.k, self.key = self.kernel("gpu_conv", "depthwise_px", self._depthwise_options() + act + ["-DDEPTHWISE"] + wq)
        self.b = rt.upload(self.bias, dtype=np.float32)
        self.lws = DW_LWS
        self.gws = (round_up(G["ow"], DW_LWS[0]), round_up(G["oh"], DW_LWS[1]), G["n"] * G["c"])
        self.args = self._depthwise_args()

    def _build_depthwise(self, variant: str, geo: list[str], act: list[str]) -> None:
        """RB rows x VW pixels of a channel per work-item (depthwise.cl). VW: the device's widest
        vector (16, 8 or 4), the next narrower one for narrower rows (one partial tile), so that
        a model's depthwise convs of one kernel size share at most two programs."""
        rt, G = self.rt, self.g
        kh, kw = G["k"]
        widths = [w for w in (16, 8, 4) if w <= rt.caps.max_vector_width] or [1]
        vw = widths[0] if G["ow"] >= widths[0] or len(widths) == 1 else widths[1]
        rb = min(4, G["oh"])
        self.w, wq = self._upload_weights(self.wsrc.reshape(G["m"], kh * kw), lambda v: v)
        self.k, self.key = self.kernel("depthwise", "depthwise", self._depthwise_options() + act
                                       + [f"-DVW={vw}", f"-DRB={rb}"] + wq)
        self.b = rt.upload(self.bias, dtype=np.float32)
        self.gws = (-(-G["ow"] // vw), -(-G["oh"] // rb), G["n"] * G["c"])
        self.args = self._depthwise_args()

    def _build_tiled_gemm(self, variant: str, geo: list[str], act: list[str]) -> None:
        """The local-memory tiled SGEMM of gpu_conv.cl, fed directly (1x1), by an implicit
        gather (gpu_direct*), im2col columns or Winograd's transformed input."""
        rt, G = self.rt, self.g
        n, c, h, wd, oh, ow, m, group, cg, mg = (G[k] for k in ("n", "c", "h", "w", "oh", "ow", "m", "group", "cg", "mg"))
        t = self._tile(variant)
        opts = [f"-DTM={t}", f"-DTN={t}"]
        if variant == "gpu_winograd":  # 16 GEMMs (M x CP) x (CP x T) on V: 16 groups, no epilogue
            self.wino = WinogradSteps(self, act)
            group, kk, mg, p = 16, self.wino.cp, m, self.wino.t
            wt = np.zeros((16, kk, m), np.float32)  # zero rows past C
            wt[:, :c] = winograd.transform_weights(self.w4).transpose(0, 2, 1)
            bias = np.zeros(16 * m, np.float32)  # bias, residual, activation: in the output transform
        else:
            kk, p, bias = cg * G["k"][0] * G["k"][1], oh * ow, self.bias
            opts += act
            # [G][K][Mg], K = (c, kh, kw) as im2col's rows and the implicit gather
            wt = self.wsrc.reshape(group, mg, kk).transpose(0, 2, 1)
        if variant.startswith("gpu_direct"):
            opts += geo + ["-DIMPLICIT"]
        if variant == "gpu_direct_splitk":
            opts += ["-DSPLITK"]
        elif variant == "gpu_im2col":
            self.im2col = Im2colStep(self, n, c, h, wd, oh, ow, group, G["k"], G["s"], G["d"], G["pads"])
        # rows padded to a multiple of 4 with zeros: the kernel reads them as aligned float4s
        wpad = np.zeros(wt.shape[:2] + (round_up(mg, 4),), np.float32)
        wpad[..., :mg] = wt

        def per_row(v):  # [G][LDW], like a row of W
            out = np.zeros((group, round_up(mg, 4)), np.float32)
            out[:, :mg] = v.reshape(group, mg)
            return out
        self.w, wq = self._upload_weights(wpad, per_row)
        opts += wq
        self.k, self.key = self.kernel("gpu_conv", "gemm_conv", opts)
        self._gemm_opts = opts
        self.b = rt.upload(bias, dtype=np.float32)
        b = GEMM_WG * t
        self.lws = (GEMM_WG, GEMM_WG, 1)
        self.gws = (-(-p // b) * GEMM_WG, -(-mg // b) * GEMM_WG, n * group)
        self.args = [i32(kk), i32(p), i32(mg), i32(group), i32(h), i32(wd), i32(ow), i32(G["pads"][0]), i32(G["pads"][1])]
        if variant == "gpu_direct_splitk":
            self._split_k(kk, n * group * mg * oh * ow)

    def _build_register_tiled(self, variant: str, geo: list[str], act: list[str]) -> None:
        """conv.cl's conv2d: OCB channels x VW*PB pixels per work-item, over the padded input
        (direct), its im2col columns, the flattened pixels (pointwise*) or Winograd's V."""
        rt, G = self.rt, self.g
        n, c, h, wd, oh, ow, m, group, cg, mg = (G[k] for k in ("n", "c", "h", "w", "oh", "ow", "m", "group", "cg", "mg"))
        (kh, kw), pads = G["k"], G["pads"]
        hp, wp = h + pads[0] + pads[2], wd + pads[1] + pads[3]
        w5 = self.wsrc.reshape(group, mg, cg, kh, kw)
        if variant.startswith("pointwise"):  # GEMM over flattened pixels
            hp, wp, ohk, owk = 1, h * wd, 1, oh * ow
        elif variant == "winograd":  # the pointwise GEMM per transform position (16 groups) on V
            self.wino = WinogradSteps(self, act)
            group, cg, kh, kw = 16, self.wino.cp, 1, 1
            w5 = np.zeros((16, m, cg, 1, 1), np.float32)  # zero columns past C
            w5[:, :m, :c, 0, 0] = winograd.transform_weights(self.w4)
            hp, wp, ohk, owk = 1, self.wino.t, 1, self.wino.t
            act = []  # bias, residual and activation: in the output transform
        elif variant == "im2col":  # GEMM over the im2col columns
            self.im2col = Im2colStep(self, n, c, h, wd, oh, ow, group, G["k"], G["s"], G["d"], pads)
            hp, wp, ohk, owk = 1, oh * ow, 1, oh * ow
        else:
            self.pad = PadStep(self, n, c, h, wd, pads) if any(pads) else None
            ohk, owk = oh, ow
        kgeo = geo if variant == "direct" else ["-DKH=1", "-DKW=1", "-DSH=1", "-DSW=1", "-DDH=1", "-DDW=1"]
        ocb = 16 if variant == "pointwise_oc16" else (8 if mg > 4 else 4)
        # direct: one vector per tile (PB 1) at every row width, so a model's direct convs of one
        # kernel size, stride and epilogue share a program (ResNet-18: 4 instead of 6), as fast
        vw, pb = rt.caps.vector_width(owk, max_pb=1 if ocb == 16 or variant == "direct" else 2)
        mb = -(-mg // ocb)
        # the im2col row order is (c, kh, kw) too; winograd's bias is added by the output transform
        bpk = np.zeros((group, mb * ocb), np.float32)
        if self.wino is None:
            bpk[:, :mg] = self.bias.reshape(group, mg)
        def per_block(v):  # (G, MB*OCB), like the bias
            out = np.zeros((group, mb * ocb), np.float32)
            out[:, :mg] = v.reshape(group, mg)
            return out
        self.w, wq = self._upload_weights(pack_oc_blocks(w5, ocb), per_block)
        self.k, self.key = self.kernel("conv", "conv2d", kgeo + act + [f"-DOCB={ocb}", f"-DVW={vw}", f"-DPB={pb}"] + wq)
        self.b = rt.upload(bpk, dtype=np.float32)
        nz = n * group * mb
        self.gws = (-(-owk // (vw * pb)), ohk, nz)
        cgk = cg * kh * kw if variant == "im2col" else cg
        self.args = [i32(cgk), i32(hp), i32(wp), i32(ohk), i32(owk), i32(group), i32(mb), i32(mg), i32(nz)]

    def _split_k(self, kk: int, total: int) -> None:
        """Slices of K so that about two work-groups run per compute unit (2..16 slices, each a
        multiple of the K tile), a float partial-sum buffer, and the reduce kernel."""
        units = self.rt.caps.compute_units
        slices = max(2, min(16, -(-2 * units // max(self._gemm_wgs(2), 1)), -(-kk // GEMM_TK)))
        ks = round_up(-(-kk // slices), GEMM_TK)
        slices = -(-kk // ks)
        self.split = (slices, ks, total)
        self.gws = (self.gws[0], self.gws[1], self.gws[2] * slices)
        self.args = self.args + [i32(slices), i32(ks)]
        self.part = scratch_buffer(self.rt, slices * total * 4)
        self.k_reduce, _ = self.kernel("gpu_conv", "splitk_reduce", self._gemm_opts)  # same program

    def bind(self, inputs, outputs):
        return fqfuse.finish(self, self._launches(inputs, outputs), outputs[0])

    def _launches(self, inputs, outputs):
        name = f"{self.node.name}:{self.node.op_type}"
        launches = []
        src = inputs[0]
        if self.pad is not None:
            launches.append(self.pad.launch(src, self.node.name))
            src = self.pad.buf
        if self.im2col is not None:
            launches.append(self.im2col.launch(src, self.node.name))
            src = self.im2col.buf
        res = [inputs[3]] if self.residual else []
        if self.int8 is not None:
            return self.int8.launches(inputs, outputs, res, self.node.name, "Conv")
        if self.wino is not None:  # input transform, the GEMMs into Mt (conv2d / gemm_conv), output transform
            launches.append(self.wino.input_launch(src, self.node.name))
            self.k.set_args(self.wino.v, self.w, self.b, self.wino.mt, *self.args)
            launches.append(Launch(self.k, self.gws, self.lws, name=name, program_key=self.key, flops=self.flops,
                                   tune_key_extra={"variant": self.variant}))
            launches.append(self.wino.output_launch(outputs[0], res, self.node.name))
            return launches
        if self.variant == "gpu_direct_splitk":
            slices, _, total = self.split
            self.k.set_args(src, self.w, self.b, *self.wq_args, self.part, *self.args)
            launches.append(Launch(self.k, self.gws, self.lws, name=name, program_key=self.key, flops=self.flops,
                                   tune_key_extra={"variant": self.variant}))
            self.k_reduce.set_args(self.part, self.b, outputs[0], *res, i32(slices), i32(total),
                                   i32(self.g["mg"]), i32(self.g["oh"] * self.g["ow"]), i32(self.g["group"]))
            launches.append(Launch(self.k_reduce, (round_up(total, 64),), None, name=f"{self.node.name}/splitk:Conv",
                                   program_key=self.key))
            return launches
        self.k.set_args(src, self.w, self.b, *self.wq_args, outputs[0], *res, *self.args)
        launches.append(Launch(self.k, self.gws, self.lws, name=name, program_key=self.key, flops=self.flops,
                               tune_key_extra={"variant": self.variant}))
        return launches
