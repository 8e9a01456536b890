/* Softmax (and with -DLOG_SOFTMAX, LogSoftmax) over the middle dim of a [outer, n, inner] view
 * (max-subtracted, float accumulation). One work item per (outer, inner) pair,
 * gws = (outer * inner); no local memory and no fixed local size, so any local size the tuner
 * picks is valid. Softmax stores the exponentials in the output on the way and scales them in
 * place by the last pass (one exp per element); LogSoftmax writes x - max - log(sum).
 */
kernel void softmax(global const store_t* x, global store_t* y, int n, int inner) {
    int g = get_global_id(0);
    int o = g / inner;
    int base = o * n * inner + (g - o * inner);
    float m = -INFINITY;
    for (int k = 0; k < n; ++k) m = fmax(m, LOAD(x, base + k * inner));
    float s = 0.0f;
#ifdef LOG_SOFTMAX
    for (int k = 0; k < n; ++k) s += exp(LOAD(x, base + k * inner) - m);
    float shift = m + log(s);
    for (int k = 0; k < n; ++k) STORE(y, base + k * inner, LOAD(x, base + k * inner) - shift);
#else
    for (int k = 0; k < n; ++k) {
        float e = exp(LOAD(x, base + k * inner) - m);
        STORE(y, base + k * inner, e);
        s += e;
    }
    float r = 1.0f / s;
    for (int k = 0; k < n; ++k) STORE(y, base + k * inner, LOAD(y, base + k * inner) * r);
#endif
}
