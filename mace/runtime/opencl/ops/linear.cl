/* Gemm / MatMul: Y[b] = ACTIVATE(alpha * A[b] @ B[b] + C), register-blocked like conv2d.
 *
 * gemm: each work-item computes MR rows x (PB vectors of VW consecutive columns) of one batch
 * entry; the last row block / column tile are clamped back (overlap, same values), so M >= MR and
 * N >= VW*PB. A is read element-wise through strides (transA is a stride swap); B rows are read as
 * vectors (unit column stride; VW == 1 when B's columns are strided). Batch broadcasting
 * (MatMul) is resolved at init into per-batch element offsets of A and B. C (Gemm, -DHAS_C) is
 * added as beta * C through broadcast strides (a constant C is pre-broadcast to (M, N)).
 * gws = (ceil(N / (VW*PB)), ceil(M / MR), batch).
 * -DWQ (wq.h; a constant B only, laid out (K, N)): B is 8-bit, one scale (zero point) per column.
 */
#include "wq.h"
#ifdef WQ
#define B_T wq_t
#else
#define B_T store_t
#endif
#ifndef TILED
#include "vector.h"

#ifdef WQ  /* 8-bit B: VW columns converted to float; the per-column parameters as float vectors */
#if VW == 1
#define BLOADV(p) ((float)(p)[0])
#define FLOADV(p) ((p)[0])
#else
#define BLOADV(p) CAT(convert_float, VW)(CAT(vload, VW)(0, (p)))
#define FLOADV(p) CAT(vload, VW)(0, (p))
#endif
#define BLOAD1(p, i) ((float)(p)[i])
#else
#define BLOADV(p) VLOAD(p)
#define BLOAD1(p, i) LOAD(p, i)
#endif

/* C term: beta * C[m * scm + n * scn] (broadcast dims have stride 0) */
inline vf load_c(const __global store_t* p, int scn) {
#if VW == 1
    return LOAD(p, 0);
#else
    vf v;
#pragma unroll
    for (int l = 0; l < VW; l++) v[l] = LOAD(p, l * scn);
    return v;
#endif
}

#define TILE (VW * PB)

__kernel void gemm(__global const store_t* restrict A, __global const B_T* restrict B,
                   __global const store_t* restrict Cm, __global store_t* restrict Y WQ_ARGS,
                   __global const int* restrict offA, __global const int* restrict offB,
                   int M, int N, int K, int sam, int sak, int sbk, int sbn, float alpha,
                   float beta, int scm, int scn, int NB) {
    const int n0 = min((int)get_global_id(0) * TILE, N - TILE);
    const int m0 = min((int)get_global_id(1) * MR, M - MR);
    const int bi = get_global_id(2);
    if (bi >= NB) return;
    const __global store_t* ap = A + offA[bi] + m0 * sam;
    const __global B_T* bp = B + offB[bi] + n0 * sbn;
#ifdef WZP
    vf zpv[PB];
#pragma unroll
    for (int b = 0; b < PB; b++) zpv[b] = FLOADV(wzp + n0 + b * VW);
#define BZP(b) - zpv[b]
#else
#define BZP(b)
#endif

    vf acc[MR][PB];
#pragma unroll
    for (int r = 0; r < MR; r++)
#pragma unroll
        for (int b = 0; b < PB; b++) acc[r][b] = 0.0f;

    for (int k = 0; k < K; k++) {
        vf x[PB];
#if VW == 1
#pragma unroll
        for (int b = 0; b < PB; b++) x[b] = BLOAD1(bp, b * sbn) BZP(b);
#else
#pragma unroll
        for (int b = 0; b < PB; b++) x[b] = BLOADV(bp + b * VW) BZP(b);
#endif
#pragma unroll
        for (int r = 0; r < MR; r++) {
            const float av = LOAD(ap, r * sam);
#pragma unroll
            for (int b = 0; b < PB; b++) acc[r][b] = av * x[b] + acc[r][b];
        }
        ap += sak;
        bp += sbk;
    }

    __global store_t* yp = Y + ((size_t)bi * M + m0) * N + n0;
#pragma unroll
    for (int r = 0; r < MR; r++)
#pragma unroll
        for (int b = 0; b < PB; b++) {
            vf v = acc[r][b] * alpha;
#ifdef WQ
            v *= FLOADV(wscale + n0 + b * VW);
#endif
#ifdef HAS_C
            const __global store_t* cp = Cm + (m0 + r) * scm + (n0 + b * VW) * scn;
            v += beta * (scn == 1 ? VLOAD(cp) : load_c(cp, scn));
#endif
            VSTORE(ACTIVATE(v), yp + r * N + b * VW);
        }
}

