/* Cast / CastLike: y = (Y_T) a, with ONNX's (= C's) conversions for the run-time types: float ->
 * integer truncates toward zero, anything -> bool is != 0 (typed.h's ST_Y), bool -> number 0/1.
 * Float -> integer goes through long (-DVIA_LONG), so that an unsigned target wraps as NumPy's does. */
#include "typed.h"

kernel void cast(global const A_PTR* a, global Y_PTR* y) {
    int i = get_global_id(0);
#ifdef VIA_LONG
    ST_Y(y, i, (long)LD_A(a, i));
#else
    ST_Y(y, i, LD_A(a, i));
#endif
}
