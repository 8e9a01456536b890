/* Indexing on typed values (typed.h): A is the data, B the indices (int32 or int64), Y the
 * output (Z: TopK's int64 indices). A negative index counts from the end; one still out of range
 * is recorded in `bad` (bad[1] = 1, bad[0] = the index: index.py raises InputError after the
 * run, as the CPU runtime does) and clamped, so that no read leaves the buffer.
 *   gather           y[o, j, i] = a[o, idx[j], i]; gws = (inner, n_idx, outer)
 *   gather_elements  y[c] = a[c with c[axis] = idx[c]]; 6 padded dims, gws = (d5, d0*...*d4)
 *   arg_extreme      the index of the max (op 0) / min (op 1) along a [outer, n, inner] view, the
 *                    first of equal values (or the last: `last`); gws = (inner, outer)
 *   top_k            element i of a row goes to position rank(i) (how many come before it: larger
 *                    (largest) or smaller values, equal ones of a lower index) if rank < k;
 *                    gws = (inner, n, outer)
 */
#include "index.h"
#include "typed.h"

inline long fix_index(long k, int n, global long* bad) {
    if (k < -n || k >= n) {
        bad[0] = k;
        bad[1] = 1;
    }
    if (k < 0) k += n;
    return clamp(k, 0L, (long)(n - 1));
}

#if defined(B_T) && defined(Y_T)
kernel void gather(global const A_PTR* a, global const B_PTR* idx, global Y_PTR* y, global long* bad, int n,
                   int inner, int n_idx) {
    int i = get_global_id(0), j = get_global_id(1), o = get_global_id(2);
    long k = fix_index((long)LD_B(idx, j), n, bad);
    ST_Y(y, ((long)o * n_idx + j) * inner + i, LD_A(a, ((long)o * n + k) * inner + i));
}

kernel void gather_elements(global const A_PTR* a, global const B_PTR* idx, global Y_PTR* y, global long* bad,
                            int axis, int n,
                            int d1, int d2, int d3, int d4, int d5,
                            int s0, int s1, int s2, int s3, int s4, int s5) {
    UNRAVEL6(d1, d2, d3, d4)
    const int c[6] = {c0, c1, c2, c3, c4, c5};
    const int s[6] = {s0, s1, s2, s3, s4, s5};
    const int out = r0 * d5 + c5;
    long k = fix_index((long)LD_B(idx, out), n, bad);
    long off = (long)c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3 + c4 * s4 + c5 * s5 + (k - c[axis]) * s[axis];
    ST_Y(y, out, LD_A(a, off));
}
#endif

#ifdef Z_T
kernel void arg_extreme(global const A_PTR* a, global Z_PTR* z, int n, int inner, int op, int last) {
    int i = get_global_id(0), o = get_global_id(1);
    long base = (long)o * n * inner + i;
    A_T best = LD_A(a, base);
    long at = 0;
    for (int j = 1; j < n; ++j) {
        A_T v = LD_A(a, base + (long)j * inner);
        int better = op == 0 ? (last ? v >= best : v > best) : (last ? v <= best : v < best);
        if (better) {
            best = v;
            at = j;
        }
    }
    z[(long)o * inner + i] = at;
}
#endif

#if defined(Y_T) && defined(Z_T)
kernel void top_k(global const A_PTR* a, global Y_PTR* y, global Z_PTR* z, int n, int inner, int k, int largest) {
    int i = get_global_id(0), e = get_global_id(1), o = get_global_id(2);
    long base = (long)o * n * inner + i;
    A_T v = LD_A(a, base + (long)e * inner);
    int rank = 0;
    for (int j = 0; j < n && rank < k; ++j) {
        A_T w = LD_A(a, base + (long)j * inner);
        rank += (largest ? w > v : w < v) || (w == v && j < e);
    }
    if (rank < k) {
        long out = ((long)o * k + rank) * inner + i;
        ST_Y(y, out, v);
        z[out] = e;
    }
}
#endif
