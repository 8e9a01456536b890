/* Softmax over the middle dim of a [outer, n, inner] view (max-subtracted, float accumulation).
 * One work item per (inner, outer) pair, gws = (inner, outer); no local memory and no fixed
 * local size, so any local size the tuner picks is valid.
 */
kernel void softmax(global const store_t* x, global store_t* y, int n, int inner) {
    int i = get_global_id(0);
    int o = get_global_id(1);
    int base = o * n * inner + i;
    float m = -INFINITY;
    for (int k = 0; k < n; ++k) m = fmax(m, LOAD(x, base + k * inner));
    float s = 0.0f;
    for (int k = 0; k < n; ++k) s += exp(LOAD(x, base + k * inner) - m);
    float r = 1.0f / s;
    for (int k = 0; k < n; ++k) STORE(y, base + k * inner, exp(LOAD(x, base + k * inner) - m) * r);
}
