/* Depthwise convolution (one input and one output channel per group), NCHW.
 *
 * Each work-item computes RB output rows x (PB vectors of VW consecutive output pixels) of one
 * channel: every input row it needs is loaded once per kernel column and feeds every output row
 * that uses it (all loops are over compile-time constants and unroll completely). Pads need no
 * copy: rows outside the input are skipped and columns outside it are masked lanes.
 *
 * Compile-time constants: KH KW SH SW DH DW, VW, PB, RB, ACT, RESIDUAL.
 */
#include "vector.h"
#include "wq.h"
#define TILE (VW * PB)
/* -DRESIDUAL (a Conv with a folded residual Add): one more kernel argument after `out`, a
 * tensor of the output's shape and layout added after the bias, before ACTIVATE. */
#ifdef RESIDUAL
#define RESIDUAL_ARG , __global const store_t* restrict residual
#else
#define RESIDUAL_ARG
#endif
/* input rows a tile of RB output rows reads */
#define IR ((RB - 1) * SH + (KH - 1) * DH + 1)

#if VW == 1
#define vi int
#define LANE(v, l) (v)
#else
#define vi CAT(int, VW)
#define LANE(v, l) ((v)[l])
#endif

/* Row loads of one tap: a plain vector load with the lanes outside [0, W) zeroed by `mask`
 * (those lanes read the neighbouring row, which is inside the buffer), or, for the first and
 * last channel plane of the buffer (whose neighbours are outside it), lane-by-lane loads. */
#define FAST_LOAD(p, m) as_float_v(as_int_v(LOADS(p)) & (m))
inline vf safe_load(const __global store_t* p, vi m) {
#if VW == 1
    return m ? LOAD(p, 0) : 0.0f;
#else
    vf v;
#pragma unroll
    for (int l = 0; l < VW; l++) v[l] = LANE(m, l) ? LOAD(p, l * SW) : 0.0f;
    return v;
#endif
}
#if VW == 1
#define as_float_v as_float
#define as_int_v as_int
#else
#define as_float_v CAT(as_float, VW)
#define as_int_v CAT(as_int, VW)
#endif

#define DW_BODY(LOADFN)                                                                        \
    _Pragma("unroll") for (int ir = 0; ir < IR; ir++) {                                         \
        const int ih = ih0 + ir;                                                                \
        if (ih < 0 || ih >= H) continue;                                                        \
        _Pragma("unroll") for (int kw = 0; kw < KW; kw++) {                                     \
            vf x[PB];                                                                           \
            _Pragma("unroll") for (int b = 0; b < PB; b++)                                      \
                x[b] = LOADFN(ip + ih * W + kw * DW + b * VW * SW, mask[kw][b]);                \
            _Pragma("unroll") for (int r = 0; r < RB; r++) {                                    \
                const int khd = ir - r * SH;                                                    \
                if (khd >= 0 && khd < KH * DH && khd % DH == 0) {                               \
                    const float wv = wk[(khd / DH) * KW + kw];                                  \
                    _Pragma("unroll") for (int b = 0; b < PB; b++)                              \
                        acc[r][b] = wv * x[b] + acc[r][b];                                      \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }

/* depthwise: chosen for Conv with group == C == M (any kernel size, stride, dilation, pads).
 * gws = (ceil(OW / TILE), ceil(OH / RB), N*C); the last tile of a row and the last row block are
 * clamped back (they overlap their neighbour and write the same values), so OW >= TILE and
 * OH >= RB are required. Pads are applied by masking: rows outside the input are skipped,
 * columns outside it are zeroed lanes. */
__kernel void depthwise(__global const store_t* restrict in,   /* (N, C, H, W) */
                        __global const wq_t* restrict w,       /* (C, KH*KW), 8-bit with -DWQ */
                        __global const float* restrict bias    /* (C) */
                        WQ_ARGS,                               /* -DWQ: (C) scales (zero points) */
                        __global store_t* restrict out         /* (N, C, OH, OW) */
                        RESIDUAL_ARG,                          /* (N, C, OH, OW) with -DRESIDUAL */
                        int C, int H, int W, int OH, int OW, int NC, int PT, int PL) {
    const int ow0 = min((int)get_global_id(0) * TILE, OW - TILE);
    const int oh0 = min((int)get_global_id(1) * RB, OH - RB);
    const int nc = get_global_id(2);
    if (nc >= NC) return;
    const int c = nc % C;
    const int ih0 = oh0 * SH - PT;
    const int iw0 = ow0 * SW - PL;
    const __global store_t* ip = in + (size_t)nc * H * W + iw0;

    float wk[KH * KW];
#pragma unroll
    for (int k = 0; k < KH * KW; k++) wk[k] = WQ_DEQ(w[c * (KH * KW) + k], c);
    const float bv = bias[c];

    vi mask[KW][PB];
#pragma unroll
    for (int kw = 0; kw < KW; kw++)
#pragma unroll
        for (int b = 0; b < PB; b++) {
#if VW == 1
            const int iw = iw0 + kw * DW + b * SW;
            mask[kw][b] = (iw >= 0 && iw < W) ? -1 : 0;
#else
#pragma unroll
            for (int l = 0; l < VW; l++) {
                const int iw = iw0 + kw * DW + (b * VW + l) * SW;
                mask[kw][b][l] = (iw >= 0 && iw < W) ? -1 : 0;
            }
#endif
        }

    vf acc[RB][PB];
#pragma unroll
    for (int r = 0; r < RB; r++)
#pragma unroll
        for (int b = 0; b < PB; b++) acc[r][b] = bv;

    if (nc == 0 || nc == NC - 1) {
        DW_BODY(safe_load)
    } else {
        DW_BODY(FAST_LOAD)
    }

    __global store_t* op = out + (size_t)nc * OH * OW + oh0 * OW + ow0;
#pragma unroll
    for (int r = 0; r < RB; r++)
#pragma unroll
        for (int b = 0; b < PB; b++) {
            vf v = acc[r][b];
#ifdef RESIDUAL
            v += VLOAD(residual + (op - out) + r * OW + b * VW);
#endif
            VSTORE(ACTIVATE(v), op + r * OW + b * VW);
        }
}
