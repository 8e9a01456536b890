/* Dense and grouped convolution (NCHW), register-blocked for PoCL's CPU device and GPUs alike.
 *
 * PoCL (LLVM) does not vectorize across work-items when the kernel body has loops, and it does
 * not inline builtins such as mad()/vload4(); so each work-item computes an explicit SIMD tile:
 * OCB output channels x (PB vectors of VW consecutive output pixels of one output row), with
 * plain vector loads through an unaligned vector pointer type and `a * b + c` (contracted to FMA
 * by -cl-mad-enable). Weights are float (whatever the storage type), packed at init as
 * [group][Mg/OCB][Cg][KH][KW][OCB] so the inner loop reads them contiguously.
 *
 * Compile-time constants: KH KW SH SW DH DW (kernel geometry), OCB, VW, PB, ACT, RESIDUAL, FQ
 * (a fused FakeQuantize, common.h).
 * The input is read without padding checks: the op pads it into a scratch buffer first
 * (`pad_input`) when the conv has pads, so every tap of every tile is in range.
 */
#ifdef PAD_ONLY
#define VW 1
#define SW 1
#endif
#include "vector.h"
#include "wq.h"

#ifndef PAD_ONLY
#define TILE (VW * PB)

/* -DRESIDUAL (a Conv with a folded residual Add): one more kernel argument after `out`, a
 * tensor of the output's shape and layout added after the bias, before ACTIVATE. */
#ifdef RESIDUAL
#define RESIDUAL_ARG , __global const store_t* restrict residual
#else
#define RESIDUAL_ARG
#endif

/* conv2d: the general / pointwise conv. Chosen for every Conv that is not depthwise; a 1x1
 * stride-1 conv runs it as a blocked GEMM over flattened pixels (OH = 1, OW = H*W).
 * gws = (ceil(OW / TILE), OH, N * G * MB): tiles past the row end are clamped to OW - TILE
 * (they overlap their neighbour and write the same values), so OW >= TILE is required. */
