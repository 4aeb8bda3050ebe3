/*
 * clip_body.h -- the per-block loops of the clipping kernels for one element type.
 *
 * Included by clip_kernels.c once per dtype with FB_T (float or double) and FB_DT (f32 or f64).
 * Every reduction runs over FB_LANES virtual lanes: element i of a block goes to lane i % FB_LANES
 * whether the block is contiguous or strided, and lanes are combined by fb_lanes_total (or
 * fb_clip_max), so the result bits do not depend on the vector width of the path.
 */
#define FN(name) FB_CAT3(name, _, FB_DT)
#define T FB_T

/* One lane reduction over p[0], p[s], ..., p[(n-1)s]: acc[lane] = COMBINE(acc[lane], TERM(x))
 * with x the element as a double.  The contiguous case has its own loop so that it vectorizes. */
#define FB_CLIP_REDUCE(NAME, INIT, COMBINE, TERM, FINISH)                                          \
    static double FN(NAME)(const T *FB_RESTRICT p, int64_t n, int64_t s, double pw)             \
    {                                                                                            \
        double acc[FB_LANES];                                                                    \
        for (int l = 0; l < FB_LANES; l++) acc[l] = (INIT);                                      \
        int64_t i = 0;                                                                           \
        if (s == 1) {                                                                            \
            for (; i + FB_LANES <= n; i += FB_LANES)                                             \
                for (int l = 0; l < FB_LANES; l++) {                                             \
                    const double x = (double)p[i + l];                                           \
                    acc[l] = COMBINE(acc[l], TERM);                                              \
                }                                                                                \
        } else {                                                                                 \
            for (; i + FB_LANES <= n; i += FB_LANES)                                             \
                for (int l = 0; l < FB_LANES; l++) {                                             \
                    const double x = (double)p[(i + l) * s];                                     \
                    acc[l] = COMBINE(acc[l], TERM);                                              \
                }                                                                                \
        }                                                                                        \
        for (int l = 0; i < n; i++, l++) {                                                       \
            const double x = (double)p[i * s];                                                   \
            acc[l] = COMBINE(acc[l], TERM);                                                      \
        }                                                                                        \
        (void)pw;                                                                                \
        return FINISH(acc);                                                                      \
    }

FB_CLIP_REDUCE(sumsq, 0.0, FB_CLIP_ADD, x * x, fb_lanes_total)
FB_CLIP_REDUCE(sumabs, 0.0, FB_CLIP_ADD, fabs(x), fb_lanes_total)
FB_CLIP_REDUCE(sumpow, 0.0, FB_CLIP_ADD, pow(fabs(x), pw), fb_lanes_total)
FB_CLIP_REDUCE(maxabs, 0.0, fb_clip_max, fabs(x), fb_clip_lanes_max)

static double FN(block_partial)(const T *p, int64_t n, int64_t s, int kind, double pw)
{
    switch (kind) {
    case FB_NORM_SUMSQ: return FN(sumsq)(p, n, s, pw);
    case FB_NORM_SUMABS: return FN(sumabs)(p, n, s, pw);
    case FB_NORM_SUMPOW: return FN(sumpow)(p, n, s, pw);
    default: return FN(maxabs)(p, n, s, pw);
    }
}

static void FN(block_scale)(T *FB_RESTRICT p, int64_t n, int64_t s, double coef)
{
    if (s == 1) {
        for (int64_t i = 0; i < n; i++) p[i] = (T)((double)p[i] * coef);
    } else {
        for (int64_t i = 0; i < n; i++) p[i * s] = (T)((double)p[i * s] * coef);
    }
}

/* torch.clamp's rule: x < lo -> lo, x > hi -> hi, else x (so NaN stays NaN). */
static void FN(block_clamp)(T *FB_RESTRICT p, int64_t n, int64_t s, T hi)
{
    const T lo = -hi;
    if (s == 1) {
        for (int64_t i = 0; i < n; i++) {
            const T x = p[i];
            p[i] = x < lo ? lo : (x > hi ? hi : x);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            const T x = p[i * s];
            p[i * s] = x < lo ? lo : (x > hi ? hi : x);
        }
    }
}

#undef FB_CLIP_REDUCE
#undef FN
#undef T
