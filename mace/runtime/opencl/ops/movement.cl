/* Data movement: a generic strided gather copy (Transpose, Slice, Split, Concat) and Pad.
 *
 * Shapes are kernel arguments (up to 6 dims, padded at the front with 1): one build serves
 * every shape. gws = (d5, d0*d1*d2*d3*d4): the innermost dim needs no division.
 */
#include "index.h"

/* dst[dst_off + sum c_k*ds_k] = src[src_off + sum c_k*ss_k] over the view d0..d5 (strides may be
 * negative: Slice with negative steps). */
kernel void strided_copy(global const store_t* src, global store_t* dst, int src_off, int dst_off,
                         int d1, int d2, int d3, int d4, int d5,
                         int ss0, int ss1, int ss2, int ss3, int ss4, int ss5,
                         int ds0, int ds1, int ds2, int ds3, int ds4, int ds5) {
    UNRAVEL6(d1, d2, d3, d4)
    int s = src_off + c0 * ss0 + c1 * ss1 + c2 * ss2 + c3 * ss3 + c4 * ss4 + c5 * ss5;
    int d = dst_off + c0 * ds0 + c1 * ds1 + c2 * ds2 + c3 * ds3 + c4 * ds4 + c5 * ds5;
    STORE(dst, d, LOAD(src, s));
}

/* Contiguous runs on both sides (e.g. Concat / Split on the outermost axis): 4 elements per item. */
kernel void copy4(global const store_t* src, global store_t* dst, int src_off, int dst_off) {
    int i = get_global_id(0);
    STORE4(dst + dst_off, i, LOAD4(src + src_off, i));
}

#define PAD_CONSTANT 0
#define PAD_REFLECT 1
#define PAD_EDGE 2
#define PAD_WRAP 3

/* Input coordinate of output coordinate c (already shifted by the begin pad); -1: outside. */
inline int pad_coord(int c, int n, int mode) {
    if (c >= 0 && c < n) return c;
    if (mode == PAD_CONSTANT) return -1;
    if (mode == PAD_EDGE) return clamp(c, 0, n - 1);
    if (mode == PAD_WRAP) return ((c % n) + n) % n;
    /* reflect (without repeating the edge), any distance */
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    int m = abs(c) % period;
    return m < n ? m : period - m;
}

/* out dims d0..d5 (d0 implicit), in dims n0..n5, in strides s0..s5, begin pads p0..p5 (may be
 * negative: cropping). */
kernel void pad(global const store_t* src, global store_t* dst, int mode, float value,
                int d1, int d2, int d3, int d4, int d5,
                int n0, int n1, int n2, int n3, int n4, int n5,
                int s0, int s1, int s2, int s3, int s4, int s5,
                int p0, int p1, int p2, int p3, int p4, int p5) {
    UNRAVEL6(d1, d2, d3, d4)
    int out = r0 * d5 + c5;
    int i0 = pad_coord(c0 - p0, n0, mode), i1 = pad_coord(c1 - p1, n1, mode), i2 = pad_coord(c2 - p2, n2, mode);
    int i3 = pad_coord(c3 - p3, n3, mode), i4 = pad_coord(c4 - p4, n4, mode), i5 = pad_coord(c5 - p5, n5, mode);
    float v;
    if ((i0 | i1 | i2 | i3 | i4 | i5) < 0) {
        v = value;
    } else {
        v = LOAD(src, i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3 + i4 * s4 + i5 * s5);
    }
    STORE(dst, out, v);
}
