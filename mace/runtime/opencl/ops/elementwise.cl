/* Element-wise ops.
 *
 * unary / unary4: a standalone activation, y = ACTIVATE(x) (-DACT=<id>, -DACT_A/B parameters).
 * binary_*: Add / Sub / Mul / Div / PRelu / Pow / Max / Min / Mod (fmod), chosen by the `op` argument (one build
 * for all of them; elementwise.py chains launches for the n-ary Max / Min / Sum / Mean),
 * followed by the fused activation (ACTIVATE). Variants by broadcast pattern:
 *   binary_same(4)     both operands have the output's shape
 *   binary_scalar(4)   one operand is a single element
 *   binary_channel(4)  one operand varies along one run of dims: index (i / inner) % channels
 *   binary_bcast       general: output dims (6, padded) and per-operand strides (0: broadcast)
 * binary_same(4) take a fused per-tensor FakeQuantize after ACTIVATE (-DFQ, common.h: fqfuse).
 * The ...4 kernels handle 4 elements per work item, used when the sizes allow. In scalar / channel the "full" operand is `a`; `swap` = 1 when it is the op's second operand.
 */
#include "index.h"
#define OP_ADD 0
#define OP_SUB 1
#define OP_MUL 2
#define OP_DIV 3
#define OP_PRELU 4
#define OP_POW 5
#define OP_MAX 6
#define OP_MIN 7
#define OP_MOD 8

inline float binop(float x, float y, int op) {
    if (op == OP_ADD) return x + y;
    if (op == OP_SUB) return x - y;
    if (op == OP_MUL) return x * y;
    if (op == OP_DIV) return x / y;
    if (op == OP_POW) return pow(x, y);
    if (op == OP_MAX) return fmax(x, y);
    if (op == OP_MIN) return fmin(x, y);
    if (op == OP_MOD) return fmod(x, y);
    return x >= 0.0f ? x : x * y; /* PRelu: y is the slope */
}

inline float4 binop4(float4 x, float4 y, int op) {
    if (op == OP_ADD) return x + y;
    if (op == OP_SUB) return x - y;
    if (op == OP_MUL) return x * y;
    if (op == OP_DIV) return x / y;
    if (op == OP_POW) return pow(x, y);
    if (op == OP_MAX) return fmax(x, y);
    if (op == OP_MIN) return fmin(x, y);
    if (op == OP_MOD) return fmod(x, y);
    return select(x * y, x, x >= (float4)(0.0f));
}

kernel void unary(global const store_t* x, global store_t* y) {
    int i = get_global_id(0);
    float v = LOAD(x, i);
    STORE(y, i, ACTIVATE(v));
}

kernel void unary4(global const store_t* x, global store_t* y) {
    int i = get_global_id(0);
    float4 v = LOAD4(x, i);
    STORE4(y, i, ACTIVATE(v));
}

kernel void binary_same(global const store_t* a, global const store_t* b, global store_t* out, int op FQ_ARGS) {
    int i = get_global_id(0);
    float v = binop(LOAD(a, i), LOAD(b, i), op);
    STORE(out, i, EPILOGUE(v));
}

kernel void binary_same4(global const store_t* a, global const store_t* b, global store_t* out, int op FQ_ARGS) {
    int i = get_global_id(0);
    float4 v = binop4(LOAD4(a, i), LOAD4(b, i), op);
    STORE4(out, i, EPILOGUE(v));
}

kernel void binary_scalar(global const store_t* a, global const store_t* b, global store_t* out, int op,
                          int swap) {
    int i = get_global_id(0);
    float x = LOAD(a, i), s = LOAD(b, 0);
    float v = swap ? binop(s, x, op) : binop(x, s, op);
    STORE(out, i, ACTIVATE(v));
}

kernel void binary_scalar4(global const store_t* a, global const store_t* b, global store_t* out, int op,
                           int swap) {
    int i = get_global_id(0);
    float4 x = LOAD4(a, i), s = (float4)(LOAD(b, 0));
    float4 v = swap ? binop4(s, x, op) : binop4(x, s, op);
    STORE4(out, i, ACTIVATE(v));
}