#else /* TILED */
/* gemm_tiled (variant `gpu_gemm`): classic local-memory SGEMM for GPUs, same arguments and
 * semantics as gemm. Work-group 16x16 (reqd_work_group_size); each work-item computes TM rows x TN
 * columns: rows m0 + ly + 16*i, columns n0 + lx + 16*j (coalesced stores along N). K tiles of 16
 * staged in local memory (As[16][16*TM], Bs[16][16*TN]); loads and stores bounds-guarded.
 * gws = (ceil(N / (16*TN)) * 16, ceil(M / (16*TM)) * 16, batch). */
#define TK 16
#define WG 16
#define BM (WG * TM)
#define BN (WG * TN)
#if TK != WG
#error "the tile loads assume TK == WG"
#endif

__kernel __attribute__((reqd_work_group_size(WG, WG, 1)))
void gemm_tiled(__global const store_t* restrict A, __global const B_T* restrict B,
                __global const store_t* restrict Cm, __global store_t* restrict Y WQ_ARGS,
                __global const int* restrict offA, __global const int* restrict offB,
                int M, int N, int K, int sam, int sak, int sbk, int sbn, float alpha,
                float beta, int scm, int scn, int NB) {
    __local float As[TK][BM];
    __local float Bs[TK][BN];
    const int lx = get_local_id(0), ly = get_local_id(1);
    const int tid = ly * WG + lx;
    const int n0 = get_group_id(0) * BN;
    const int m0 = get_group_id(1) * BM;
    const int bi = get_global_id(2);
    const __global store_t* ap = A + offA[bi];
    const __global B_T* bp = B + offB[bi];

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += TK) {
#pragma unroll
        for (int r = 0; r < TM; r++) {  /* TK * BM = TM * WG * WG elements */
            const int e = tid + r * (WG * WG);
            const int kk = e / BM, mm = e % BM;
            const int k = k0 + kk, m = m0 + mm;
            As[kk][mm] = (k < K && m < M) ? LOAD(ap, (size_t)m * sam + (size_t)k * sak) : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < TN; r++) {
            const int e = tid + r * (WG * WG);
            const int kk = e / BN, nn = e % BN;
            const int k = k0 + kk, n = n0 + nn;
#ifdef WQ
            Bs[kk][nn] = (k < K && n < N) ? WQ_DEQ(bp[(size_t)k * sbk + (size_t)n * sbn], n) : 0.0f;
#else
            Bs[kk][nn] = (k < K && n < N) ? LOAD(bp, (size_t)k * sbk + (size_t)n * sbn) : 0.0f;
#endif
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
        for (int kk = 0; kk < TK; kk++) {
            float a[TM], b[TN];
#pragma unroll
            for (int i = 0; i < TM; i++) a[i] = As[kk][ly + WG * i];
#pragma unroll
            for (int j = 0; j < TN; j++) b[j] = Bs[kk][lx + WG * j];
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

#pragma unroll
    for (int i = 0; i < TM; i++) {
        const int m = m0 + ly + WG * i;
        if (m < M) {
            __global store_t* yp = Y + ((size_t)bi * M + m) * N;
#pragma unroll
            for (int j = 0; j < TN; j++) {
                const int n = n0 + lx + WG * j;
                if (n < N) {
                    float v = acc[i][j] * alpha;
#ifdef HAS_C
                    v += beta * LOAD(Cm, m * scm + n * scn);
#endif
                    STORE(yp, n, ACTIVATE(v));
                }
            }
        }
    }
}
#endif /* TILED */
