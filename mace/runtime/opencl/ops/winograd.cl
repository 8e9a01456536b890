/* Winograd F(2x2,3x3) convolution (variant `winograd` of Conv): 3x3, stride 1, dilation 1, group 1.
 *
 * Per 2x2 output tile: Y = A^T [ sum_c U[m][c] (.) V[c] ] A, with V = B^T d B the transform of the
 * tile's 4x4 input patch d and U = G g G^T that of the 3x3 filter g (on the host, winograd.py):
 * 16 multiplies per tile and channel pair instead of 36; the transforms are adds only.
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]      A^T = [1 1 1 0; 0 1 -1 -1]
 * Three launches (faster on PoCL than one fused kernel, whose per-tile input transform is
 * amortized over a few output channels only):
 *   winograd_input   in (N, C, H, W)    -> V  (N, 16, CP, T)   T = TY * TX tiles, zeros in the pads
 *   conv.cl conv2d   V, U (16 groups)   -> Mt (N, 16, M, T)    a GEMM per transform position i
 *   winograd_output  Mt                 -> out (N, M, OH, OW)  + bias, residual, ACTIVATE
 * CP >= C (zero rows) only spreads V's 16 planes over the cache sets (winograd.py).
 * Arithmetic in float; V and Mt are store_t buffers (half with -DSTORAGE_HALF).
 *
 * Both transforms work on VT (4 or 8) consecutive tiles of a tile row at once (a vector over
 * tiles) and move whole vectors per transform plane; one value per plane per tile would thrash
 * the cache. A row's last step is moved back to end at its last tile (it recomputes tiles of the
 * previous step and writes the same values), so only rows shorter than VT take partial steps.
 * PoCL calls builtins (clamp, min, select, vloadn) instead of inlining them: the loads and
 * stores below use unaligned vector pointers, the masks `?:`. */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

/* -DRESIDUAL (a Conv with a folded residual Add): one more argument after `out`, a tensor of the
 * output's shape added after the bias, before ACTIVATE. */
#ifdef RESIDUAL
#define RESIDUAL_ARG , __global const store_t* restrict residual
#else
#define RESIDUAL_ARG
#endif

#ifdef STORAGE_HALF
#define LD(n, p) CAT(vload_half, n)(0, (p))
#define ST(n, p, v) CAT(vstore_half, n)((v), 0, (p))
#else
typedef float2 float2_u __attribute__((aligned(4)));
typedef float4 float4_u __attribute__((aligned(4)));
typedef float8 float8_u __attribute__((aligned(4)));
typedef float16 float16_u __attribute__((aligned(4)));
#define LD(n, p) (*(const __global CAT(CAT(float, n), _u)*)(p))
#define ST(n, p, v) (*(__global CAT(CAT(float, n), _u)*)(p) = (v))
#endif

/* -DVT=8 or 4: vt is a vector over VT tiles, v2t over their 2*VT output / input columns */
#if VT == 8
#define vt float8
#define v2t float16
#define LD_T(p) LD(8, p)
#define ST_T(p, v) ST(8, p, v)
#define LD_2T(p) LD(16, p)
#define ST_2T(p, v) ST(16, p, v)
#define COL2(a, b) ((float8)((a).s2468, (a).sace, (b).x))
#define COL3(a, b) ((float8)((a).s3579, (a).sbdf, (b).y))
#else
#define vt float4
#define v2t float8
#define LD_T(p) LD(4, p)
#define ST_T(p, v) ST(4, p, v)
#define LD_2T(p) LD(8, p)
#define ST_2T(p, v) ST(8, p, v)
#define COL2(a, b) ((float4)((a).s246, (b).x))
#define COL3(a, b) ((float4)((a).s357, (b).y))
#endif

/* V[n][i][c][t] = (B^T d B)[i] of tile t = ty * TX + tx (zeros outside the image: the pads).
 * gws = (TY, CP, N): one tile row of one channel each, VT tiles (an input strip of 2*VT + 2
 * columns) per step; strips that cross the image's left / right edge are loaded lane by lane. */
