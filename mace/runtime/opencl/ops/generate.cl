/* Trilu and EyeLike on typed values (typed.h); gws = (cols, rows, batch) of the last two dims.
 *   trilu     y = x where the element is in the kept triangle (upper: col - row >= k, lower:
 *             col - row <= k), else 0
 *   eye_like  y = 1 on diagonal k (col - row == k), else 0 */
#include "typed.h"

#ifdef A_T
kernel void trilu(global const A_PTR* a, global Y_PTR* y, int upper, int k) {
    int j = get_global_id(0), i = get_global_id(1), b = get_global_id(2);
    int cols = get_global_size(0), rows = get_global_size(1);
    long at = ((long)b * rows + i) * cols + j;
    int keep = upper ? j - i >= k : j - i <= k;
    if (keep) {
        ST_Y(y, at, LD_A(a, at));
    } else {
        ST_Y(y, at, 0);
    }
}
#endif

kernel void eye_like(global Y_PTR* y, int k) {
    int j = get_global_id(0), i = get_global_id(1);
    ST_Y(y, (long)i * get_global_size(0) + j, j - i == k ? 1 : 0);
}
