/* BatchNormalization (inference): y = ACTIVATE(x * scale[c] + shift[c]), NCHW of any rank >= 2
 * seen as (N, C, S). scale/shift (float) are folded from gamma, beta, mean, var at init.
 *
 * batchnorm: one (n, c) plane per work-item, 16-wide vector loads/stores over S plus a scalar
 * tail (fp16 storage: vload_half16). gws = (N*C). */
#ifdef STORAGE_HALF
#define VLOAD16(p) vload_half16(0, (p))
#define VSTORE16(v, p) vstore_half16((v), 0, (p))
#else
typedef float16 f16u __attribute__((aligned(4)));
#define VLOAD16(p) (*(const __global f16u*)(p))
#define VSTORE16(v, p) (*(__global f16u*)(p) = (v))
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
    for (; i + 16 <= S; i += 16) {
        float16 v = VLOAD16(ip + i) * a + b;
        VSTORE16(ACTIVATE(v), op + i);
    }
    for (; i < S; i++) {
        float v = LOAD(ip, i) * a + b;
        STORE(op, i, ACTIVATE(v));
    }
}
