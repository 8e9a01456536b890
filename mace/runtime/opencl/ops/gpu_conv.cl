/* GPU-style convolution as a tiled SGEMM with __local memory (variants `gpu_gemm*`, `gpu_im2col`,
 * `gpu_direct*`, and the 16 GEMMs of `gpu_winograd` of Conv; the CPU-oriented register-tile
 * kernels live in conv.cl).
 *
 * Per (batch, group) ng = n * G + g:   out[ng][m][p] = ACTIVATE(sum_k W[g][k][m] * X[ng][k][p] + bias[g*Mg + m])
 *   m < Mg (output channel of the group), p < P = OH*OW (output pixel), k < K = Cg*KH*KW.
 * W is float (8-bit with -DWQ, wq.h: dequantized as its A tile is staged), laid out [G][K][LDW]
 * at init, LDW = Mg rounded up to 4 with zero columns (K-major:
 * a K-tile row of the M block is contiguous, and read as 16-byte aligned float4s).
 * X is either a dense (K, P) matrix per ng (pointwise conv: the input itself; im2col: the column
 * buffer; gpu_winograd: V, G = 16 transform positions) or, with -DIMPLICIT, gathered on the fly
 * from the NCHW input with zero padding (implicit GEMM, k = (c*KH + kh)*KW + kw; no im2col buffer).
 *
 * Work-group 16x16 (reqd_work_group_size: the tuner's other local sizes fail and are skipped);
 * each work-item computes a TM x TN micro-tile (TM = TN = 2, 4 or 8: 32x32, 64x64, 128x128
 * tiles): output channels m0 + ly + 16*i (i < TM) and pixels p0 + lx + 16*j (j < TN), so stores
 * are coalesced along pixels and local reads are broadcast (A) / conflict-free (B). Tiles of
 * TK = 16 along K are staged in local memory (As[TK][BM], Bs[TK][BN], BM = 16*TM, BN = 16*TN:
 * 2 * 16 * 128 * 4 = 16 KiB at TM = TN = 8), two barriers per K tile. A warp loads whole A rows
 * as float4s and consecutive B columns (pixels), both coalesced; a work-item's B column is the
 * same in every K tile, so the implicit gather divides by OW once.
 * gws = (ceil(P / BN) * 16, ceil(Mg / BM) * 16, N*G); every load and store is bounds-guarded.
 *
 * Compile-time constants: TM, TN; with IMPLICIT also KH KW SH SW DH DW; ACT; RESIDUAL (one more
 * argument after `out`: a tensor of the output's layout added before ACTIVATE); FQ (a fused
 * FakeQuantize after ACTIVATE, its parameters the last arguments: common.h; not with SPLITK).
 */
#include "wq.h"
/* -DRESIDUAL (a Conv with a folded residual Add): one more kernel argument after `out`, a
 * tensor of the output's shape and layout added after the bias, before ACTIVATE. */
#ifdef RESIDUAL
#define RESIDUAL_ARG , __global const store_t* restrict residual
#else
#define RESIDUAL_ARG
#endif
/* -DSPLITK (variant `gpu_direct_splitk`): the K range is cut into S slices of KS (a multiple of
 * TK), global dimension 2 runs over (ng, slice); gemm_conv writes raw float partial sums
 * part[s][ng][m][p] and splitk_reduce adds the slices, the bias, the residual and the
 * activation. For convs with a long K and few output tiles (ResNet's 7x7 stages), which would
 * otherwise leave most compute units idle. */
#ifdef SPLITK
#define GEMM_OUT_T float
#define GEMM_RESIDUAL_ARG
#define SPLITK_ARGS , int S, int KS
#else
#define GEMM_OUT_T store_t
#define GEMM_RESIDUAL_ARG RESIDUAL_ARG
#define SPLITK_ARGS
#endif
#ifndef DEPTHWISE
#define TK 16
#define WG 16
#define BM (WG * TM)
#define BN (WG * TN)
#define A4 (TK * BM / 4)  /* float4s of an A tile */
#if (WG * WG) % BN != 0 || (TK * BN) % (WG * WG) != 0
#error "a work-item loads one B column, TK * BN / (WG * WG) of its rows"
#endif

