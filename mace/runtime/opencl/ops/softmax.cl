/* Softmax over the middle dim of a [outer, n, inner] view (max-subtracted, float accumulation).
 *
 * softmax:    one work item per (inner, outer) pair, gws = (inner, outer).
 * softmax_wg: inner == 1 and long rows: one work group of SM_WG items per row, gws = (SM_WG * outer).
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

#define SM_WG 64

__attribute__((reqd_work_group_size(SM_WG, 1, 1)))
kernel void softmax_wg(global const store_t* x, global store_t* y, int n) {
    local float scratch[SM_WG];
    int lid = get_local_id(0);
    int base = get_group_id(0) * n;
    float m = -INFINITY;
    for (int k = lid; k < n; k += SM_WG) m = fmax(m, LOAD(x, base + k));
    scratch[lid] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = SM_WG / 2; s > 0; s >>= 1) {
        if (lid < s) scratch[lid] = fmax(scratch[lid], scratch[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    m = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    float sum = 0.0f;
    for (int k = lid; k < n; k += SM_WG) sum += exp(LOAD(x, base + k) - m);
    scratch[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = SM_WG / 2; s > 0; s >>= 1) {
        if (lid < s) scratch[lid] += scratch[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = 1.0f / scratch[0];
    for (int k = lid; k < n; k += SM_WG) STORE(y, base + k, exp(LOAD(x, base + k) - m) * r);
}
