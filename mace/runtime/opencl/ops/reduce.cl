/* ReduceMean. The input is viewed (after merging neighbouring dims) as up to 3 kept dims
 * k0..k2 (strides ks0..ks2) and up to 3 reduced dims r0..r2 (strides rs0..rs2); the output is
 * dense over the kept dims.
 *
 * reduce_mean:    one work item per output element, gws = (outputs).
 * reduce_mean_wg: one work group of RD_WG items per output element (few outputs, long
 *                 reductions, e.g. a global mean), gws = (RD_WG * outputs).
 */
kernel void reduce_mean(global const store_t* x, global store_t* y, int k1, int k2, int ks0, int ks1, int ks2,
                        int r0, int r1, int r2, int rs0, int rs1, int rs2, float scale) {
    int o = get_global_id(0);
    int c2 = o % k2, t = o / k2;
    int c1 = t % k1, c0 = t / k1;
    int base = c0 * ks0 + c1 * ks1 + c2 * ks2;
    float acc = 0.0f;
    for (int a = 0; a < r0; ++a)
        for (int b = 0; b < r1; ++b) {
            int row = base + a * rs0 + b * rs1;
            for (int c = 0; c < r2; ++c) acc += LOAD(x, row + c * rs2);
        }
    STORE(y, o, acc * scale);
}

#define RD_WG 64

__attribute__((reqd_work_group_size(RD_WG, 1, 1)))
kernel void reduce_mean_wg(global const store_t* x, global store_t* y, int k1, int k2, int ks0, int ks1, int ks2,
                           int r0, int r1, int r2, int rs0, int rs1, int rs2, float scale) {
    local float scratch[RD_WG];
    int lid = get_local_id(0);
    int o = get_group_id(0);
    int c2 = o % k2, t = o / k2;
    int c1 = t % k1, c0 = t / k1;
    int base = c0 * ks0 + c1 * ks1 + c2 * ks2;
    int total = r0 * r1 * r2;
    float acc = 0.0f;
    for (int j = lid; j < total; j += RD_WG) {
        int c = j % r2, u = j / r2;
        int b = u % r1, a = u / r1;
        acc += LOAD(x, base + a * rs0 + b * rs1 + c * rs2);
    }
    scratch[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = RD_WG / 2; s > 0; s >>= 1) {
        if (lid < s) scratch[lid] += scratch[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) STORE(y, o, scratch[0] * scale);
}
