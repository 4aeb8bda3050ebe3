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

/* One reduction over p[0], p[s], ..., p[(n-1)s] with FB_CLIP_ACC = 2 * FB_LANES accumulators:
 * element i goes to accumulator i % FB_CLIP_ACC (acc = COMBINE(acc, TERM(x)), x the element as a
 * double); accumulators l and l + FB_LANES are then combined into lane l, and the lanes by FINISH.
 * Two sets of FB_LANES keep twice as many independent add chains in flight as one would, which a
 * memory-bound stream needs.  Contiguous whole groups go through NAME##_run, a plain loop over a
 * local accumulator that the compiler vectorizes; the strided path and the tail use the same
 * element-to-accumulator map, so every path gives the same bits. */
#define FB_CLIP_REDUCE(NAME, INIT, COMBINE, TERM, FINISH)                                          \
    static void FN(NAME##_run)(const T *FB_RESTRICT p, int64_t groups, double *FB_RESTRICT out,  \
                               double pw)                                                        \
    {                                                                                            \
        double acc[FB_CLIP_ACC];                                                                 \
        for (int l = 0; l < FB_CLIP_ACC; l++) acc[l] = out[l];                                   \
        for (int64_t g = 0; g < groups; g++) {                                                   \
            const T *FB_RESTRICT q = p + g * FB_CLIP_ACC;                                        \
            FB_CLIP_PREFETCH(q + FB_CLIP_AHEAD);                                                 \
            for (int l = 0; l < FB_CLIP_ACC; l++) {                                              \
                const double x = (double)q[l];                                                   \
                acc[l] = COMBINE(acc[l], TERM);                                                  \
            }                                                                                    \
        }                                                                                        \
        for (int l = 0; l < FB_CLIP_ACC; l++) out[l] = acc[l];                                   \
        (void)pw;                                                                                \
    }                                                                                            \
    static double FN(NAME)(const T *FB_RESTRICT p, int64_t n, int64_t s, double pw)             \
    {                                                                                            \
        double acc[FB_CLIP_ACC], lanes[FB_LANES];                                                \
        for (int l = 0; l < FB_CLIP_ACC; l++) acc[l] = (INIT);                                   \
        int64_t i = 0;                                                                           \
        if (s == 1) {                                                                            \
            FN(NAME##_run)(p, n / FB_CLIP_ACC, acc, pw);                                         \
            i = n / FB_CLIP_ACC * FB_CLIP_ACC;                                                   \
        } else {                                                                                 \
            for (; i + FB_CLIP_ACC <= n; i += FB_CLIP_ACC)                                       \
                for (int l = 0; l < FB_CLIP_ACC; l++) {                                          \
                    const double x = (double)p[(i + l) * s];                                     \
                    acc[l] = COMBINE(acc[l], TERM);                                              \
                }                                                                                \
        }                                                                                        \
        for (int l = 0; i < n; i++, l++) {                                                       \
            const double x = (double)p[i * s];                                                   \
            acc[l] = COMBINE(acc[l], TERM);                                                      \
        }                                                                                        \
        for (int l = 0; l < FB_LANES; l++) lanes[l] = COMBINE(acc[l], acc[l + FB_LANES]);        \
        (void)pw;                                                                                \
        return FINISH(lanes);                                                                    \
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

/* a[i] = (T)((double)a[i] * (double)c) with c = (T)coef, computed as the T product a[i] * c.
 * For float the exact product of two 24-bit significands fits a double, so the double product
 * is exact and both forms round the same exact value once: the same bits, at float speed.  For
 * double, c = coef and this is a[i] * coef. */
static void FN(block_scale)(T *FB_RESTRICT p, int64_t n, int64_t s, double coef)
{
    const T c = (T)coef;
    if (s == 1) {
        for (int64_t i = 0; i < n; i++) p[i] = p[i] * c;
    } else {
        for (int64_t i = 0; i < n; i++) p[i * s] = p[i * s] * c;
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

/* The dtype's parameters, so that the next dtype can define its own. */
#undef FB_T
#undef FB_DT
