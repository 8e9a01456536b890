/* Vector helpers for kernels compiled with a vector width -DVW=n (conv, depthwise, linear):
 * vf (floatVW), unaligned VLOAD/VSTORE that honour half storage, and with -DSW (a stride in
 * pixels) LOADS: VW output pixels of a row for one tap. Included by `#include "vector.h"`. */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

#if VW == 1
#define vf float
#else
#define vf CAT(float, VW)
#endif
typedef vf vf_u __attribute__((aligned(4)));

#ifdef STORAGE_HALF
#if VW == 1
#define VLOAD(p) vload_half(0, (p))
#define VSTORE(v, p) vstore_half((v), 0, (p))
#else
#define VLOAD(p) CAT(vload_half, VW)(0, (p))
#define VSTORE(v, p) CAT(vstore_half, VW)((v), 0, (p))
#endif
#else
#define VLOAD(p) (*(const __global vf_u*)(p))
#define VSTORE(v, p) (*(__global vf_u*)(p) = (v))
#endif

#ifdef SW

/* VW output pixels of a row for one tap: unit stride, stride 2 (even lanes of 2*VW), or gather. */
#if SW == 1
#define LOADS(p) VLOAD(p)
#elif SW == 2 && VW > 1
#define LOADS(p) ((vf)(VLOAD(p).even, VLOAD((p) + VW).even))
#else
inline vf loads_gather(const __global store_t* p) {
#if VW == 1
    return LOAD(p, 0);
#else
    vf v;
#pragma unroll
    for (int l = 0; l < VW; l++) v[l] = LOAD(p, l * SW);
    return v;
#endif
}
#define LOADS(p) loads_gather(p)
#endif
#endif /* SW */
