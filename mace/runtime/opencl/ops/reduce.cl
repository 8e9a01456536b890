/* The Reduce* family and LayerNormalization.
 *
 * Reductions: the input is viewed (after merging neighbouring dims) as up to 3 kept dims
 * k0..k2 (strides ks0..ks2; k0 implicit) and up to 3 reduced dims r0..r2 (strides rs0..rs2);
 * the output is dense over the kept dims. The reduction is a define, -DRED=<id> (ids in
 * reduce.py's REDUCTIONS): INIT, ACC (one element in), COMBINE (two partial results) and FINISH
 * (the accumulator out; `scale` is 1/n for the mean).
 *
 * reduce:         one work item per output element, gws = (outputs).
 * reduce_partial: first pass of a split reduction (few outputs, long reductions, e.g. a global
 *                 mean): item (p, o) reduces the p-th of `parts` contiguous chunks of the reduced
 *                 elements into part[o * parts + p], gws = (parts, outputs); reduce_finish
 *                 combines them. (Not for LogSumExp, whose two passes need the whole row.)
 * layer_norm:     one work item per normalized row of n contiguous elements: mean, variance,
 *                 then (x - mean) / sqrt(var + eps) * scale + bias.
 * None uses local memory or a fixed local size, so any local size the tuner picks is valid.
 */
#define RED_MEAN 0
#define RED_SUM 1
#define RED_MAX 2
#define RED_MIN 3
#define RED_PROD 4
#define RED_L1 5
#define RED_L2 6
#define RED_SUMSQUARE 7
#define RED_LOGSUM 8
#define RED_LOGSUMEXP 9

#ifdef RED
#if RED == RED_MAX
#define INIT (-INFINITY)
#define ACC(a, v) fmax((a), (v))
#define COMBINE(a, b) fmax((a), (b))
#elif RED == RED_MIN
#define INIT INFINITY
#define ACC(a, v) fmin((a), (v))
#define COMBINE(a, b) fmin((a), (b))
#elif RED == RED_PROD
#define INIT 1.0f
#define ACC(a, v) ((a) * (v))
#define COMBINE(a, b) ((a) * (b))
#elif RED == RED_L1
#define INIT 0.0f
#define ACC(a, v) ((a) + fabs(v))
#elif RED == RED_L2 || RED == RED_SUMSQUARE
#define INIT 0.0f
#define ACC(a, v) fma((v), (v), (a))
#else /* mean, sum, log-sum; log-sum-exp sums exp(v - max) */
#define INIT 0.0f
#define ACC(a, v) ((a) + (v))
#endif
#ifndef COMBINE
#define COMBINE(a, b) ((a) + (b))
#endif

#if RED == RED_MEAN
#define FINISH(a) ((a) * scale)
#elif RED == RED_L2
#define FINISH(a) sqrt(a)
#elif RED == RED_LOGSUM
#define FINISH(a) log(a)
#else
#define FINISH(a) (a)
#endif

#define VIEW_ARGS int k1, int k2, int ks0, int ks1, int ks2, int r0, int r1, int r2, int rs0, int rs1, int rs2
#define BASE(o) \
    int c2 = (o) % k2, t_ = (o) / k2; \
    int c1 = t_ % k1, c0 = t_ / k1; \
    int base = c0 * ks0 + c1 * ks1 + c2 * ks2;
#define FOR_EACH(v, body) \
    for (int a = 0; a < r0; ++a) \
        for (int b = 0; b < r1; ++b) { \
            int row = base + a * rs0 + b * rs1; \
            for (int c = 0; c < r2; ++c) { float v = LOAD(x, row + c * rs2); body; } \
        }

kernel void reduce(global const store_t* x, global store_t* y, VIEW_ARGS, float scale) {
    int o = get_global_id(0);
    BASE(o)
#if RED == RED_LOGSUMEXP
    float m = -INFINITY;
    FOR_EACH(v, m = fmax(m, v))
    if (!isfinite(m)) m = 0.0f;
    float acc = 0.0f;
    FOR_EACH(v, acc += exp(v - m))
    STORE(y, o, log(acc) + m);
#else
    float acc = INIT;
    FOR_EACH(v, acc = ACC(acc, v))
    STORE(y, o, FINISH(acc));
#endif
}

kernel void reduce_partial(global const store_t* x, global float* part, VIEW_ARGS, int parts) {
    int p = get_global_id(0);
    int o = get_global_id(1);
    BASE(o)
    int total = r0 * r1 * r2;
    int chunk = (total + parts - 1) / parts;
    int j = p * chunk;
    int end = min(j + chunk, total);
    /* decompose the chunk's start once, then step the (a, b, c) counter */
    int c = j % r2, u = j / r2;
    int b = u % r1, a = u / r1;
    float acc = INIT;
    for (; j < end; ++j) {
        acc = ACC(acc, LOAD(x, base + a * rs0 + b * rs1 + c * rs2));
        if (++c == r2) {
            c = 0;
            if (++b == r1) { b = 0; ++a; }
        }
    }
    part[o * parts + p] = acc;
}

/* Second pass: y[o] = FINISH(combination of part[o * parts .. + parts)) (float partials). */
kernel void reduce_finish(global const float* part, global store_t* y, int parts, float scale) {
    int o = get_global_id(0);
    float acc = part[o * parts];
    for (int p = 1; p < parts; ++p) acc = COMBINE(acc, part[o * parts + p]);
    STORE(y, o, FINISH(acc));
}
#endif /* RED */

#ifdef LAYER_NORM
/* Rows of n contiguous elements; scale and bias hold n values each (HAS_BIAS: a bias is given). */
kernel void layer_norm(global const store_t* x, global const store_t* scale,
#ifdef HAS_BIAS
                       global const store_t* bias,
#endif
                       global store_t* y, int n, float eps) {
    int base = get_global_id(0) * n;
    float s = 0.0f;
    for (int k = 0; k < n; ++k) s += LOAD(x, base + k);
    float mean = s / n;
    float q = 0.0f;
    for (int k = 0; k < n; ++k) {
        float d = LOAD(x, base + k) - mean;
        q = fma(d, d, q);
    }
    float r = rsqrt(q / n + eps);
    for (int k = 0; k < n; ++k) {
        float v = (LOAD(x, base + k) - mean) * r * LOAD(scale, k);
#ifdef HAS_BIAS
        v += LOAD(bias, k);
#endif
        STORE(y, base + k, v);
    }
}
#endif /* LAYER_NORM */
