/*
 * init_body.h -- the initializer kernels for one element type.
 *
 * Included by init_kernels.c once per dtype with FB_T, FB_DT and the per-dtype helpers and
 * constants defined (see there).  See init.h for the mapping of random bits to values and the
 * laws.  Every per-element loop runs over the FB_PHILOX_LANES lanes of a chunk with straight-line
 * code (selects, no branches), which the compiler vectorizes on the AVX2/AVX-512 paths; the
 * operations and their order are the same on every path, so the bits are too.
 */
#define FN(name) FB_CAT3(name, _, FB_DT)
#define T FB_T
#define NL FB_PHILOX_LANES
#define CHUNK (NL * FB_V) /* values per chunk */

/* ---- in-house elementary functions (no libm per element) --------------------------------- */

/* Horner evaluation of c[0] + c[1] z + ... + c[n-1] z^(n-1) with fused multiply-adds,
 * coefficients given in float64 and rounded to T at compile time; n is a compile-time constant
 * and the loop unrolls. */
#define FB_HORNER(res, c, n, z)                                                                \
    do {                                                                                       \
        res = (T)(c)[(n) - 1];                                                                 \
        FB_UNROLL                                                                              \
        for (int k_ = (n) - 2; k_ >= 0; k_--) res = FB_FMA(res, (z), (T)(c)[k_]);             \
    } while (0)

/* cond ? x : y, by bit masks: both sides are always computed, so the compiler cannot move
 * either into a branch (a floating-point operation under a branch is not if-converted, which
 * would keep the loop from vectorizing). */
static inline T FN(fb_pick)(int cond, T x, T y)
{
    FB_UINT ux, uy;
    memcpy(&ux, &x, sizeof ux);
    memcpy(&uy, &y, sizeof uy);
    const FB_UINT m = (FB_UINT)0 - (FB_UINT)(cond != 0);
    ux = (ux & m) | (uy & ~m);
    memcpy(&x, &ux, sizeof x);
    return x;
}

/* log(x) for positive normal x, without a division.  x = 2^k m, m in [sqrt(1/2), sqrt(2)),
 * f = m - 1 (exact); log(1 + f) = f + f^2 q, q = -1/2 + f P(f) (P: init_kernels.c); then
 * log x = k ln2_hi + f + (f^2 q + k ln2_lo), where k ln2_hi is exact and the sum k ln2_hi + f is
 * split into its rounded value and its exact error (Fast2Sum: |k ln2_hi| >= |f| when k != 0,
 * and the error is 0 when k = 0), so that the cancellation for x just below 1/2, 1/4, ... does
 * not double a rounding error.  Measured error on (0, 1]: <= 0.85 ulp (float32: every input;
 * float64: 2e8 random inputs against long double; tests/test_init.py checks against NumPy's
 * log). */
static inline T FN(fb_log)(T x)
{
    int32_t k;
    const T f = FN(fb_split)(x, &k) - (T)1;
    T P;
    FB_HORNER(P, FB_LOG_COEF, FB_LOG_TERMS, f);
    const T q = FB_FMA(f, P, (T)-0.5);
    const T dk = (T)k;
    const T a = dk * (T)FB_LN2_HI, hi = a + f;
    const T err = (a - hi) + f;
    const T lo = FB_FMA(f * f, q, dk * (T)FB_LN2_LO);
    return hi + (lo + err);
}

/* sin(x) for |x| <= pi/4: x + (x z) P(z), z = x^2, the last step one fused multiply-add, so the
 * leading term x is exact.  Measured error <= 0.76 ulp (float32: every input; float64: 2e8
 * random inputs against long double). */
static inline T FN(fb_sin)(T x)
{
    const T z = x * x;
    T P;
    FB_HORNER(P, FB_SIN_COEF, FB_SIN_TERMS, z);
    return FB_FMA(x * z, P, x);
}

/* cos(x) for |x| <= pi/4: 1 + z (-1/2 + z Q(z)), z = x^2, with fused multiply-adds: the last
 * step rounds once, and the error it carries in is z/2 ulp of -1/2 + z Q <= 0.16 ulp of the
 * result.  Measured error <= 0.88 ulp (float32: every input; float64: 2e8 random inputs). */
static inline T FN(fb_cos)(T x)
{
    const T z = x * x;
    T Q;
    FB_HORNER(Q, FB_COS_COEF, FB_COS_TERMS, z);
    return FB_FMA(z, FB_FMA(z, Q, (T)-0.5), (T)1);
}

/* The standard normal quantile for p in (0, ~0.5]: Wichura's AS241 (PPND16, relative accuracy
 * 1e-16), all three branches evaluated and selected (no branches, vectorizable):
 * p >= 0.075 -> central rational in 0.180625 - (p - 0.5)^2; else t = sqrt(-log p) and a rational
 * in t - 1.6 (t <= 5) or t - 5.  Inputs below the smallest normal are raised to it (the mass below
 * there is < 1e-37 for float32 and < 1e-307 for float64; callers clamp results to their interval).
 * In T arithmetic the error is a few ulps of the result (tests check the bound against SciPy). */
