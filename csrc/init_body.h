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

/* Horner evaluation of c[0] + c[1] z + ... + c[n-1] z^(n-1), coefficients given in float64 and
 * rounded to T at compile time; n is a compile-time constant, so the loop unrolls. */
#define FB_HORNER(res, c, n, z)                                                                \
    do {                                                                                       \
        res = (T)(c)[(n) - 1];                                                                 \
        for (int k_ = (n) - 2; k_ >= 0; k_--) res = res * (z) + (T)(c)[k_];                    \
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

/* log(x) for positive normal x (fdlibm's scheme).  x = 2^k m, m in [sqrt(1/2), sqrt(2)),
 * f = m - 1 (exact), s = f / (2 + f), log(1 + f) = f - (hfsq - s (hfsq + R)), hfsq = f^2 / 2,
 * R = sum_{k=1..K} 2/(2k+1) s^(2k) (the Taylor series of 2 atanh(s)/s - 2, |s| <= 0.1716).
 * Truncation error <= s^(2K+2)/(2K+3) relative: 2e-9 for float32 (K = 4), 6e-19 for float64
 * (K = 10), far below half an ulp.  The leading term f and k*ln2_hi are exact, rounding errors
 * of the correction are scaled by |f|/2 <= 0.21: measured error <= 1 ulp on (0, 1]
 * (tests/test_init.py checks against NumPy's log). */
static inline T FN(fb_log)(T x)
{
    int32_t k;
    const T m = FN(fb_split)(x, &k);
    const T f = m - (T)1;
    const T s = f / ((T)2 + f);
    const T z = s * s;
    T R;
    FB_HORNER(R, fb_log_coef, FB_LOG_TERMS, z);
    R = R * z;
    const T hfsq = (T)0.5 * f * f;
    const T dk = (T)k;
    return dk * (T)FB_LN2_HI - ((hfsq - (s * (hfsq + R) + dk * (T)FB_LN2_LO)) - f);
}

/* sin(x) for |x| <= pi/4: x + x z P(z), z = x^2, Taylor coefficients (-1)^k/(2k+1)!, k = 1..K;
 * truncation |x|^(2K+2)/(2K+3)! relative: 2e-9 (float32, K = 4), 1e-19 (float64, K = 8). */
static inline T FN(fb_sin)(T x)
{
    const T z = x * x;
    T P;
    FB_HORNER(P, fb_sin_coef, FB_SIN_TERMS, z);
    return x + (x * z) * P;
}

/* cos(x) for |x| <= pi/4: w + (((1 - w) - z/2) + z^2 Q(z)), w = 1 - z/2 (the rounding error of
 * w recovered exactly, fdlibm's way), Taylor coefficients (-1)^k/(2k)!, k = 2..K; truncation
 * x^(2K+2)/(2K+2)! <= 1e-10 (float32, K = 5), 2e-18 (float64, K = 8). */
static inline T FN(fb_cos)(T x)
{
    const T z = x * x;
    T Q;
    FB_HORNER(Q, fb_cos_coef, FB_COS_TERMS, z);
    const T hz = (T)0.5 * z;
    const T w = (T)1 - hz;
    return w + ((((T)1 - w) - hz) + (z * z) * Q);
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
    uint32_t key[2], stream[2];
    T p[FB_INIT_NPARAMS]; /* the law's parameters, in T */
} FN(law);

/* Value 16*j + l of the chunk: words j*WPU .. j*WPU + WPU - 1 of lane l (init.h). */
#define WA(w, j, l) (w)[(j) * FB_WPU][l]
#define WB(w, j, l) (w)[(j) * FB_WPU + FB_WPU - 1][l]

static void FN(chunk_uniform)(const FN(law) *L, uint64_t c, T *FB_RESTRICT dst)
{
    uint32_t w[4][NL];
    fb_philox4x32_10_lanes(c * NL, L->key, L->stream, w);
    const T lo = L->p[0], width = L->p[1], hi = L->p[2];
    for (int j = 0; j < FB_V; j++)
        for (int l = 0; l < NL; l++) {
            const T y = lo + width * FN(fb_u01)(WA(w, j, l), WB(w, j, l));
            dst[NL * j + l] = y < hi ? y : hi;
        }
}

static void FN(chunk_normal)(const FN(law) *L, uint64_t c, T *FB_RESTRICT dst)
{
    uint32_t w[4][NL];
    fb_philox4x32_10_lanes(c * NL, L->key, L->stream, w);
    const T mean = L->p[0], sd = L->p[1];
    const T half_pi = (T)1.57079632679489661923, quarter_pi = (T)0.785398163397448309616;
    for (int j = 0; j < FB_V; j += 2) /* pair (j, j + 1): u1 from value slot j, angle from j + 1 */
        for (int l = 0; l < NL; l++) {
            const T u1 = FN(fb_u1)(WA(w, j, l), WB(w, j, l));
            const uint32_t qa = WA(w, j + 1, l);
            const T x = FN(fb_quarter)(qa, WB(w, j + 1, l)) * half_pi - quarter_pi;
            const uint32_t quad = qa >> 30; /* angle = quad * pi/2 + x, uniform on a turn */
            const T r = FB_SQRT((T)-2 * FN(fb_log)(u1));
            const T s = FN(fb_sin)(x), co = FN(fb_cos)(x);
            T C = (quad & 1u) ? s : co, S = (quad & 1u) ? co : s;
            C = (quad == 1u || quad == 2u) ? -C : C;
            S = (quad >= 2u) ? -S : S;
            dst[NL * j + l] = mean + sd * (r * C);
            dst[NL * (j + 1) + l] = mean + sd * (r * S);
        }
}

static void FN(chunk_truncnorm)(const FN(law) *L, uint64_t c, T *FB_RESTRICT dst)
{
    uint32_t w[4][NL];
    fb_philox4x32_10_lanes(c * NL, L->key, L->stream, w);
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

typedef struct {
    FN(law) law;
    FN(chunk_fn) chunk;
    T *out;
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
        if (end - i >= CHUNK) {
            k->chunk(&k->law, c, k->out + i);
        } else {
            T tmp[CHUNK];
            k->chunk(&k->law, c, tmp);
            memcpy(k->out + i, tmp, (size_t)(end - i) * sizeof(T));
        }
    }
}

static fb_status FN(fill)(T *out, int64_t n, int law, const uint32_t seed[4], const double *params,
                          int n_threads)
{
    FN(fill_ctx) k;
    if (n < 0 || law < 0 || law >= FB_LAW_COUNT) return FB_EINVAL;
    if (n == 0) return FB_OK;
    k.law.key[0] = seed[0], k.law.key[1] = seed[1];
    k.law.stream[0] = seed[2], k.law.stream[1] = seed[3];
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
    k.out = out;
    k.n = n;
    const int64_t n_tasks = (n + FB_INIT_TASK - 1) / FB_INIT_TASK;
    fb_parallel_for(n_tasks, (n < FB_INIT_PAR_MIN || n_threads < 1) ? 1 : n_threads, FN(fill_task),
                    &k);
    return FB_OK;
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
