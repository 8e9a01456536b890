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
#define WQ_T uchar
typedef uchar4 wq4_t;
#else
#define WQ_T char
typedef char4 wq4_t;
#endif
typedef WQ_T wq_t;
#ifdef WZP
#define WQ_ARGS , __global const float* restrict wscale, __global const float* restrict wzp
#define WQ_ZP(i) (wzp[i])
#else
#define WQ_ARGS , __global const float* restrict wscale
#define WQ_ZP(i) 0.0f
#endif
#define WQ_SCALE(acc, i) ((acc) * wscale[i])
#define WQ_DEQ(q, i) (((float)(q) - WQ_ZP(i)) * wscale[i])
/* vector conversions and loads as plain casts and dereferences: PoCL calls, not inlines, the
 * convert_* / vload* builtins (ten times slower in an inner loop) */
#define WQ_F4(p, i) (((const __global float4*)(p))[i])
#ifdef WZP
#define WQ_DEQ4(q, i) ((__builtin_convertvector((q), float4) - WQ_F4(wzp, i)) * WQ_F4(wscale, i))
#else
#define WQ_DEQ4(q, i) (__builtin_convertvector((q), float4) * WQ_F4(wscale, i))
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