static inline T FN(fb_ndtri_lower)(T p)
{
    p = FN(fb_pick)(p > (T)FB_TINY, p, (T)FB_TINY);
    const T pc = FN(fb_pick)(p > (T)0.075, p, (T)0.075); /* keeps the central branch finite */
    const T q = pc - (T)0.5;
    const T r = (T)0.180625 - q * q;
    T a, b;
    FB_HORNER(a, fb_as241_a, 8, r);
    FB_HORNER(b, fb_as241_b, 8, r);
    const T t = FB_SQRT(-FN(fb_log)(p));
    const T t1 = t - (T)1.6, t2 = t - (T)5;
    T c, d, e, f;
    FB_HORNER(c, fb_as241_c, 8, t1);
    FB_HORNER(d, fb_as241_d, 8, t1);
    FB_HORNER(e, fb_as241_e, 8, t2);
    FB_HORNER(f, fb_as241_f, 8, t2);
    /* Select numerator and denominator, then divide once (a division under a select would
     * keep the compiler from vectorizing, and costs). */
    const int central = p >= (T)0.075, mid = t <= (T)5;
    const T num = FN(fb_pick)(central, q * a, FN(fb_pick)(mid, -c, -e));
    const T den = FN(fb_pick)(central, b, FN(fb_pick)(mid, d, f));
    return num / den;
}

/* ---- laws, one chunk (CHUNK values) at a time --------------------------------------------- */

typedef struct {
    fb_philox_key key;    /* the stream's Philox key schedule */
    T p[FB_INIT_NPARAMS]; /* the law's parameters, in T */
} FN(law);

/* Value NL*j + l of the chunk: words j*WPU .. j*WPU + WPU - 1 of lane l (init.h). */
#define WA(w, j, l) (w)[(j) * FB_WPU][l]
#define WB(w, j, l) (w)[(j) * FB_WPU + FB_WPU - 1][l]

static void FN(chunk_uniform)(const FN(law) *L, uint64_t c, T *FB_RESTRICT dst)
{
    uint32_t w[4][NL];
    fb_philox4x32_10_lanes(c * NL, &L->key, w);
    const T lo = L->p[0], width = L->p[1], hi = L->p[2];
    for (int j = 0; j < FB_V; j++)
        for (int l = 0; l < NL; l++) {
            const T y = FB_FMA(width, FN(fb_u01)(WA(w, j, l), WB(w, j, l)), lo);
            dst[NL * j + l] = y < hi ? y : hi;
        }
}

/* x with its sign flipped where sign32 has bit 31 set (the rest of sign32 is ignored): an xor
 * of the sign bit, no compare, no select. */
static inline T FN(fb_flip)(T x, uint32_t sign32)
{
    FB_UINT ux;
    memcpy(&ux, &x, sizeof ux);
    ux ^= (FB_UINT)(sign32 & 0x80000000u) << (8 * sizeof(T) - 32);
    memcpy(&x, &ux, sizeof x);
    return x;
}

static void FN(chunk_normal)(const FN(law) *L, uint64_t c, T *FB_RESTRICT dst)
{
    uint32_t w[4][NL];
    fb_philox4x32_10_lanes(c * NL, &L->key, w);
    const T mean = L->p[0], sd = L->p[1];
    for (int j = 0; j < FB_V; j += 2) /* pair (j, j + 1): u1 from value slot j, angle from j + 1 */
        for (int l = 0; l < NL; l++) {
            const T u1 = FN(fb_u1)(WA(w, j, l), WB(w, j, l));
            /* angle = quad * pi/2 + x, x in (-pi/4, pi/4): uniform on a turn; quad = the top two
             * bits of qa */
            const uint32_t qa = WA(w, j + 1, l);
            const T x = FN(fb_angle)(qa, WB(w, j + 1, l));
            const T r = sd * FB_SQRT((T)-2 * FN(fb_log)(u1));
            const T s = FN(fb_sin)(x), co = FN(fb_cos)(x);
            /* cos and sin of the angle: swapped in odd quadrants; cos negative in quadrants 1
             * and 2, sin in 2 and 3 */
            const int odd = (qa & 0x40000000u) != 0;
            const T C = FN(fb_flip)(FN(fb_pick)(odd, s, co), qa + 0x40000000u);
            const T S = FN(fb_flip)(FN(fb_pick)(odd, co, s), qa);
            dst[NL * j + l] = FB_FMA(r, C, mean);
            dst[NL * (j + 1) + l] = FB_FMA(r, S, mean);
        }
}

