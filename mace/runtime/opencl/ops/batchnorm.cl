/* BatchNormalization (inference): y = ACTIVATE(x * scale[c] + shift[c]), NCHW of any rank >= 2
 * seen as (N, C, S). scale/shift (float) are folded from gamma, beta, mean, var at init.
 *
 * batchnorm: one (n, c) plane per work-item, WV-wide vector loads/stores over S plus a scalar
 * tail (fp16 storage: vload_halfWV). WV (16, 8 or 4; 1: scalar only) is the widest vector the
 * device's probe accepted (DeviceCaps.max_vector_width). gws = (N*C). */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#ifndef WV
#define WV 4
#endif
#if WV >= 4
#define wv CAT(float, WV)
#ifdef STORAGE_HALF
#define VLOADW(p) CAT(vload_half, WV)(0, (p))
#define VSTOREW(v, p) CAT(vstore_half, WV)((v), 0, (p))
#else
typedef wv wvu __attribute__((aligned(4)));
#define VLOADW(p) (*(const __global wvu*)(p))
#define VSTOREW(v, p) (*(__global wvu*)(p) = (v))
#endif
#endif

__kernel void batchnorm(__global const store_t* restrict in, __global const float* restrict scale,
                        __global const float* restrict shift, __global store_t* restrict out,
                        int C, int S, int NC) {
    const int nc = get_global_id(0);
    if (nc >= NC) return;
    const int c = nc % C;
    const float a = scale[c], b = shift[c];
    const size_t base = (size_t)nc * S;
    const __global store_t* ip = in + base;
    __global store_t* op = out + base;
    int i = 0;
#if WV >= 4
    for (; i + WV <= S; i += WV) {
        wv v = VLOADW(ip + i) * a + b;
        VSTOREW(ACTIVATE(v), op + i);
    }
#endif
    for (; i < S; i++) {
        float v = LOAD(ip, i) * a + b;
        STORE(op, i, ACTIVATE(v));
    }
}
