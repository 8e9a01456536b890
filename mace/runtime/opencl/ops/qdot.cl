/* Full 8-bit convolutions and GEMMs (variant `int8_dot` of a Conv / Gemm / MatMul of a
 * `quantize: 1` model, on devices whose probe confirmed 8-bit integer dot products).
 *
 * The input is the float output of a per-tensor 8-bit FakeQuantize (x = (q - zx) * sx);
 * `quantize_pad` recovers q exactly (rint(x / sx) + zx, clamped to [QMIN, QMAX]), stores it as
 * an unsigned byte u = q + UOFF (UOFF = 128 for int8 grids, 0 for uint8), padded with the zero
 * point (the grid value of 0.0f); `im2col_u8` lays the bytes out as a (K, P) matrix of columns,
 * K = C*KH*KW rows, P = OH*OW pixels (a pointwise conv: quantize_pad writes that matrix
 * directly, one launch); `quantize_rows` reads a (P, K)
 * row-major matrix (Gemm/MatMul's A) transposed instead (-DROWS: the output is (P, M) too).
 * `qgemm_u8` multiplies it with the int8 weights (per output channel scale sw, zero point 0),
 * accumulating u8 x s8 products in int32, and requantizes in the float epilogue:
 *     y[m][p] = sx * sw[m] * (acc - zu * sum_k w[m][k]) + bias[m]  (+ residual, ACTIVATE)
 * with zu = zx + UOFF. Work-item = 16 pixels and TM output channels. Intel's CPU compiler
 * compiles its dot(char4, char4) builtin to a scalar call per work-item (the first kernel here
 * used it: 30x slower than the float kernel) and forms no vpdpbusd from OpenCL C; the products
 * of zero-extended bytes and sign-extended weights below become vpdpwssd (one product per
 * 32-bit lane: the float FMA's rate, on a quarter of the bytes). The device's dot-product
 * extension remains the gate (the build options carry the probe's). */

#ifdef RESIDUAL
#define RESIDUAL_ARG , __global const store_t* restrict residual
#else
#define RESIDUAL_ARG
#endif
#ifndef TM
#define TM 8
#endif

/* v = (q - zx) * sx to float rounding: v * (1 / sx) is within 1e-6 of an integer */
#define QUANT(v) ((uchar)(clamp((int)rint((v) * inv_sx) + zx, QMIN, QMAX) + UOFF))

/* x (N*C, H, W) float -> xp (N*C, Hp, RS) uchar, zero-point padded (pad_t rows, pad_l columns
 * before, the rest after): Hp = H + pads, RS = the row stride (W + pads; or, for a pointwise
 * conv, H = Hp = 1 and RS = P16: straight into the GEMM's (K, P16) layout). gws = (Wp, Hp, N*C) */
__kernel void quantize_pad(__global const store_t* restrict x, __global uchar* restrict xp,
                           int H, int W, int Hp, int Wp, int RS, int pad_t, int pad_l, float inv_sx, int zx) {
    const int xw = get_global_id(0), y = get_global_id(1), nc = get_global_id(2);
    if (xw >= Wp) return;
    const int ih = y - pad_t, iw = xw - pad_l;
    const bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
    /* padding: 0.0f, i.e. the zero point */
    xp[(nc * Hp + y) * RS + xw] = inside ? QUANT(LOAD(x, (nc * H + ih) * W + iw)) : (uchar)(zx + UOFF);
}

/* im2col of the padded bytes into xq (N, K, P16), K = C*KH*KW; gws = (OH, C, N), local size
 * (1, 1, 1), like conv.cl's im2col: each work-item copies the KH*KW rows of its output row */
__kernel void im2col_u8(__global const uchar* restrict xp, __global uchar* restrict xq,
                        int C, int Hp, int Wp, int OH, int OW) {
    const int oh = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
    if (oh >= OH || c >= C) return;
    const int P16 = (OH * OW + 15) & ~15;
    const __global uchar* ip = xp + (n * C + c) * Hp * Wp;
    __global uchar* cp = xq + (n * C + c) * (KH * KW) * P16 + oh * OW;
    for (int kh = 0; kh < KH; kh++) {
        const __global uchar* rp = ip + (oh * SH + kh * DH) * Wp;
        for (int kw = 0; kw < KW; kw++) {
            for (int ow = 0; ow < OW; ow++) cp[ow] = rp[kw * DW + ow * SW];
            cp += P16;
        }
    }
}