static void FN(chunk_truncnorm)(const FN(law) *L, uint64_t c, T *FB_RESTRICT dst)
{
    uint32_t w[4][NL];
    fb_philox4x32_10_lanes(c * NL, &L->key, w);
    const T mean = L->p[0], sd = L->p[1], pa = L->p[2], qb = L->p[3], width = L->p[4];
    const T lo = L->p[5], hi = L->p[6];
    for (int j = 0; j < FB_V; j++)
        for (int l = 0; l < NL; l++) {
            const T u = FN(fb_u01)(WA(w, j, l), WB(w, j, l));
            const T p = pa + width * u, q = qb + width * ((T)1 - u); /* 1 - u is exact */
            const int lower = p <= q;
            const T z = FN(fb_ndtri_lower)(FN(fb_pick)(lower, p, q));
            T y = mean + sd * FN(fb_pick)(lower, z, -z);
            y = y < lo ? lo : y;
            dst[NL * j + l] = y > hi ? hi : y;
        }
}

#undef WA
#undef WB

typedef void (*FN(chunk_fn))(const FN(law) *, uint64_t, T *FB_RESTRICT);

/* Writes values out[at .. at + n) from src[0 .. n) converted to a narrower type (the half
 * types, init_kernels.c): how a T stream fills an output of another type. */
typedef void (*FN(store_fn))(void *out, int64_t at, const T *src, int64_t n);

typedef struct {
    FN(law) law;
    FN(chunk_fn) chunk;
    FN(store_fn) store; /* NULL: out holds T */
    void *out;
    int64_t n;
} FN(fill_ctx);

/* Task t fills values [t * FB_INIT_TASK, min(n, (t + 1) * FB_INIT_TASK)), chunk by chunk. */
static void FN(fill_task)(void *vctx, int64_t t)
{
    const FN(fill_ctx) *k = (const FN(fill_ctx) *)vctx;
    const int64_t start = t * FB_INIT_TASK;
    const int64_t end = k->n - start < FB_INIT_TASK ? k->n : start + FB_INIT_TASK;
    for (int64_t i = start; i < end; i += CHUNK) {
        const uint64_t c = (uint64_t)(i / CHUNK);
        const int64_t m = end - i < CHUNK ? end - i : CHUNK;
        if (!k->store && m == CHUNK) {
            k->chunk(&k->law, c, (T *)k->out + i);
        } else {
            T tmp[CHUNK];
            k->chunk(&k->law, c, tmp);
            if (k->store)
                k->store(k->out, i, tmp, m);
            else
                memcpy((T *)k->out + i, tmp, (size_t)m * sizeof(T));
        }
    }
}

/* Fill out[0..n) with the law's T values, through store if it is not NULL. */
static fb_status FN(fill_into)(void *out, int64_t n, int law, const uint32_t seed[4],
                               const double *params, int n_threads, FN(store_fn) store)
{
    FN(fill_ctx) k;
    if (n < 0 || law < 0 || law >= FB_LAW_COUNT) return FB_EINVAL;
    if (n == 0) return FB_OK;
    fb_philox_schedule(seed, seed + 2, &k.law.key);
    for (int i = 0; i < FB_INIT_NPARAMS; i++) k.law.p[i] = (T)params[i];
    if (law == FB_LAW_UNIFORM) {
        /* p = (low, high - low, high) */
        k.law.p[1] = (T)(params[1] - params[0]);
        k.law.p[2] = (T)params[1];
        k.chunk = FN(chunk_uniform);
    } else if (law == FB_LAW_NORMAL) {
        k.chunk = FN(chunk_normal);
    } else {
        k.chunk = FN(chunk_truncnorm);
    }
    k.store = store;
    k.out = out;
    k.n = n;
    const int64_t n_tasks = (n + FB_INIT_TASK - 1) / FB_INIT_TASK;
    fb_parallel_for(n_tasks, (n < FB_INIT_PAR_MIN || n_threads < 1) ? 1 : n_threads, FN(fill_task),
                    &k);
    return FB_OK;
}

static fb_status FN(fill)(T *out, int64_t n, int law, const uint32_t seed[4], const double *params,
                          int n_threads)
{
    return FN(fill_into)(out, n, law, seed, params, n_threads, NULL);
}

static fb_status FN(eval)(int fn, const T *x, T *y, int64_t n)
{
    if (n < 0 || fn < 0 || fn >= FB_FN_COUNT) return FB_EINVAL;
    for (int64_t i = 0; i < n; i++) {
        switch (fn) {
        case FB_FN_LOG: y[i] = FN(fb_log)(x[i]); break;
        case FB_FN_SIN: y[i] = FN(fb_sin)(x[i]); break;
        case FB_FN_COS: y[i] = FN(fb_cos)(x[i]); break;
        default: y[i] = FN(fb_ndtri_lower)(x[i]); break;
        }
    }
    return FB_OK;
}

#undef CHUNK
#undef NL
#undef T
#undef FN

/* The dtype's parameters, so that the next dtype can define its own. */
#undef FB_T
#undef FB_DT
#undef FB_FMA
#undef FB_V
#undef FB_WPU
#undef FB_LOG_TERMS
#undef FB_LOG_COEF
#undef FB_SIN_TERMS
#undef FB_COS_TERMS
#undef FB_SIN_COEF
#undef FB_COS_COEF
#undef FB_LN2_HI
#undef FB_LN2_LO
#undef FB_SQRT
#undef FB_UINT
#undef FB_TINY
