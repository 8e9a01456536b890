/* Shared by every mace OpenCL program (prepended to each .cl file; part of the program key).
 *
 * Storage type: tensors are `store_t` buffers, float by default or half with -DSTORAGE_HALF
 * (data_type fp16_fp32). Half storage goes through vload_half/vstore_half, which are core
 * OpenCL 1.2, so it works where cl_khr_fp16 is absent; all arithmetic is float.
 *
 * Fused activation: -DACT=<id> with -DACT_A=<float> -DACT_B=<float> parameters.
 */
#ifdef STORAGE_HALF
typedef half store_t;
#define LOAD(p, i) vload_half((i), (p))
#define STORE(p, i, v) vstore_half((v), (i), (p))
#define LOAD4(p, i) vload_half4((i), (p))
#define STORE4(p, i, v) vstore_half4((v), (i), (p))
#else
typedef float store_t;
#define LOAD(p, i) ((p)[(i)])
#define STORE(p, i, v) ((p)[(i)] = (v))
#define LOAD4(p, i) vload4((i), (p))
#define STORE4(p, i, v) vstore4((v), (i), (p))
#endif

#define ACT_NONE 0
#define ACT_RELU 1
#define ACT_CLIP 2
#define ACT_LEAKYRELU 3
#define ACT_SIGMOID 4
#define ACT_TANH 5
#define ACT_HARDSIGMOID 6
#define ACT_HARDSWISH 7
#define ACT_GELU 8
#define ACT_GELU_TANH 9
#define ACT_SILU 10

#ifndef ACT
#define ACT ACT_NONE
#endif
#ifndef ACT_A
#define ACT_A 0.0f
#endif
#ifndef ACT_B
#define ACT_B 0.0f
#endif

#if ACT == ACT_NONE
#define ACTIVATE(x) (x)
#elif ACT == ACT_RELU
#define ACTIVATE(x) fmax((x), 0.0f)
#elif ACT == ACT_CLIP
#define ACTIVATE(x) clamp((x), (float)(ACT_A), (float)(ACT_B))
#elif ACT == ACT_LEAKYRELU
#define ACTIVATE(x) select((x) * (float)(ACT_A), (x), (x) >= 0.0f)
#elif ACT == ACT_SIGMOID
#define ACTIVATE(x) (1.0f / (1.0f + exp(-(x))))
#elif ACT == ACT_TANH
#define ACTIVATE(x) tanh(x)
#elif ACT == ACT_HARDSIGMOID
#define ACTIVATE(x) clamp((x) * (float)(ACT_A) + (float)(ACT_B), 0.0f, 1.0f)
#elif ACT == ACT_HARDSWISH
#define ACTIVATE(x) ((x) * clamp((x) / 6.0f + 0.5f, 0.0f, 1.0f))
#elif ACT == ACT_GELU
#define ACTIVATE(x) (0.5f * (x) * (1.0f + erf((x) * 0.7071067811865476f)))
#elif ACT == ACT_GELU_TANH
#define ACTIVATE(x) (0.5f * (x) * (1.0f + tanh(0.7978845608028654f * ((x) + 0.044715f * (x) * (x) * (x)))))
#elif ACT == ACT_SILU
#define ACTIVATE(x) ((x) / (1.0f + exp(-(x))))
#endif

/* Fused per-tensor FakeQuantize (-DFQ with -DQMIN/-DQMAX): a conv / depthwise kernel whose output
 * only a FakeQuantize reads ends its epilogue with it, after bias, residual and activation:
 * v = (clamp(rint(v * fq_inv) + fq_z, QMIN, QMAX) - fq_z) * fq_s. Scale and zero point are
 * kernel arguments (FQ_ARGS, last in the list), so a model's layers share one program.
 * EPILOGUE(x) is what such kernels store: ACTIVATE, then FAKEQ. */
#ifdef FQ
#define FQ_ARGS , float fq_s, float fq_inv, int fq_z
#define FAKEQ(x) ((clamp(rint((x) * fq_inv) + (float)fq_z, (float)(QMIN), (float)(QMAX)) - (float)fq_z) * fq_s)
#else
#define FQ_ARGS
#define FAKEQ(x) (x)
#endif
#define EPILOGUE(x) FAKEQ(ACTIVATE(x))