kernel void binary_channel(global const store_t* a, global const store_t* b, global store_t* out, int op,
                           int swap, int inner, int channels) {
    int i = get_global_id(0);
    float x = LOAD(a, i), s = LOAD(b, (i / inner) % channels);
    float v = swap ? binop(s, x, op) : binop(x, s, op);
    STORE(out, i, ACTIVATE(v));
}

/* inner % 4 == 0: the 4 elements of an item share their channel. */
kernel void binary_channel4(global const store_t* a, global const store_t* b, global store_t* out, int op,
                            int swap, int inner, int channels) {
    int i = get_global_id(0);
    float4 x = LOAD4(a, i), s = (float4)(LOAD(b, ((i << 2) / inner) % channels));
    float4 v = swap ? binop4(s, x, op) : binop4(x, s, op);
    STORE4(out, i, ACTIVATE(v));
}

/* gws = (d5, d0*d1*d2*d3*d4); the output is dense in d0..d5. */
kernel void binary_bcast(global const store_t* a, global const store_t* b, global store_t* out, int op,
                         int d1, int d2, int d3, int d4, int d5,
                         int as0, int as1, int as2, int as3, int as4, int as5,
                         int bs0, int bs1, int bs2, int bs3, int bs4, int bs5) {
    UNRAVEL6(d1, d2, d3, d4)
    int ia = c0 * as0 + c1 * as1 + c2 * as2 + c3 * as3 + c4 * as4 + c5 * as5;
    int ib = c0 * bs0 + c1 * bs1 + c2 * bs2 + c3 * bs3 + c4 * bs4 + c5 * bs5;
    float v = binop(LOAD(a, ia), LOAD(b, ib), op);
    STORE(out, r0 * d5 + c5, ACTIVATE(v));
}

/* unary_math: y = MATH(x) for the float unary ops (-DMATH=<id>, ids in elementwise.py's MATH),
 * Gelu included (-DGELU_TANH for its tanh approximation); the parametric activations take
 * -DMATH_A / -DMATH_B (alpha, gamma). Round is rint: half to even, as ONNX. */
#ifdef MATH
inline float math1(float x) {
#if MATH == 1
    return fabs(x);
#elif MATH == 2
    return -x;
#elif MATH == 3
    return exp(x);
#elif MATH == 4
    return log(x);
#elif MATH == 5
    return sqrt(x);
#elif MATH == 6
    return 1.0f / x;
#elif MATH == 7
    return floor(x);
#elif MATH == 8
    return ceil(x);
#elif MATH == 9
    return sin(x);
#elif MATH == 10
    return cos(x);
#elif MATH == 11
    return erf(x);
#elif MATH == 12
    return x / (1.0f + fabs(x));
#elif MATH == 13
    return fmax(x, 0.0f) + log1p(exp(-fabs(x)));
#elif MATH == 14
#ifdef GELU_TANH
    return 0.5f * x * (1.0f + tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
#else
    return 0.5f * x * (1.0f + erf(x * 0.7071067811865476f));
#endif
#elif MATH == 15
    return sign(x);
#elif MATH == 16
    return rint(x);
#elif MATH == 17
    return tan(x);
#elif MATH == 18
    return asin(x);
#elif MATH == 19
    return acos(x);
#elif MATH == 20
    return atan(x);
#elif MATH == 21
    return sinh(x);
#elif MATH == 22
    return cosh(x);
#elif MATH == 23
    return asinh(x);
#elif MATH == 24
    return acosh(x);
#elif MATH == 25
    return atanh(x);
#elif MATH == 26
    return x > 0.0f ? x : MATH_A * expm1(x);
#elif MATH == 27
    return x > 0.0f ? MATH_B * x : MATH_B * MATH_A * expm1(x);
#elif MATH == 28
    return fmax(x, 0.0f) + fmin(0.0f, MATH_A * expm1(x / MATH_A));
#elif MATH == 29
    return x > MATH_A ? x : 0.0f;
#elif MATH == 30
    return x * tanh(fmax(x, 0.0f) + log1p(exp(-fabs(x))));
#endif
}

kernel void unary_math(global const store_t* x, global store_t* y) {
    int i = get_global_id(0);
    STORE(y, i, math1(LOAD(x, i)));
}
#endif