__kernel void conv2d(__global const store_t* restrict in,   /* (N, G*Cg, Hp, Wp), already padded */
                     __global const wq_t* restrict w,       /* packed, see above (8-bit with -DWQ) */
                     __global const float* restrict bias    /* (G*MB*OCB), zero-filled */
                     WQ_ARGS,                               /* -DWQ: scales (zero points), as bias */
                     __global store_t* restrict out         /* (N, M, OH, OW) */
                     RESIDUAL_ARG,                          /* (N, M, OH, OW) with -DRESIDUAL */
                     int Cg, int Hp, int Wp, int OH, int OW, int G, int MB, int Mg, int NZ
                     FQ_ARGS) {  /* -DFQ: the fused FakeQuantize's parameters */
    const int ow0 = min((int)get_global_id(0) * TILE, OW - TILE);
    const int oh = get_global_id(1);
    const int z = get_global_id(2);
    if (oh >= OH || z >= NZ) return;
    const int mb = z % MB;
    const int ng = z / MB;          /* n * G + g */
    const int g = ng % G;
    const int n = ng / G;
    const int plane = Hp * Wp;
    const __global store_t* ip = in + (size_t)ng * Cg * plane + (oh * SH) * Wp + ow0 * SW;
    const __global wq_t* wp = w + (size_t)(g * MB + mb) * Cg * (KH * KW * OCB);

    vf acc[OCB][PB];
#pragma unroll
    for (int j = 0; j < OCB; j++)
#pragma unroll
        for (int b = 0; b < PB; b++) acc[j][b] = 0.0f;

/* one input channel's taps, with its float weights at WK0 (address space SPACE) */
#define CONV_CHANNEL(SPACE, WK0)                                                               \
    _Pragma("unroll") for (int kh = 0; kh < KH; kh++) {                                         \
        const __global store_t* rp = ip + kh * DH * Wp;                                         \
        _Pragma("unroll") for (int kw = 0; kw < KW; kw++) {                                     \
            vf x[PB];                                                                           \
            _Pragma("unroll") for (int b = 0; b < PB; b++) x[b] = LOADS(rp + kw * DW + b * VW * SW); \
            const SPACE float* wk = (WK0) + (kh * KW + kw) * OCB;                               \
            _Pragma("unroll") for (int j = 0; j < OCB; j++) {                                   \
                const float wv = wk[j];                                                         \
                _Pragma("unroll") for (int b = 0; b < PB; b++) acc[j][b] = wv * x[b] + acc[j][b]; \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    ip += plane;

#ifdef WQ
    /* 8-bit weights: WQ_CB channels' worth converted (less the zero points) into a private float
     * buffer, then the float loop: converting in the FMA loop costs PoCL twice the time */
#define WQ_CB (KH * KW == 1 ? 16 : 4)
#define WQ_CHUNK (WQ_CB * KH * KW * OCB)
    float wbuf[WQ_CHUNK];
    for (int c0 = 0; c0 < Cg; c0 += WQ_CB) {
        const int cn = min(WQ_CB, Cg - c0);
        for (int e = 0; e < cn * (KH * KW * OCB); e++)
            wbuf[e] = (float)wp[e] - WQ_ZP((g * MB + mb) * OCB + e % OCB);
        wp += cn * (KH * KW * OCB);
        for (int c = 0; c < cn; c++) {
            CONV_CHANNEL(, wbuf + c * (KH * KW * OCB))
        }
    }
#else
    for (int c = 0; c < Cg; c++) {
        CONV_CHANNEL(__global, wp)
        wp += KH * KW * OCB;
    }
#endif

    const int m0 = mb * OCB;
    __global store_t* op = out + ((size_t)(n * G + g) * Mg + m0) * (OH * OW) + oh * OW + ow0;
    const __global float* bp = bias + (g * MB + mb) * OCB;
#ifdef RESIDUAL
    const __global store_t* rp = residual + (op - out);
#endif
#pragma unroll
    for (int j = 0; j < OCB; j++) {
        if (m0 + j < Mg) {
            const float bv = bp[j];
#pragma unroll
            for (int b = 0; b < PB; b++) {
                vf v = WQ_SCALE(acc[j][b], (g * MB + mb) * OCB + j) + bv;
#ifdef RESIDUAL
                v += VLOAD(rp + (size_t)j * (OH * OW) + b * VW);
#endif
                VSTORE(EPILOGUE(v), op + (size_t)j * (OH * OW) + b * VW);
            }
        }
    }
}

#endif /* PAD_ONLY */

/* im2col: chosen (before the pointwise conv2d on its output) for direct convs whose output rows
 * are short (OW < 16) or strided with many input channels, where row tiles would waste lanes:
 * col[ng][(c*KH + kh)*KW + kw][oh*OW + ow] = x (0 in the pads). One work-item per (output row,
 * input channel): loops over the taps and the row (no divisions). gws = (OH, Cg, N*G). */
__kernel void im2col(__global const store_t* restrict in, __global store_t* restrict col,
                     int Cg, int H, int W, int OH, int OW, int PT, int PL, int KH_, int KW_, int SH_, int SW_,
                     int DH_, int DW_) {
    const int oh = get_global_id(0);
    const int c = get_global_id(1);
    const int ng = get_global_id(2);
    if (oh >= OH || c >= Cg) return;
    const int P = OH * OW;
    const __global store_t* ip = in + ((size_t)ng * Cg + c) * H * W;
    __global store_t* cp = col + ((size_t)ng * Cg + c) * (KH_ * KW_) * P + oh * OW;
    for (int kh = 0; kh < KH_; kh++) {
        const int ih = oh * SH_ - PT + kh * DH_;
        const bool rok = ih >= 0 && ih < H;
        const __global store_t* rp = ip + (rok ? ih : 0) * W;
        for (int kw = 0; kw < KW_; kw++) {
            const int iw0 = kw * DW_ - PL;
            for (int ow = 0; ow < OW; ow++) {
                const int iw = iw0 + ow * SW_;
                const float v = (rok && iw >= 0 && iw < W) ? LOAD(rp, iw) : 0.0f;
                STORE(cp, ow, v);
            }
            cp += P;
        }
    }
}

/* pad_input: zero-pads the spatial dims into a scratch buffer before conv2d / depthwise when the
 * conv has pads. gws = (round_up(Wp), Hp, N*C). */
__kernel void pad_input(__global const store_t* restrict in, __global store_t* restrict out,
                        int H, int W, int Hp, int Wp, int pt, int pl) {
    const int x = get_global_id(0);
    const int y = get_global_id(1);
    const int nc = get_global_id(2);
    if (x >= Wp) return;
    const int iy = y - pt, ix = x - pl;
    float v = 0.0f;
    if (iy >= 0 && iy < H && ix >= 0 && ix < W) v = LOAD(in, ((size_t)nc * H + iy) * W + ix);
    STORE(out, ((size_t)nc * Hp + y) * Wp + x, v);
}
