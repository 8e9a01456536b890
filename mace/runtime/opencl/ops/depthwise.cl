/* Depthwise convolution (one input and one output channel per group), NCHW.
 *
 * Each work-item computes RB output rows x VW consecutive output pixels of one channel. One
 * program serves every stride (a cold start compiles it once): the strides are kernel
 * arguments, and strides 1 and 2 (SH == SW) run bodies specialized for them, in which every
 * input row a tile needs is loaded once per kernel column and feeds every output row that uses
 * it (all loops over compile-time constants, unrolled). Pads need no copy: rows outside the
 * input are skipped, columns outside it are masked lanes (a vector load past the row's end reads
 * the next row, inside the buffer). Tiles whose loads would leave the buffer (the first and
 * last rows of the whole tensor) and other strides take a compact lane-by-lane body.
 *
 * Compile-time constants: KH KW DH DW, VW (two per device: ConvOp._build_depthwise), RB, ACT,
 * RESIDUAL, FQ (a fused FakeQuantize, common.h).
 */
#include "vector.h"
#include "wq.h"
/* -DRESIDUAL (a Conv with a folded residual Add): one more kernel argument after `out`, a
 * tensor of the output's shape and layout added after the bias, before ACTIVATE. */
#ifdef RESIDUAL
#define RESIDUAL_ARG , __global const store_t* restrict residual
#else
#define RESIDUAL_ARG
#endif
/* input rows a tile of RB output rows reads at row stride S */
#define IR(S) ((RB - 1) * (S) + (KH - 1) * DH + 1)

#if VW == 1
#define vi int
#define as_float_v as_float
#define as_int_v as_int
#define LANES 0
#define LANE_MASK(c) ((c) ? -1 : 0)
#define LOADS2(p) LOAD(p, 0)
#else
#define vi CAT(int, VW)
#define as_float_v CAT(as_float, VW)
#define as_int_v CAT(as_int, VW)
#define LANE_MASK(c) (c)   /* a vector comparison: -1 (all bits) per true lane */
/* VW output pixels at stride 2: the even lanes of 2*VW consecutive inputs */
#define LOADS2(p) ((vf)(VLOAD(p).even, VLOAD((p) + VW).even))
#if VW == 2
#define LANES ((int2)(0, 1))
#elif VW == 4
#define LANES ((int4)(0, 1, 2, 3))
#elif VW == 8
#define LANES ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#else
#define LANES ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#endif
#endif
#define LOADS1(p) VLOAD(p)

