/* Pooling, NCHW.
 *
 * pool2d: MaxPool / AveragePool (-DPOOL_MAX or average), one output row of one plane per
 * work-item; the window (KH KW SH SW DH DW compile-time) unrolls inside the loop over the row,
 * which LLVM vectorizes. Taps outside the input are skipped (max) or not summed; the average
 * divides by the taps inside the input, or (-DCOUNT_PAD) inside input + pads (a window is a
 * rectangle, so the count is rows x columns). gws = (OH, N*C).
 *
 * global_pool: GlobalAveragePool / GlobalMaxPool, one (n, c) plane per work-item with 16-wide
 * vector loads; gws = (N*C).
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

#ifdef POOL2D
__kernel void pool2d(__global const store_t* restrict in, __global store_t* restrict out,
                     int H, int W, int OH, int OW, int PT, int PL, int HE, int WE, int NC) {
    /* HE, WE: end of the padded extent (H + pad_bottom, W + pad_right) for COUNT_PAD */
    const int oh = get_global_id(0);
    const int nc = get_global_id(1);
    if (oh >= OH || nc >= NC) return;
    const int ih0 = oh * SH - PT;
    const __global store_t* ip = in + (size_t)nc * H * W;
    __global store_t* op = out + ((size_t)nc * OH + oh) * OW;
#ifndef POOL_MAX
    float rcnt = 0.0f;   /* taps of the window rows inside the input (or the padded extent) */
#pragma unroll
    for (int kh = 0; kh < KH; kh++) {
        const int ih = ih0 + kh * DH;
#ifdef COUNT_PAD
        rcnt += (ih < HE) ? 1.0f : 0.0f;
#else
        rcnt += (ih >= 0 && ih < H) ? 1.0f : 0.0f;
#endif
    }
#endif
    for (int ow = 0; ow < OW; ow++) {
        const int iw0 = ow * SW - PL;
#ifdef POOL_MAX
        float acc = -INFINITY;
#else
        float acc = 0.0f;
        float ccnt = 0.0f;
#endif
#pragma unroll
        for (int kh = 0; kh < KH; kh++) {
            const int ih = ih0 + kh * DH;
            const bool rok = ih >= 0 && ih < H;
            const __global store_t* rp = ip + (rok ? ih : 0) * W;
#pragma unroll
            for (int kw = 0; kw < KW; kw++) {
                const int iw = iw0 + kw * DW;
                const bool ok = rok && iw >= 0 && iw < W;
                const bool cok = iw >= 0 && iw < W;
#ifdef POOL_MAX
                const float v = ok ? LOAD(rp, iw) : -INFINITY;
                acc = v > acc ? v : acc;
#else
                acc += ok ? LOAD(rp, iw) : 0.0f;
                if (kh == 0) {
#ifdef COUNT_PAD
                    ccnt += (iw < WE) ? 1.0f : 0.0f;
#else
                    ccnt += cok ? 1.0f : 0.0f;
#endif
                }
#endif
            }
        }
#ifndef POOL_MAX
        acc = acc / (rcnt * ccnt > 0.0f ? rcnt * ccnt : 1.0f);
#endif
        STORE(op, ow, acc);
    }
}
#endif

#ifdef GLOBAL_POOL
/* global_pool: WV-wide vector loads (WV = 16, 8 or 4: the widest the device's probe accepted;
 * 1: scalar only), then a horizontal reduction of the vector and a scalar tail. */
#ifndef WV
#define WV 4
#endif
#ifdef GMAX
#define COMBINE(a, b) fmax((a), (b))
#else
#define COMBINE(a, b) ((a) + (b))
#endif
/* wv -> float4 -> float, pairwise */
#if WV == 16
#define TO4(a) COMBINE(COMBINE((a).lo.lo, (a).lo.hi), COMBINE((a).hi.lo, (a).hi.hi))
#elif WV == 8
#define TO4(a) COMBINE((a).lo, (a).hi)
#else
#define TO4(a) (a)
#endif
__kernel void global_pool(__global const store_t* restrict in, __global store_t* restrict out, int S, int NC) {
    const int nc = get_global_id(0);
    if (nc >= NC) return;
    const __global store_t* ip = in + (size_t)nc * S;
    int i = 0;
#ifdef GMAX
    float r = -INFINITY;
#else
    float r = 0.0f;
#endif
#if !defined(STORAGE_HALF) && WV >= 4
    typedef CAT(float, WV) wvu __attribute__((aligned(4)));
    CAT(float, WV) a = r;
    for (; i + WV <= S; i += WV) a = COMBINE(a, *(const __global wvu*)(ip + i));
    float4 a4 = TO4(a);
    r = COMBINE(COMBINE(a4.x, a4.y), COMBINE(a4.z, a4.w));
#endif
    for (; i < S; i++) r = COMBINE(r, LOAD(ip, i));
#ifdef GMAX
    STORE(out, nc, r);
#else
    STORE(out, nc, r / (float)S);
#endif
}
#endif
