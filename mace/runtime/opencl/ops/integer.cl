/* Integer element-wise ops with ONNX's semantics (`mace.ops.integer`), in the inputs' type
 * (typed.h: A = B = Y). Arithmetic goes through ulong, so overflow wraps around as in NumPy;
 * -DSIGNED for the signed types.
 *   binary  full broadcasting as logic.cl (6 padded dims, strides per input); op: Add, Sub, Mul,
 *           Div (truncating; by 0 gives 0), Mod (fmod 0: the divisor's sign; 1: the dividend's;
 *           by 0 gives 0), BitShift left/right (by the width or more, or a negative amount: 0,
 *           or the sign for a signed right shift), BitwiseAnd/Or/Xor,
 *           Max, Min
 *   unary   Neg, Abs, Sign, BitwiseNot, Clip (lo, hi within the type)
 */
#include "index.h"
#include "typed.h"

#define STRIDED(s) (c0 * s##0 + c1 * s##1 + c2 * s##2 + c3 * s##3 + c4 * s##4 + c5 * s##5)
#define WRAP(v) ((A_T)(ulong)(v))

inline A_T int_op(A_T x, A_T z, int op) {
    const int bits = sizeof(A_T) * 8;
    switch (op) {
        case 0: return WRAP((ulong)x + (ulong)z);
        case 1: return WRAP((ulong)x - (ulong)z);
        case 2: return WRAP((ulong)x * (ulong)z);
        case 3:
            if (z == 0) return 0;
#ifdef SIGNED
            if (z == -1) return WRAP(0UL - (ulong)x);
#endif
            return x / z;
        case 4:
        case 5: {
            if (z == 0) return 0;
#ifdef SIGNED
            if (z == -1) return 0;
            A_T r = x % z;
            if (op == 4 && r != 0 && ((r < 0) != (z < 0))) r += z;
            return r;
#else
            return x % z;
#endif
        }
        case 6: return (ulong)z >= (ulong)bits ? (A_T)0 : WRAP((ulong)x << z);
        case 7:
#ifdef SIGNED
            if ((ulong)z >= (ulong)bits) return x < 0 ? (A_T)-1 : (A_T)0;  /* a negative shift counts as wide */
#else
            if ((ulong)z >= (ulong)bits) return 0;
#endif
            return x >> z;
        case 8: return x & z;
        case 9: return x | z;
        case 10: return x ^ z;
        case 11: return x > z ? x : z;
        default: return x < z ? x : z;
    }
}

kernel void binary(global const A_PTR* a, global const B_PTR* b, global Y_PTR* y, int op,
                   int d1, int d2, int d3, int d4, int d5,
                   int as0, int as1, int as2, int as3, int as4, int as5,
                   int bs0, int bs1, int bs2, int bs3, int bs4, int bs5) {
    UNRAVEL6(d1, d2, d3, d4)
    ST_Y(y, r0 * d5 + c5, int_op(LD_A(a, STRIDED(as)), LD_B(b, STRIDED(bs)), op));
}

kernel void unary(global const A_PTR* a, global Y_PTR* y, int op, A_T lo, A_T hi) {
    int i = get_global_id(0);
    A_T x = LD_A(a, i), r;
    switch (op) {
        case 0: r = WRAP(0UL - (ulong)x); break;
#ifdef SIGNED
        case 1: r = x < 0 ? WRAP(0UL - (ulong)x) : x; break;
        case 2: r = (A_T)((x > 0) - (x < 0)); break;
#else
        case 1: r = x; break;
        case 2: r = (A_T)(x > 0); break;
#endif
        case 3: r = ~x; break;
        default: r = x < lo ? lo : (x > hi ? hi : x); break;
    }
    ST_Y(y, i, r);
}
