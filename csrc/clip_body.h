/*
 * clip_body.h -- the per-block loops of the clipping kernels for one element type.
 *
 * Included by clip_kernels.c once per dtype with FB_T (the stored type: float, double, or
 * uint16_t bits of float16/bfloat16), FB_DT (f32, f64, f16, bf16), and:
 *   FB_CT          the type scaling multiplies in (exact for a product of two T values);
 *   FB_TO_CT(v)    a stored value as FB_CT (exact);
 *   FB_FROM_CT(x)  an FB_CT value rounded to T (to nearest even);
 *   FB_FROM_D(d)   a double rounded once to T (to nearest even, overflow to infinity).
 * Every reduction runs over FB_LANES virtual lanes: element i of a block goes to lane i % FB_LANES
 * whether the block is contiguous or strided, and lanes are combined by fb_lanes_total (or
 * fb_clip_max), so the result bits do not depend on the vector width of the path.
 */
#define FN(name) FB_CAT3(name, _, FB_DT)
#define T FB_T

/* One reduction over p[0], p[s], ..., p[(n-1)s] with FB_CLIP_ACC = 2 * FB_LANES accumulators:
 * element i goes to accumulator i % FB_CLIP_ACC (acc = STEP(acc, x), x the element as a double);
 * accumulators l and l + FB_LANES are then combined into lane l by COMBINE, and the lanes by
 * FINISH.
 * Two sets of FB_LANES keep twice as many independent add chains in flight as one would, which a
 * memory-bound stream needs.  Contiguous whole groups go through NAME##_run, a plain loop over a
 * local accumulator that the compiler vectorizes; the strided path and the tail use the same
 * element-to-accumulator map, so every path gives the same bits. */
#define FB_CLIP_REDUCE(NAME, INIT, STEP, COMBINE, FINISH)                                          \
    static void FN(NAME##_run)(const T *FB_RESTRICT p, int64_t groups, double *FB_RESTRICT out,  \
                               double pw)                                                        \
    {                                                                                            \
        double acc[FB_CLIP_ACC];                                                                 \
        for (int l = 0; l < FB_CLIP_ACC; l++) acc[l] = out[l];                                   \
        for (int64_t g = 0; g < groups; g++) {                                                   \
            const T *FB_RESTRICT q = p + g * FB_CLIP_ACC;                                        \
            FB_CLIP_PREFETCH(q + FB_CLIP_AHEAD);                                                 \
            for (int l = 0; l < FB_CLIP_ACC; l++) {                                              \
                const double x = (double)FB_TO_CT(q[l]);                                         \
                acc[l] = STEP(acc[l], x);                                                        \
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
                    const double x = (double)FB_TO_CT(p[(i + l) * s]);                           \
                    acc[l] = STEP(acc[l], x);                                                    \
                }                                                                                \
        }                                                                                        \
        for (int l = 0; i < n; i++, l++) {                                                       \
            const double x = (double)FB_TO_CT(p[i * s]);                                         \
            acc[l] = STEP(acc[l], x);                                                            \
        }                                                                                        \
        for (int l = 0; l < FB_LANES; l++) lanes[l] = COMBINE(acc[l], acc[l + FB_LANES]);        \
        (void)pw;                                                                                \
        return FINISH(lanes);                                                                    \
    }

/* acc + x^2: one multiply-add where x^2 is exact in a double (FB_SQ_EXACT: x of float, float16 or
 * bfloat16, 24 bits at most), so the same bits as the product and the sum; where the instruction
 * set has one (otherwise fma is a library call). */
#if FB_SQ_EXACT && (defined(__FMA__) || defined(__AVX512F__))
#define FB_SUMSQ_STEP(a, x) fma((x), (x), (a))
#else
#define FB_SUMSQ_STEP(a, x) ((a) + (x) * (x))
#endif
#define FB_SUMABS_STEP(a, x) ((a) + fabs(x))
#define FB_SUMPOW_STEP(a, x) ((a) + pow(fabs(x), pw))
#define FB_MAXABS_STEP(a, x) fb_clip_max((a), fabs(x))
FB_CLIP_REDUCE(sumsq, 0.0, FB_SUMSQ_STEP, FB_CLIP_ADD, fb_lanes_total)
FB_CLIP_REDUCE(sumabs, 0.0, FB_SUMABS_STEP, FB_CLIP_ADD, fb_lanes_total)
FB_CLIP_REDUCE(sumpow, 0.0, FB_SUMPOW_STEP, FB_CLIP_ADD, fb_lanes_total)
FB_CLIP_REDUCE(maxabs, 0.0, FB_MAXABS_STEP, fb_clip_max, fb_clip_lanes_max)
#undef FB_SUMSQ_STEP
#undef FB_SUMABS_STEP
#undef FB_SUMPOW_STEP
#undef FB_MAXABS_STEP