/* Strides SH == SW == S (1 or 2): masks per kernel column, then the unrolled rows. */
#define DW_FAST(S)                                                                              \
    {                                                                                           \
        vi mask[KW];                                                                            \
        _Pragma("unroll") for (int kw = 0; kw < KW; kw++) {                                     \
            const vi iw = (vi)(iw0 + kw * DW) + LANES * (S);                                    \
            mask[kw] = LANE_MASK(iw >= 0 && iw < W);                                            \
        }                                                                                       \
        _Pragma("unroll") for (int ir = 0; ir < IR(S); ir++) {                                  \
            const int ih = ih0 + ir;                                                            \
            if (ih < 0 || ih >= H) continue;                                                    \
            _Pragma("unroll") for (int kw = 0; kw < KW; kw++) {                                 \
                const vf x = as_float_v(as_int_v(LOADS##S(ip + ih * W + iw0 + kw * DW)) & mask[kw]); \
                _Pragma("unroll") for (int r = 0; r < RB; r++) {                                \
                    const int khd = ir - r * (S);                                               \
                    if (khd >= 0 && khd < KH * DH && khd % DH == 0)                             \
                        acc[r] = wk[(khd / DH) * KW + kw] * x + acc[r];                         \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }

/* VW pixels of one input row from column iw at stride sw, lane by lane, zero outside [0, W) */
inline vf row_gather(const __global store_t* row, int iw, int sw, int W) {
#if VW == 1
    return (iw >= 0 && iw < W) ? LOAD(row, iw) : 0.0f;
#else
    vf v = 0.0f;
    for (int l = 0; l < VW; l++) {
        const int col = iw + l * sw;
        v[l] = (col >= 0 && col < W) ? LOAD(row, col) : 0.0f;
    }
    return v;
#endif
}

/* depthwise: chosen for Conv with group == C == M (any kernel size, stride, dilation, pads).
 * gws = (ceil(OW / VW), ceil(OH / RB), N*C); the last tile of a row and the last row block are
 * clamped back (they overlap their neighbour and write the same values), so OH >= RB is
 * required; a row narrower than VW is one tile that stores its first OW lanes. */
__kernel void depthwise(__global const store_t* restrict in,   /* (N, C, H, W) */
                        __global const wq_t* restrict w,       /* (C, KH*KW), 8-bit with -DWQ */
                        __global const float* restrict bias    /* (C) */
                        WQ_ARGS,                               /* -DWQ: (C) scales (zero points) */
                        __global store_t* restrict out         /* (N, C, OH, OW) */
                        RESIDUAL_ARG,                          /* (N, C, OH, OW) with -DRESIDUAL */
                        int C, int H, int W, int OH, int OW, int NC, int PT, int PL, int SH, int SW FQ_ARGS) {
    const int ow0 = max(0, min((int)get_global_id(0) * VW, OW - VW));
    const int oh0 = min((int)get_global_id(1) * RB, OH - RB);
    const int nc = get_global_id(2);
    if (nc >= NC) return;
    const int c = nc % C;
    const int ih0 = oh0 * SH - PT;
    const __global store_t* ip = in + (size_t)nc * H * W;

    float wk[KH * KW];
#pragma unroll
    for (int k = 0; k < KH * KW; k++) wk[k] = WQ_DEQ(w[c * (KH * KW) + k], c);
    const float bv = bias[c];
    const int iw0 = ow0 * SW - PL;
    vf acc[RB];
#pragma unroll
    for (int r = 0; r < RB; r++) acc[r] = bv;

    /* the flat span the specialized body's vector loads touch stays inside the buffer */
    const int s = SH == SW && (SH == 1 || SH == 2) ? SH : 0;
    const long plane = (long)nc * H * W;
    const long lo = plane + (long)max(ih0, 0) * W + iw0;
    const long hi = plane + (long)min(ih0 + IR(s) - 1, H - 1) * W + iw0 + (KW - 1) * DW + VW * s;
    if (s != 0 && lo >= 0 && hi <= (long)NC * H * W) {
        if (s == 1) DW_FAST(1) else DW_FAST(2)
    } else {
        const int ir_end = (RB - 1) * SH + (KH - 1) * DH + 1;
        for (int ir = 0; ir < ir_end; ir++) {
            const int ih = ih0 + ir;
            if (ih < 0 || ih >= H) continue;
            for (int kw = 0; kw < KW; kw++) {
                const vf x = row_gather(ip + ih * W, iw0 + kw * DW, SW, W);
#pragma unroll
                for (int r = 0; r < RB; r++) {
                    const int khd = ir - r * SH;
                    if (khd >= 0 && khd < KH * DH && khd % DH == 0)
                        acc[r] = WQ_DEQ(w[c * (KH * KW) + (khd / DH) * KW + kw], c) * x + acc[r];
                }
            }
        }
    }

    const size_t o = (size_t)nc * OH * OW + oh0 * OW + ow0;
#pragma unroll
    for (int r = 0; r < RB; r++) {
        vf v = acc[r];
        if (ow0 + VW <= OW) {
#ifdef RESIDUAL
            v += VLOAD(residual + o + r * OW);
#endif
            VSTORE(EPILOGUE(v), out + o + r * OW);
        } else {  /* a row narrower than VW: its first OW lanes */
#if VW > 1
#pragma unroll
            for (int l = 0; l < VW; l++)
                if (l < OW) {
                    float e = v[l];
#ifdef RESIDUAL
                    e += LOAD(residual, o + r * OW + l);
#endif
                    STORE(out, o + r * OW + l, EPILOGUE(e));
                }
#endif
        }
    }
}
