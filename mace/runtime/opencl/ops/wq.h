/* Weight-only 8-bit (`quantize_large_weights: 1`, or the int8 weights of a `quantize: 1` model):
 * with -DWQ the constant weights stay 8-bit integers in device memory (-DWQ=1 char, -DWQ=2
 * uchar) and are dequantized in the kernel by one scale per output channel (`wscale`) and, with
 * -DWZP, a zero point per output channel (`wzp`), both float arrays indexed like the bias. Kernels
 * that accumulate over one output channel subtract the zero point at the weight load and multiply
 * the accumulator by the scale in the epilogue (WQ_SCALE); per-tap loads dequantize fully
 * (WQ_DEQ, WQ_DEQ4 for 4 channels at index i of 4: (q - zp) * scale, the loader's float32
 * arithmetic). Without -DWQ everything here is the
 * identity on float weights. Included by `#include "wq.h"` (part of the program key). */
#ifdef WQ
#if WQ == 2
typedef uchar wq_t;
typedef uchar4 wq4_t;
#else
typedef char wq_t;
typedef char4 wq4_t;
#endif
#ifdef WZP
#define WQ_ARGS , __global const float* restrict wscale, __global const float* restrict wzp
#define WQ_ZP(i) (wzp[i])
#define WQ_ZP4(p, i) vload4((i), (p))
#else
#define WQ_ARGS , __global const float* restrict wscale
#define WQ_ZP(i) 0.0f
#endif
#define WQ_SCALE(acc, i) ((acc) * wscale[i])
#define WQ_DEQ(q, i) (((float)(q) - WQ_ZP(i)) * wscale[i])
#ifdef WZP
#define WQ_DEQ4(q, i) ((convert_float4(q) - vload4((i), wzp)) * vload4((i), wscale))
#else
#define WQ_DEQ4(q, i) (convert_float4(q) * vload4((i), wscale))
#endif
#else
typedef float wq_t;
typedef float4 wq4_t;
#define WQ_ARGS
#define WQ_ZP(i) 0.0f
#define WQ_SCALE(acc, i) (acc)
#define WQ_DEQ(q, i) (q)
#define WQ_DEQ4(q, i) (q)
#endif