static double FN(block_partial)(const T *p, int64_t n, int64_t s, int kind, double pw)
{
    switch (kind) {
    case FB_NORM_SUMSQ: return FN(sumsq)(p, n, s, pw);
    case FB_NORM_SUMABS: return FN(sumabs)(p, n, s, pw);
    case FB_NORM_SUMPOW: return FN(sumpow)(p, n, s, pw);
    default: return FN(maxabs)(p, n, s, pw);
    }
}

/* a[i] = T((double)a[i] * (double)c) with c = T(coef), computed as the CT product a[i] * c,
 * rounded once to T.  The exact product of two T significands fits CT (float: 24 + 24 bits in a
 * double's 53 -- so the float product rounds the same exact value; float16: 11 + 11 bits in a
 * float, within its normal range; bfloat16: 8 + 8 bits in a double, whose range holds it), so
 * both forms round the same exact value once: the same bits.  For double, c = coef and this is
 * a[i] * coef. */
static void FN(block_scale)(T *FB_RESTRICT p, int64_t n, int64_t s, double coef)
{
    const FB_CT c = FB_TO_CT(FB_FROM_D(coef));
    if (s == 1) {
        for (int64_t i = 0; i < n; i++) p[i] = FB_FROM_CT(FB_TO_CT(p[i]) * c);
    } else {
        for (int64_t i = 0; i < n; i++) p[i * s] = FB_FROM_CT(FB_TO_CT(p[i * s]) * c);
    }
}

/* torch.clamp's rule: x < lo -> lo, x > hi -> hi, else x (so NaN stays NaN), with the bound
 * hi = T(clip_value) (given as a double already so rounded, or infinity).  The compare is on
 * the values; what is written is the element's own bits or the bound's: exact. */
static void FN(block_clamp)(T *FB_RESTRICT p, int64_t n, int64_t s, double clip_value)
{
    const T hb = FB_FROM_D(clip_value);
    const FB_CT hi = FB_TO_CT(hb), lo = -hi;
    const T lb = FB_FROM_CT(lo); /* exact: negation */
    if (s == 1) {
        for (int64_t i = 0; i < n; i++) {
            const FB_CT x = FB_TO_CT(p[i]);
            p[i] = x < lo ? lb : (x > hi ? hb : p[i]);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            const FB_CT x = FB_TO_CT(p[i * s]);
            p[i * s] = x < lo ? lb : (x > hi ? hb : p[i * s]);
        }
    }
}

/* The tasks' entry points: block b of the plan, as this dtype (clip_kernels.c's dtype rows). */
static double FN(task_partial)(const fb_clip_plan *pl, int64_t b, int kind, double pw)
{
    const int64_t a = pl->arr[b], s = pl->stride[a];
    return FN(block_partial)((const T *)pl->data[a] + pl->start[b] * s, fb_clip_block_len(pl, b),
                             s, kind, pw);
}

static void FN(task_scale)(const fb_clip_plan *pl, int64_t b, double coef)
{
    const int64_t a = pl->arr[b], s = pl->stride[a];
    FN(block_scale)((T *)pl->data[a] + pl->start[b] * s, fb_clip_block_len(pl, b), s, coef);
}

static void FN(task_clamp)(const fb_clip_plan *pl, int64_t b, double clip_value)
{
    const int64_t a = pl->arr[b], s = pl->stride[a];
    FN(block_clamp)((T *)pl->data[a] + pl->start[b] * s, fb_clip_block_len(pl, b), s, clip_value);
}

#undef FB_CLIP_REDUCE
#undef FN
#undef T

/* The dtype's parameters, so that the next dtype can define its own. */
#undef FB_T
#undef FB_DT
#undef FB_CT
#undef FB_TO_CT
#undef FB_FROM_CT
#undef FB_FROM_D
#undef FB_SQ_EXACT
