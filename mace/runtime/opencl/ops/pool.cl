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
typedef float16 f16u __attribute__((aligned(4)));
__kernel void global_pool(__global const store_t* restrict in, __global store_t* restrict out, int S, int NC) {
    const int nc = get_global_id(0);
    if (nc >= NC) return;
    const __global store_t* ip = in + (size_t)nc * S;
    int i = 0;
#ifdef GMAX
    float r = -INFINITY;
#ifndef STORAGE_HALF
    float16 a = -INFINITY;
    for (; i + 16 <= S; i += 16) a = fmax(a, *(const __global f16u*)(ip + i));
    float8 a8 = fmax(a.lo, a.hi);
    float4 a4 = fmax(a8.lo, a8.hi);
    r = fmax(fmax(a4.x, a4.y), fmax(a4.z, a4.w));
#endif
    for (; i < S; i++) r = fmax(r, LOAD(ip, i));
    STORE(out, nc, r);
#else
    float r = 0.0f;
#ifndef STORAGE_HALF
    float16 a = 0.0f;
    for (; i + 16 <= S; i += 16) a += *(const __global f16u*)(ip + i);
    float8 a8 = a.lo + a.hi;
    float4 a4 = a8.lo + a8.hi;
    r = (a4.x + a4.y) + (a4.z + a4.w);
#endif
    for (; i < S; i++) r += LOAD(ip, i);
    STORE(out, nc, r / (float)S);
#endif
}
#endif
