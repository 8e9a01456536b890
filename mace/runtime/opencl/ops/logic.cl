/* Comparisons, bool logic, Where and IsNaN/IsInf on typed values (typed.h), with full (NumPy)
 * broadcasting: the output is dense in 6 (padded, coalesced) dims d0..d5, each input has its
 * strides over them (0 where it broadcasts); gws = (d5, d0*d1*d2*d3*d4).
 *   compare  y = a OP b (bool): Equal, Less, Greater, LessOrEqual, GreaterOrEqual, And, Or, Xor
 *   where    y = c ? a : b
 *   special  y = IsNaN(a) / IsInf(a) (detect_negative, detect_positive); also Not (a == 0)
 */
#include "index.h"
#include "typed.h"

#define STRIDED(s) (c0 * s##0 + c1 * s##1 + c2 * s##2 + c3 * s##3 + c4 * s##4 + c5 * s##5)

#ifdef B_T
kernel void compare(global const A_PTR* a, global const B_PTR* b, global uchar* y, int op,
                    int d1, int d2, int d3, int d4, int d5,
                    int as0, int as1, int as2, int as3, int as4, int as5,
                    int bs0, int bs1, int bs2, int bs3, int bs4, int bs5) {
    UNRAVEL6(d1, d2, d3, d4)
    A_T x = LD_A(a, STRIDED(as));
    B_T z = LD_B(b, STRIDED(bs));
    int r;
    switch (op) {
        case 0: r = x == z; break;
        case 1: r = x < z; break;
        case 2: r = x > z; break;
        case 3: r = x <= z; break;
        case 4: r = x >= z; break;
        case 5: r = (x != 0) && (z != 0); break;
        case 6: r = (x != 0) || (z != 0); break;
        default: r = (x != 0) != (z != 0); break;
    }
    y[r0 * d5 + c5] = (uchar)r;
}
#endif

#ifdef Y_T
kernel void where(global const uchar* c, global const A_PTR* a, global const B_PTR* b, global Y_PTR* y,
                  int d1, int d2, int d3, int d4, int d5,
                  int cs0, int cs1, int cs2, int cs3, int cs4, int cs5,
                  int as0, int as1, int as2, int as3, int as4, int as5,
                  int bs0, int bs1, int bs2, int bs3, int bs4, int bs5) {
    UNRAVEL6(d1, d2, d3, d4)
    if (c[STRIDED(cs)]) {
        ST_Y(y, r0 * d5 + c5, LD_A(a, STRIDED(as)));
    } else {
        ST_Y(y, r0 * d5 + c5, LD_B(b, STRIDED(bs)));
    }
}
#endif

/* op 0: IsNaN, 1: IsInf (neg, pos: which signs count), 2: Not */
kernel void special(global const A_PTR* a, global uchar* y, int op, int neg, int pos) {
    int i = get_global_id(0);
    A_T x = LD_A(a, i);
    int r;
    if (op == 2) {
        r = x == 0;
    } else {
        float f = (float)x;
        r = op == 0 ? isnan(f) : (isinf(f) && ((f < 0.0f && neg) || (f > 0.0f && pos)));
    }
    y[i] = (uchar)r;
}