/* A (N, P, K) row-major float -> xq (N, K, P16) uchar (Gemm / MatMul); gws = (K, P, N) */
__kernel void quantize_rows(__global const store_t* restrict x, __global uchar* restrict xq,
                            int K, int P, float inv_sx, int zx) {
    const int k = get_global_id(0), p = get_global_id(1), n = get_global_id(2);
    if (k >= K) return;
    xq[(n * K + k) * ((P + 15) & ~15) + p] = QUANT(LOAD(x, (n * P + p) * K + k));
}

#ifdef STORAGE_HALF
#define LOAD16(p, i) vload_half16(0, (p) + (i))
#define STORE16(p, i, v) vstore_half16((v), 0, (p) + (i))
#else
#define LOAD16(p, i) vload16(0, (p) + (i))
#define STORE16(p, i, v) vstore16((v), 0, (p) + (i))
#endif

#ifndef PB
#define PB 2
#endif
/* gws = (ceil(P16 / (16 * PB)), ceil(M / TM), N), P16 = P rounded up to 16 (xq's row length; the
 * columns past P are not written by quantize_pad and their results not stored); wq
 * (ceil(M / TM), K, TM) int8, channels past M zero. PB x 16 pixels per work-item as explicit
 * vectors: Intel's compiler turns the int multiply-add of zero-extended bytes by a broadcast
 * weight into vpdpwssd, and each broadcast weight serves PB of them */
__kernel void qgemm_u8(__global const uchar* restrict xq, __global const char* restrict wq,
                       __global const int* restrict wsum, __global const float* restrict mscale,
                       __global const float* restrict bias, __global store_t* restrict out RESIDUAL_ARG,
                       int K, int P, int M, int zu) {
    const int pw = get_global_id(0) * 16 * PB, mb = get_global_id(1), n = get_global_id(2);
    const int P16 = (P + 15) & ~15;
    const int nb = min(PB, (P16 - pw) / 16);  /* 16-pixel blocks of this work-item inside P16 */
    const __global uchar* xp = xq + n * K * P16 + pw;
    const __global char* wr = wq + mb * K * TM;
    int16 acc[TM * PB];
#pragma unroll
    for (int i = 0; i < TM * PB; i++) acc[i] = 0;
    if (nb == PB) {
        for (int k = 0; k < K; k++) {
            int16 xv[PB];
#pragma unroll
            for (int b = 0; b < PB; b++) xv[b] = convert_int16(vload16(b, xp + k * P16));
#pragma unroll
            for (int i = 0; i < TM; i++) {
                const int wv = wr[k * TM + i];
#pragma unroll
                for (int b = 0; b < PB; b++) acc[i * PB + b] += xv[b] * wv;
            }
        }
    } else {
        for (int k = 0; k < K; k++) {
            const int16 xv = convert_int16(vload16(0, xp + k * P16));
#pragma unroll
            for (int i = 0; i < TM; i++) acc[i * PB] += xv * (int)wr[k * TM + i];
        }
    }
    for (int b = 0; b < nb; b++) {
    const int p0 = pw + 16 * b;
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const int m = mb * TM + i;
        if (m >= M) break;
        const float16 v = convert_float16(acc[i * PB + b] - zu * wsum[m]) * mscale[m] + bias[m];
#ifndef ROWS
        const int o = (n * M + m) * P + p0;
        if (p0 + 16 <= P) {
#ifdef RESIDUAL
            STORE16(out, o, ACTIVATE(v + LOAD16(residual, o)));
#else
            STORE16(out, o, ACTIVATE(v));
#endif
            continue;
        }
#endif
        float r[16];
        vstore16(v, 0, r);
        for (int j = 0; j < 16 && p0 + j < P; j++) {
#ifdef ROWS
            const int oj = (n * P + p0 + j) * M + m;
#else
            const int oj = o + j;
#endif
            float y = r[j];
#ifdef RESIDUAL
            y += LOAD(residual, oj);
#endif
            STORE(out, oj, ACTIVATE(y));
        }
    }
    }
}