__kernel __attribute__((reqd_work_group_size(WG, WG, 1)))
void gemm_conv(__global const store_t* restrict X,   /* (N*G, K, P) dense, or NCHW input with IMPLICIT */
               __global const wq4_t* restrict W,     /* [G][K][LDW / 4] (8-bit with -DWQ) */
               __global const float* restrict bias   /* (G*Mg) */
               WQ_ARGS,                              /* -DWQ: [G][LDW] scales (zero points) */
               __global GEMM_OUT_T* restrict out     /* (N, G*Mg, P); SPLITK: (S, N*G, Mg, P) */
               GEMM_RESIDUAL_ARG,                    /* (N, G*Mg, P) with -DRESIDUAL */
               int K, int P, int Mg, int G,
               int H, int Wd, int OW, int PT, int PL  /* geometry (IMPLICIT only) */
               SPLITK_ARGS FQ_ARGS) {
    __local float As[TK][BM] __attribute__((aligned(16)));
    __local float Bs[TK][BN];
    const int lx = get_local_id(0), ly = get_local_id(1);
    const int tid = ly * WG + lx;
    const int p0 = get_group_id(0) * BN;
    const int m0 = get_group_id(1) * BM;
#ifdef SPLITK
    const int ng = get_global_id(2) / S, slice = get_global_id(2) % S;
    const int kbeg = slice * KS, kend = min(K, kbeg + KS);
#else
    const int ng = get_global_id(2);
    const int kbeg = 0, kend = K;
#endif
    const int g = ng % G;
    const int ldw4 = (Mg + 3) / 4;
    const __global wq4_t* wp = W + (size_t)g * K * ldw4;
    /* this work-item's B column pb (rows kb, kb + WG*WG/BN, ...) */
    const int pb = tid % BN, kb = tid / BN;
    const int pc = p0 + pb;
#ifdef IMPLICIT
    const int Cg = K / (KH * KW);
    const __global store_t* xp = X + (size_t)ng * Cg * H * Wd;
    const int ih0 = (pc / OW) * SH - PT, iw0 = (pc % OW) * SW - PL;
#else
    const __global store_t* xp = X + (size_t)ng * K * P;
#endif

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    for (int k0 = kbeg; k0 < kend; k0 += TK) {
        /* stage the A tile (TK x BM weights, float4s) and the B tile (TK x BN inputs) */
#pragma unroll
        for (int r = 0; r < (A4 + WG * WG - 1) / (WG * WG); r++) {
            const int e = tid + r * (WG * WG);
            const int kk = e / (BM / 4), m4 = e % (BM / 4);
            const int k = k0 + kk, mq = m0 / 4 + m4;
            if (A4 % (WG * WG) == 0 || e < A4)  /* 32x32 tiles: half the work-items */
                vstore4(k < kend && mq < ldw4 ? WQ_DEQ4(wp[(size_t)k * ldw4 + mq], g * ldw4 + mq) : (float4)0.0f, 0,
                        &As[kk][4 * m4]);
        }
#pragma unroll
        for (int r = 0; r < TK * BN / (WG * WG); r++) {
            const int kk = kb + r * (WG * WG / BN), k = k0 + kk;
            float v = 0.0f;
#ifdef IMPLICIT
            if (k < kend && pc < P) {
                const int c = k / (KH * KW), t = k % (KH * KW);
                const int ih = ih0 + (t / KW) * DH, iw = iw0 + (t % KW) * DW;
                if (ih >= 0 && ih < H && iw >= 0 && iw < Wd) v = LOAD(xp, ((size_t)c * H + ih) * Wd + iw);
            }
#else
            if (k < kend && pc < P) v = LOAD(xp, (size_t)k * P + pc);
#endif
            Bs[kk][pb] = v;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
        for (int kk = 0; kk < TK; kk++) {
            float a[TM], b[TN];
#pragma unroll
            for (int i = 0; i < TM; i++) a[i] = As[kk][ly + WG * i];
#pragma unroll
            for (int j = 0; j < TN; j++) b[j] = Bs[kk][lx + WG * j];
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

#ifdef SPLITK
    /* raw partial sums of this K slice; splitk_reduce finishes them */
    const size_t ngs = get_global_size(2) / S;
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const int m = m0 + ly + WG * i;
        if (m < Mg) {
            __global float* op = out + (((size_t)slice * ngs + ng) * Mg + m) * P;
#pragma unroll
            for (int j = 0; j < TN; j++) {
                const int p = p0 + lx + WG * j;
                if (p < P) op[p] = acc[i][j];
            }
        }
    }
#else
    /* epilogue: bias + fused activation, bounds-guarded stores */
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const int m = m0 + ly + WG * i;
        if (m < Mg) {
            const float bv = bias[g * Mg + m];
            __global store_t* op = out + ((size_t)ng * Mg + m) * P;
#pragma unroll
            for (int j = 0; j < TN; j++) {
                const int p = p0 + lx + WG * j;
                if (p < P) {
#ifdef RESIDUAL
                    const float v = acc[i][j] + bv + LOAD(residual + (op - out), p);
#else
                    const float v = acc[i][j] + bv;
#endif
                    STORE(op, p, EPILOGUE(v));
                }
            }
        }
    }
#endif /* SPLITK */
}
#ifdef SPLITK
/* splitk_reduce: one work-item per output element i = (ng*Mg + m)*P + p of `total`. */
__kernel void splitk_reduce(__global const float* restrict part, __global const float* restrict bias,
                            __global store_t* restrict out RESIDUAL_ARG,
                            int S, int total, int Mg, int P, int G) {
    const int i = get_global_id(0);
    if (i >= total) return;
    float v = 0.0f;
    for (int s = 0; s < S; s++) v += part[(size_t)s * total + i];
    const int m = (i / P) % Mg, g = (i / (Mg * P)) % G;
    v += bias[g * Mg + m];
#ifdef RESIDUAL
    v += LOAD(residual, i);
#endif
    STORE(out, i, ACTIVATE(v));
}
#endif
#endif /* !DEPTHWISE */

#ifdef DEPTHWISE
/* depthwise_px (variant `gpu_depthwise`): one work-item per output element, x fastest.
 * gws = (round_up(OW, lws0), round_up(OH, lws1), N*C); taps bounds-checked (zero padding);
 * weights float (C, KH*KW), or 8-bit with -DWQ. Compile-time constants: KH KW DH DW, ACT; the
 * strides are arguments (one program for a model's strides). */
__kernel void depthwise_px(__global const store_t* restrict in, __global const wq_t* restrict w,
                           __global const float* restrict bias WQ_ARGS, __global store_t* restrict out RESIDUAL_ARG,
                           int C, int H, int Wd, int OH, int OW, int NC, int PT, int PL, int SH, int SW FQ_ARGS) {
    const int ow = get_global_id(0), oh = get_global_id(1), nc = get_global_id(2);
    if (ow >= OW || oh >= OH || nc >= NC) return;
    const int c = nc % C;
    const __global store_t* ip = in + (size_t)nc * H * Wd;
    const __global wq_t* wp = w + c * (KH * KW);
    const int ih0 = oh * SH - PT, iw0 = ow * SW - PL;
    float acc = bias[c];
#pragma unroll
    for (int kh = 0; kh < KH; kh++) {
        const int ih = ih0 + kh * DH;
        if (ih >= 0 && ih < H) {
#pragma unroll
            for (int kw = 0; kw < KW; kw++) {
                const int iw = iw0 + kw * DW;
                if (iw >= 0 && iw < Wd) acc = fma(WQ_DEQ(wp[kh * KW + kw], c), LOAD(ip, (size_t)ih * Wd + iw), acc);
            }
        }
    }
#ifdef RESIDUAL
    acc += LOAD(residual, ((size_t)nc * OH + oh) * OW + ow);
#endif
    STORE(out, ((size_t)nc * OH + oh) * OW + ow, EPILOGUE(acc));
}
#endif
