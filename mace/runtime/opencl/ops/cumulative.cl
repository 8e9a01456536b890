/* CumSum / CumProd (PROD) along the middle axis of an [outer, n, inner] view, in the input's type
 * (typed.h; an integer sum wraps around), with ONNX's `exclusive` (each element gets the result
 * before it, the first the identity) and `reverse` (from the end). gws = (inner, outer). */
#include "typed.h"

kernel void cumulate(global const A_PTR* a, global Y_PTR* y, int n, int inner, int exclusive, int reverse) {
    int i = get_global_id(0), o = get_global_id(1);
    long base = (long)o * n * inner + i;
#ifdef PROD
    A_T acc = (A_T)1;
#else
    A_T acc = (A_T)0;
#endif
    for (int s = 0; s < n; ++s) {
        long at = base + (long)(reverse ? n - 1 - s : s) * inner;
        A_T v = LD_A(a, at);
        if (exclusive) ST_Y(y, at, acc);
#ifdef PROD
        acc *= v;
#else
        acc += v;
#endif
        if (!exclusive) ST_Y(y, at, acc);
    }
}
