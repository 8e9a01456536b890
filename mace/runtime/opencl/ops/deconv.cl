/* ConvTranspose (2-D, NCHW; groups, strides, dilations, pads, output_padding), gather form:
 *   out[n, g*Mg + m, oy, ox] = bias + sum over taps (kh, kw) with oy + PT - kh*DH = iy*SH and
 *   ox + PL - kw*DW = ix*SW (iy, ix inside the input) and over c < Cg of x[n, g*Cg + c, iy, ix] * w
 *
 * deconv2d: the only variant; each work-item computes OCB output channels of one output pixel,
 * so each input value it reads feeds OCB multiply-adds. The tap tests are per work-item (KH, KW
 * compile-time), the channel loop inside reads weights packed [g][Mg/OCB][KH][KW][Cg][OCB].
 * gws = (round_up(OW, 16), OH, N*G*MB).
 */
__kernel void deconv2d(__global const store_t* restrict in, __global const float* restrict w,
                       __global const float* restrict bias, __global store_t* restrict out,
                       int Cg, int H, int W, int OH, int OW, int G, int MB, int Mg, int PT, int PL) {
    const int ox = get_global_id(0);
    const int oy = get_global_id(1);
    const int z = get_global_id(2);
    if (ox >= OW) return;
    const int mb = z % MB;
    const int ng = z / MB;
    const int g = ng % G;
    const int n = ng / G;
    const __global store_t* ip = in + (size_t)ng * Cg * H * W;
    const __global float* wg = w + (size_t)(g * MB + mb) * (KH * KW) * Cg * OCB;

    float acc[OCB];
#pragma unroll
    for (int j = 0; j < OCB; j++) acc[j] = 0.0f;

#pragma unroll
    for (int kh = 0; kh < KH; kh++) {
        const int ty = oy + PT - kh * DH;
        const int iy = ty / SH;
        if (ty < 0 || iy * SH != ty || iy >= H) continue;
#pragma unroll
        for (int kw = 0; kw < KW; kw++) {
            const int tx = ox + PL - kw * DW;
            const int ix = tx / SW;
            if (tx < 0 || ix * SW != tx || ix >= W) continue;
            const __global store_t* xp = ip + iy * W + ix;
            const __global float* wp = wg + (kh * KW + kw) * Cg * OCB;
            for (int c = 0; c < Cg; c++) {
                const float xv = LOAD(xp, (size_t)c * H * W);
#pragma unroll
                for (int j = 0; j < OCB; j++) acc[j] = wp[c * OCB + j] * xv + acc[j];
            }
        }
    }

    const int m0 = mb * OCB;
    const __global float* bp = bias + (g * MB + mb) * OCB;
#pragma unroll
    for (int j = 0; j < OCB; j++) {
        if (m0 + j < Mg) {
            float v = acc[j] + bp[j];
            STORE(out, (((size_t)(n * G + g) * Mg + m0 + j) * OH + oy) * OW + ox, ACTIVATE(v));
        }
    }
}
