/* The dense 6-d index of a work-item launched with gws = (d5, d0*d1*d2*d3*d4) (the innermost
 * dim needs no division): declares c0..c5 and r0, the flattened row. Included by
 * `#include "index.h"` (expanded into the program source, so part of the program key). */
#define UNRAVEL6(d1, d2, d3, d4)             \
    const int c5 = get_global_id(0);         \
    const int r0 = get_global_id(1);         \
    int r_ = r0;                             \
    const int c4 = r_ % (d4); r_ /= (d4);    \
    const int c3 = r_ % (d3); r_ /= (d3);    \
    const int c2 = r_ % (d2); r_ /= (d2);    \
    const int c1 = r_ % (d1);                \
    const int c0 = r_ / (d1);
