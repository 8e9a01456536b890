/* ReduceMean. The input is viewed (after merging neighbouring dims) as up to 3 kept dims
 * k0..k2 (strides ks0..ks2; k0 implicit) and up to 3 reduced dims r0..r2 (strides rs0..rs2);
 * the output is dense over the kept dims.
 *
 * reduce_mean:    one work item per output element, gws = (outputs): y = scale * sum.
 * reduce_partial: first pass of a split reduction (few outputs, long reductions, e.g. a global
 *                 mean): item (p, o) sums the p-th of `parts` contiguous chunks of the reduced
 *                 elements into part[o * parts + p], gws = (parts, outputs); reduce_finish
 *                 adds them up.
 * Neither uses local memory or a fixed local size, so any local size the tuner picks is valid.
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

kernel void reduce_partial(global const store_t* x, global float* part, int k1, int k2, int ks0, int ks1, int ks2,
                           int r0, int r1, int r2, int rs0, int rs1, int rs2, int parts) {
    int p = get_global_id(0);
    int o = get_global_id(1);
    int c2 = o % k2, t = o / k2;
    int c1 = t % k1, c0 = t / k1;
    int base = c0 * ks0 + c1 * ks1 + c2 * ks2;
    int total = r0 * r1 * r2;
    int chunk = (total + parts - 1) / parts;
    int j = p * chunk;
    int end = min(j + chunk, total);
    /* decompose the chunk's start once, then step the (a, b, c) counter */
    int c = j % r2, u = j / r2;
    int b = u % r1, a = u / r1;
    float acc = 0.0f;
    for (; j < end; ++j) {
        acc += LOAD(x, base + a * rs0 + b * rs1 + c * rs2);
        if (++c == r2) {
            c = 0;
            if (++b == r1) { b = 0; ++a; }
        }
    }
    part[o * parts + p] = acc;
}

/* Second pass: y[o] = scale * sum of part[o * parts .. + parts) (float partials). */
kernel void reduce_finish(global const float* part, global store_t* y, int parts, float scale) {
    int o = get_global_id(0);
    float acc = 0.0f;
    for (int p = 0; p < parts; ++p) acc += part[o * parts + p];
    STORE(y, o, acc * scale);
}
