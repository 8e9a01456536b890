/* Resize from per-axis tap tables computed on the host at init (the CPU runtime's tables: same
 * sampling positions, rounding modes and weights on both runtimes).
 *
 * resize_nearest: any rank <= 6, any axis scaled; `tab` holds src_index * src_stride for each
 *                 output index of every axis, axis k's entries start at o_k (entry 0 is 0 and
 *                 serves padded axes). gws = (d5, d0*..*d4).
 * resize_taps:    linear (taps = 2) or cubic (taps = 4) on at most two axes H and W (NCHW's
 *                 last two, NHWC's middle two, ...): the input is viewed as [A, H, B, W, C];
 *                 yidx holds src_h * stride(H), xidx src_w * stride(W) (= src_w * C).
 *                 gws = (out_w * C, out_h * B, A).
 */
#include "index.h"
kernel void resize_nearest(global const store_t* x, global store_t* y, global const int* tab,
                           int d1, int d2, int d3, int d4, int d5,
                           int o0, int o1, int o2, int o3, int o4, int o5) {
    UNRAVEL6(d1, d2, d3, d4)
    int src = tab[o0 + c0] + tab[o1 + c1] + tab[o2 + c2] + tab[o3 + c3] + tab[o4 + c4] + tab[o5 + c5];
    STORE(y, r0 * d5 + c5, LOAD(x, src));
}

/* The input is viewed as [A, H, B, W, C] (strides in_a of A, in_b of B) with H, W the
 * (at most two) resampled axes. */
kernel void resize_taps(global const store_t* x, global store_t* y,
                        global const int* yidx, global const float* yw,
                        global const int* xidx, global const float* xw,
                        int taps, int out_h, int out_w, int mid, int inner, int in_a, int in_b) {
    int g0 = get_global_id(0);  /* ox * inner + c */
    int g1 = get_global_id(1);  /* oy * mid + b */
    int a = get_global_id(2);
    int ox = g0 / inner, c = g0 - ox * inner;
    int oy = g1 / mid, b = g1 - oy * mid;
    global const store_t* src = x + a * in_a + b * in_b + c;
    float acc = 0.0f;
    for (int i = 0; i < taps; ++i) {
        float wy = yw[oy * taps + i];
        int yoff = yidx[oy * taps + i];
        float line = 0.0f;
        for (int j = 0; j < taps; ++j) line += xw[ox * taps + j] * LOAD(src, yoff + xidx[ox * taps + j]);
        acc += wy * line;
    }
    STORE(y, ((a * out_h + oy) * mid + b) * out_w * inner + g0, acc);
}
