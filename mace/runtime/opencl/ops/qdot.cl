/* Full 8-bit pointwise convolution with integer dot products (variant `int8_dot` of a 1x1 Conv
 * of a `quantize: 1` model, where the device has cl_khr_integer_dot_product or
 * cl_arm_integer_dot_product_int8: -DDOT_KHR / -DDOT_ARM, the probe's build options).
 *
 * The input is the float output of a FakeQuantize (values on an 8-bit grid: x = (q - zx) * sx);
 * `quantize_cols` recovers q exactly (round(x / sx) + zx, clamped to [QMIN, QMAX]), shifts it to
 * signed (q - QOFF, QOFF = 128 for uint8) and lays it out as (K4, P) char4s (four channels per
 * char4, K padded to K4 * 4 with zeros): consecutive work-items (pixels) read consecutive char4s,
 * which is what a CPU runtime vectorizing across work-items needs. `qgemm_dot` multiplies it with the int8 weights (per output
 * channel scale sw, zero point 0) four channels at a time with dot(char4, char4) -> int,
 * accumulating in int32, and requantizes to float in the epilogue:
 *     y[m][p] = sx * sw[m] * (acc - (zx - QOFF) * sum_k w[m][k]) + bias[m]  (+ residual, ACTIVATE)
 * Each work-item computes TM output channels of one pixel; channels past M are clamped on load
 * (same values) and not stored. */
#ifdef DOT_KHR
#pragma OPENCL EXTENSION cl_khr_integer_dot_product : enable
#define DOT4(a, b) dot((a), (b))
#elif defined(DOT_ARM)
#pragma OPENCL EXTENSION cl_arm_integer_dot_product_int8 : enable
#define DOT4(a, b) arm_dot((a), (b))
#endif

#ifdef RESIDUAL
#define RESIDUAL_ARG , __global const store_t* restrict residual
#else
#define RESIDUAL_ARG
#endif
#define TM 8

/* gws = (P, K4, N): x (N, K, P) float -> xq (N, K4, P) char4 */
__kernel void quantize_cols(__global const store_t* restrict x, __global char4* restrict xq,
                            int K, int P, int K4, float sx, int zx) {
    const int p = get_global_id(0), k4 = get_global_id(1), n = get_global_id(2);
    if (p >= P || k4 >= K4) return;
    int q[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int k = k4 * 4 + i;
        q[i] = k < K ? clamp((int)rint(LOAD(x, ((size_t)n * K + k) * P + p) / sx) + zx, QMIN, QMAX) - QOFF : 0;
    }
    xq[((size_t)n * K4 + k4) * P + p] = (char4)((char)q[0], (char)q[1], (char)q[2], (char)q[3]);
}

/* gws = (P, ceil(M / TM), N) */
__kernel void qgemm_dot(__global const char4* restrict xq, __global const char4* restrict wq,
                        __global const int* restrict wsum, __global const float* restrict mscale,
                        __global const float* restrict bias, __global store_t* restrict out RESIDUAL_ARG,
                        int K4, int P, int M, int zx) {
    const int p = get_global_id(0), m0 = get_global_id(1) * TM, n = get_global_id(2);
    if (p >= P || m0 >= M) return;
    const __global char4* xp = xq + (size_t)n * K4 * P + p;
    const __global char4* wr[TM];
#pragma unroll
    for (int i = 0; i < TM; i++) wr[i] = wq + (size_t)min(m0 + i, M - 1) * K4;
    int acc[TM];
#pragma unroll
    for (int i = 0; i < TM; i++) acc[i] = 0;
    for (int k4 = 0; k4 < K4; k4++) {
        const char4 xv = xp[(size_t)k4 * P];
#pragma unroll
        for (int i = 0; i < TM; i++) acc[i] += DOT4(xv, wr[i][k4]);
    }
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const int m = m0 + i;
        if (m < M) {
            const size_t o = ((size_t)n * M + m) * P + p;
            float v = (float)(acc[i] - (zx - QOFF) * wsum[m]) * mscale[m] + bias[m];
#ifdef RESIDUAL
            v += LOAD(residual, o);
#endif
            STORE(out, o, ACTIVATE(v));
        }
    }
}
