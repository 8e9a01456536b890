/* Typed operands, for the kernels of integer and bool values (and float ones beside them).
 * Operand X (A, B, C: inputs; Y, Z: outputs) has -DX_T=<OpenCL C type> (base.py's type_options);
 * a float value under half storage also -DX_HALF, a bool one -DX_BOOL (one byte, 0 or 1).
 * X_PTR is the buffer's element type, LD_X(p, i) loads element i as X_T, ST_X(p, i, v) stores v
 * converted to X's type (a bool stores v != 0). Included by `#include "typed.h"`. */
#ifdef A_T
#ifdef A_HALF
#define A_PTR half
#define LD_A(p, i) vload_half((i), (p))
#define ST_A(p, i, v) vstore_half((float)(v), (i), (p))
#elif defined(A_BOOL)
#define A_PTR uchar
#define LD_A(p, i) ((p)[(i)])
#define ST_A(p, i, v) ((p)[(i)] = (uchar)((v) != 0))
#else
#define A_PTR A_T
#define LD_A(p, i) ((p)[(i)])
#define ST_A(p, i, v) ((p)[(i)] = (A_T)(v))
#endif
#endif
#ifdef B_T
#ifdef B_HALF
#define B_PTR half
#define LD_B(p, i) vload_half((i), (p))
#define ST_B(p, i, v) vstore_half((float)(v), (i), (p))
#elif defined(B_BOOL)
#define B_PTR uchar
#define LD_B(p, i) ((p)[(i)])
#define ST_B(p, i, v) ((p)[(i)] = (uchar)((v) != 0))
#else
#define B_PTR B_T
#define LD_B(p, i) ((p)[(i)])
#define ST_B(p, i, v) ((p)[(i)] = (B_T)(v))
#endif
#endif
#ifdef C_T
#ifdef C_HALF
#define C_PTR half
#define LD_C(p, i) vload_half((i), (p))
#define ST_C(p, i, v) vstore_half((float)(v), (i), (p))
#elif defined(C_BOOL)
#define C_PTR uchar
#define LD_C(p, i) ((p)[(i)])
#define ST_C(p, i, v) ((p)[(i)] = (uchar)((v) != 0))
#else
#define C_PTR C_T
#define LD_C(p, i) ((p)[(i)])
#define ST_C(p, i, v) ((p)[(i)] = (C_T)(v))
#endif
#endif
#ifdef Y_T
#ifdef Y_HALF
#define Y_PTR half
#define LD_Y(p, i) vload_half((i), (p))
#define ST_Y(p, i, v) vstore_half((float)(v), (i), (p))
#elif defined(Y_BOOL)
#define Y_PTR uchar
#define LD_Y(p, i) ((p)[(i)])
#define ST_Y(p, i, v) ((p)[(i)] = (uchar)((v) != 0))
#else
#define Y_PTR Y_T
#define LD_Y(p, i) ((p)[(i)])
#define ST_Y(p, i, v) ((p)[(i)] = (Y_T)(v))
#endif
#endif
#ifdef Z_T
#ifdef Z_HALF
#define Z_PTR half
#define LD_Z(p, i) vload_half((i), (p))
#define ST_Z(p, i, v) vstore_half((float)(v), (i), (p))
#elif defined(Z_BOOL)
#define Z_PTR uchar
#define LD_Z(p, i) ((p)[(i)])
#define ST_Z(p, i, v) ((p)[(i)] = (uchar)((v) != 0))
#else
#define Z_PTR Z_T
#define LD_Z(p, i) ((p)[(i)])
#define ST_Z(p, i, v) ((p)[(i)] = (Z_T)(v))
#endif
#endif