__kernel void winograd_input(__global const store_t* restrict in, __global store_t* restrict V,
                             int C, int CP, int H, int W, int TY, int TX, int PT, int PL) {
    const int ty = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
    if (ty >= TY || c >= CP) return;
    const size_t T = (size_t)TY * TX, PS = (size_t)CP * T;
    const int ih0 = 2 * ty - PT;
    const bool live = c < C;  /* channels C..CP-1 of a plane are zeros */
    const __global store_t* ip = in + ((size_t)n * C + (live ? c : 0)) * H * W;
    __global store_t* vp = V + (size_t)n * 16 * PS + (size_t)c * T + ty * TX;
    for (int step = 0; step < TX; step += VT) {
        const int tx0 = TX >= VT && step + VT > TX ? TX - VT : step;
        const int iw0 = 2 * tx0 - PL;
        const bool cols_in = iw0 >= 0 && iw0 + 2 * VT + 2 <= W;
        vt d[4][4];  /* [patch row][patch column], over the VT tiles */
#pragma unroll
        for (int r = 0; r < 4; r++) {
            const int ih = ih0 + r;
            v2t a = 0.0f;
            float2 b = 0.0f;
            if (live && ih >= 0 && ih < H) {
                const __global store_t* rp = ip + ih * W;
                if (cols_in) {
                    a = LD_2T(rp + iw0);
                    b = LD(2, rp + iw0 + 2 * VT);
                } else {
#pragma unroll
                    for (int j = 0; j < 2 * VT; j++) a[j] = iw0 + j >= 0 && iw0 + j < W ? LOAD(rp, iw0 + j) : 0.0f;
                    b.x = iw0 + 2 * VT < W ? LOAD(rp, iw0 + 2 * VT) : 0.0f;
                    b.y = iw0 + 2 * VT + 1 < W ? LOAD(rp, iw0 + 2 * VT + 1) : 0.0f;
                }
            }
            d[r][0] = a.even;
            d[r][1] = a.odd;
            d[r][2] = COL2(a, b);
            d[r][3] = COL3(a, b);
        }
        vt v[16];
#pragma unroll
        for (int j = 0; j < 4; j++) {  /* B^T d: rows */
            const vt t0 = d[0][j] - d[2][j], t1 = d[1][j] + d[2][j], t2 = d[2][j] - d[1][j], t3 = d[1][j] - d[3][j];
            d[0][j] = t0; d[1][j] = t1; d[2][j] = t2; d[3][j] = t3;
        }
#pragma unroll
        for (int r = 0; r < 4; r++) {  /* (.) B: columns */
            v[4 * r + 0] = d[r][0] - d[r][2];
            v[4 * r + 1] = d[r][1] + d[r][2];
            v[4 * r + 2] = d[r][2] - d[r][1];
            v[4 * r + 3] = d[r][1] - d[r][3];
        }
        if (TX >= VT) {
#pragma unroll
            for (int i = 0; i < 16; i++) ST_T(vp + i * PS + tx0, v[i]);
        } else {
#pragma unroll
            for (int i = 0; i < 16; i++)
                for (int l = 0; l < TX; l++) STORE(vp, i * PS + l, v[i][l]);
        }
    }
}

/* out = ACTIVATE(A^T Mt A + bias (+ residual)) from Mt[n][i][m][t]. gws = (TY, M, N): one tile row
 * of one output channel each, VT tiles (two output rows of 2*VT pixels) per step. */
__kernel void winograd_output(__global const store_t* restrict Mt, __global const float* restrict bias,
                              __global store_t* restrict out RESIDUAL_ARG,
                              int M, int OH, int OW, int TY, int TX) {
    const int ty = get_global_id(0), m = get_global_id(1), n = get_global_id(2);
    if (ty >= TY || m >= M) return;
    const size_t T = (size_t)TY * TX, PS = (size_t)M * T;
    const __global store_t* mp = Mt + (size_t)n * 16 * PS + (size_t)m * T + ty * TX;
    const int oh = 2 * ty;
    const bool h1 = oh + 1 < OH;
    const float b = bias[m];
    const size_t base = ((size_t)n * M + m) * OH * OW + (size_t)oh * OW;
    for (int step = 0; step < TX; step += VT) {
        const int tx0 = TX >= VT && step + VT > TX ? TX - VT : step;
        vt a[16];
        if (TX >= VT) {
#pragma unroll
            for (int i = 0; i < 16; i++) a[i] = LD_T(mp + i * PS + tx0);
        } else {
#pragma unroll
            for (int i = 0; i < 16; i++)
#pragma unroll
                for (int l = 0; l < VT; l++) a[i][l] = LOAD(mp, i * PS + (l < TX ? l : TX - 1));
        }
        vt s0[4], s1[4];  /* A^T a: rows */
#pragma unroll
        for (int j = 0; j < 4; j++) {
            s0[j] = a[j] + a[4 + j] + a[8 + j];
            s1[j] = a[4 + j] - a[8 + j] - a[12 + j];
        }
        v2t y0, y1;  /* (.) A: columns, interleaved into the tiles' two output rows */
        y0.even = s0[0] + s0[1] + s0[2] + b;
        y0.odd = s0[1] - s0[2] - s0[3] + b;
        y1.even = s1[0] + s1[1] + s1[2] + b;
        y1.odd = s1[1] - s1[2] - s1[3] + b;
        const int ow0 = 2 * tx0;
        const size_t o = base + ow0;
        if (ow0 + 2 * VT <= OW) {
#ifdef RESIDUAL
            y0 += LD_2T(residual + o);
            if (h1) y1 += LD_2T(residual + o + OW);
#endif
            ST_2T(out + o, ACTIVATE(y0));
            if (h1) ST_2T(out + o + OW, ACTIVATE(y1));
        } else {  /* odd OW or a row shorter than VT tiles */
            const int nl = OW - ow0;
#pragma unroll
            for (int l = 0; l < 2 * VT; l++) {
                if (l < nl) {
                    float v0 = y0[l], v1 = y1[l];
#ifdef RESIDUAL
                    v0 += LOAD(residual, o + l);
                    if (h1) v1 += LOAD(residual, o + OW + l);
#endif
                    STORE(out, o + l, ACTIVATE(v0));
                    if (h1) STORE(out, o + OW + l, ACTIVATE(v1));
                }
            }
        }
    }
}
