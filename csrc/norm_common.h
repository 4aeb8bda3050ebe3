/*
 * norm_common.h -- the pieces of the elementwise passes and of the sums that batch norm
 * (batchnorm_body.h) and the normalization core (norm_body.h) share, for one element type.
 *
 * Included by each kernels file once per dtype, after dtype_f32.h / dtype_f64.h and before that
 * file's body: per-channel coefficients (coef, make_coef, make_grad_coef), the elementwise
 * formulas with their float64 redo (apply1, grad1), the lanes' pair sums of a run
 * (run_pair_sums), the runs with one coefficient set (run_apply, run_grad_apply) and the row
 * segments with per-element coefficients (row_apply).  The numerics are those of batchnorm_body.h's
 * header: the elementwise passes run in FB_C (T, or float64 for half storage: the vector formulas
 * take their FB_CV operands at element offsets, FB_CV_TO_TV joins them into one vector of T), and
 * a vector whose T result is not finite is redone by element in float64, so an intermediate
 * overflow never turns a representable result into inf or NaN.
 */
#ifndef FASTBN_NORM_COMMON_ONCE   /* the dtype-independent part, once */
#define FASTBN_NORM_COMMON_ONCE
#define FB_STREAM_MIN_BYTES (4 << 20) /* outputs this large bypass the cache (non-temporal) */
static inline int fb_stream_output(int64_t bytes) { return FB_HAVE_STREAM && bytes >= FB_STREAM_MIN_BYTES; }
/* The first address from `at` on, aligned to `align`, that lies `want` bytes past y modulo 4 KB:
 * where an array read in step with y's streamed stores starts clear of them (4K aliasing). */
static inline char *fb_place_past(char *at, const void *y, size_t want, size_t align)
{
    const size_t have = (size_t)((uintptr_t)at - (uintptr_t)y) % 4096;
    at += (want - have + 4096) % 4096;
    return at + (align - (uintptr_t)at % align) % align;
}

/* Lanes a reduction keeps in registers at once: four vectors per accumulator. */
#define FB_NVG 4
/* Bytes ahead of a reduction's reads that it prefetches (1024: measured best of 512-2048) */
#define FB_PF_AHEAD 1024
/* Bytes ahead of the rows layout's gradient apply that it prefetches into L2, where
 * fb_grad_prefetch (cpu.h) (4096: best of 1024-16384 on Zen 4; the forward's apply gained
 * nothing) */
#define FB_GRAD_APPLY_AHEAD 4096
#define FB_LG (FB_NVG * FB_VD_W < FB_LANES ? FB_NVG * FB_VD_W : FB_LANES)
#if FB_LANES % (FB_NVG * 2) != 0
#error "FB_LANES must split into vector groups"
#endif
/* Both vectors finite, or a pair to redo: a + b is not finite where either is not (or where the
 * sum of two finite values overflows -- a redo that gives the same bits). */
#define FB_TV_FINITE2(a, b) FB_TV_FINITE(FB_TV_ADD(a, b))
/* Prefetch the `bytes` (a constant) from address p (a pointer or uintptr_t) on, a line at a
 * time; computed as integers, since the lines may lie past the array's end. */
#define FB_PREFETCH_SPAN(p, bytes)                                                                \
    do {                                                                                          \
        for (int b_ = 0; b_ < (bytes); b_ += 64)                                                  \
            fb_prefetch((const void *)((uintptr_t)(p) + (uintptr_t)b_));                          \
    } while (0)
/* FB_PREFETCH_SPAN into L2 only (fb_prefetch_l2), for lines read well after this step's: there
 * prefetcht0 filled L1 with lines evicted before their use (docs/performance.rst) */
#define FB_PREFETCH_SPAN_L2(p, bytes)                                                             \
    do {                                                                                          \
        for (int b_ = 0; b_ < (bytes); b_ += 64)                                                  \
            fb_prefetch_l2((const void *)((uintptr_t)(p) + (uintptr_t)b_));                       \
    } while (0)
/* The line a run ends in, where `end` is inside one: stored normally amid streamed lines, it is
 * fetched a run ahead so that its store does not hold up the streamed ones behind it. */
static inline void fb_prefetch_end_w(const void *end)
{
    if ((uintptr_t)end % 64) fb_prefetch_w((const char *)end - 1);
}
/* p + off, or NULL for an absent (NULL) array: the fused arrays follow the output's offsets */
#define FB_AT(p, off) ((p) ? (p) + (off) : NULL)
#endif

#define FN(name) FB_CAT3(name, _, FB_DT)
#define T FB_T
#define S FB_S   /* the tensors' storage type: read and written through FB_LD / FB_ST */
/* FB_RUN_LOOP_P's PART (a streamed line in one vector, a run's ends in masked ones) where the
 * tensors are stored in the arithmetic's type (float32, float64); the half types have none. */
#ifdef FB_SV_LOAD_PART
#define FB_PARTS 1
#else
#define FB_PARTS 0
#endif
/* dy masked by y (relu_grad1), widened: the dtype's own form, else both loaded and masked */
#ifndef FB_VD_LOAD_RG
#define FB_VD_LOAD_RG(q, y) fb_vd_relu_grad(FB_VD_LOAD_T(q), FB_VD_LOAD_T(y))
#endif

/* ---- statistics finish: far from zero, a second pass (batch norm's and the core's) -------- */

/* Merging parts (Chan) adds delta^2 * w for delta = (part mean) - (running mean), and each of
 * those means was rounded to float64: an absolute error of ~u |mean| in delta, which is a relative
 * error of ~4u |mean| / sd in M2 (2.5e-9 for mean 1e4, sd 1e-3).  Where that could pass 1e-13
 * (|mean| / sd > ~56) the channel is read once more with the merged mean as the shift: x - k is
 * then exact (within a factor 2 of k), mean += S1/n, M2 = S2 - S1^2/n, summed in blocks of FB_SEG
 * values -- (FB_SEG + n/FB_SEG) u relative at worst.  Data near zero never take it, so their bits
 * are unchanged; a constant channel far from zero does (its variance 0 stays exact). */
static int FN(needs_refine)(double mean, double m2, double n)
{
    return isfinite(mean) && isfinite(m2) && 16.0 * 0x1p-53 * fabs(mean) > 1e-13 * sqrt(m2 / n);
}

/* The channel is `rows` runs of `inner` values, `stride` apart. */
static void FN(refine_stats)(const S *x, int64_t rows, int64_t stride, int64_t inner,
                             double *mean, double *m2)
{
    const double k = *mean, n = (double)rows * (double)inner;
    double s1 = 0.0, s2 = 0.0, b1 = 0.0, b2 = 0.0;
    int64_t in_block = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < inner; i++) {
            const double d = (double)FB_LD(x[r * stride + i]) - k;
            b1 += d, b2 += d * d;
            if (++in_block == FB_SEG) s1 += b1, s2 += b2, b1 = b2 = 0.0, in_block = 0;
        }
    s1 += b1, s2 += b2;
    *mean = k + s1 / n;
    const double q = s2 - s1 * (s1 / n);
    *m2 = q < 0.0 ? 0.0 : q;
}

/* ---- per-channel coefficients of the elementwise passes ----------------------------------- */

/* Forward: y = (x - m) * s + c.   Backward: dx = dy * g + ((x - m) * s + c). */
typedef struct {
    double m, s, g, c;   /* the float64 formula, used when `exact` */
    double q, mdy, inv;  /* backward: dx = g * ((dy - mdy) - ((x - m) * inv) * q), s or c beyond float64 */
    int factored;        /* q, mdy, inv are set (batch norm's make_grad_coef) */
    double gam;          /* split: the scale (forward s, batch norm's backward g) is gam * inv */
    int split;           /* that product is beyond float64: the float64 path keeps its factors */
    FB_C tm, ts, tg, tc; /* the same in FB_C, the mean split as tm + (m - tm), folded into tc */
    int exact;
} FN(coef);

static FN(coef) FN(make_coef)(double m, double s, double g, double c)
{
    FN(coef) co;
    co.m = m, co.s = s, co.g = g, co.c = c, co.q = 0.0, co.mdy = 0.0, co.inv = 0.0, co.factored = 0;
    co.gam = 0.0, co.split = 0;
    co.tm = (FB_C)m;
    co.ts = (FB_C)s;
    co.tg = (FB_C)g;
    co.tc = (FB_C)(c - (m - (double)co.tm) * (double)co.ts);
    co.exact = isfinite(m) && fabs(m) >= 0x1p102;
    /* A finite coefficient that rounds to +-inf in FB_C (float32 scale beyond FLT_MAX) would give
     * 0 * inf = NaN where x equals the mean: that channel takes the float64 formula. */
    if (isfinite(s) && isfinite(g) && isfinite(c) &&
        !(isfinite(co.ts) && isfinite(co.tg) && isfinite(co.tc)))
        co.exact = 1;
    return co;
}

/* Forward: y = (x - m) (gamma r) + c.  Where gamma r overflows float64 from finite factors
 * (float64 gamma 1e308 over a standard deviation below 0.556), the channel takes the float64
 * formula with the factors apart, so that x == m gives c, not 0 * inf = NaN. */
static FN(coef) FN(make_fwd_coef)(double m, double gamma, double r, double c)
{
    FN(coef) co = FN(make_coef)(m, gamma * r, 0.0, c);
    if (fb_split_overflows(gamma, r)) co.gam = gamma, co.inv = r, co.split = 1, co.exact = 1;
    return co;
}

/* The family's backward: dx = dy (gamma r) + ((x - m) s + c).  Where gamma r overflows float64
 * from finite factors, the float64 formula takes dy's term as gamma (r dy) (split_grad1). */
static inline FN(coef) FN(make_bwd_coef)(double m, double s, double gamma, double r, double c)
{
    FN(coef) co = FN(make_coef)(m, s, gamma * r, c);
    if (fb_split_overflows(gamma, r)) co.gam = gamma, co.inv = r, co.split = 1, co.exact = 1;
    return co;
}

/* Backward: from fb_bn_grad_coefs's {s, g, c, q, mdy, invstd, gamma}.  A channel whose s or c
 * overflows float64 while the factored form's g, q, mdy do not takes the float64 path
 * (exact_grad1); so does one whose g = gamma invstd overflows from finite factors, with
 * dx = gamma (invstd ((dy - mdy) - ((x - m) inv) q)): 0 where dy is 0, not 0 * inf = NaN. */
static inline FN(coef) FN(make_grad_coef)(double m, const double coef[7])
{
    FN(coef) co = FN(make_coef)(m, coef[0], coef[1], coef[2]);
    co.q = coef[3], co.mdy = coef[4], co.inv = coef[5], co.factored = 1;
    const int factors_ok = isfinite(co.q) && isfinite(co.mdy) && isfinite(co.inv);
    if (factors_ok && isfinite(co.g) && !(isfinite(co.s) && isfinite(co.c)))
        co.exact = 1;
    if (factors_ok && isinf(co.g) && isfinite(coef[6]))
        co.gam = coef[6], co.split = 1, co.exact = 1;
    return co;
}

/* The float64 formulas, rounded to T once.  Where one overflows inside (float64 data: dy * g or
 * x - m beyond DBL_MAX though the result is not), it is evaluated again in units of 2^32: x, m,
 * dy, c and the larger factor of dy * g scaled by 2^-32, the result by 2^32 (powers of two: exact
 * but for underflow, whose absolute error, ~2^-1042, is nothing beside the overflowing terms).
 * The scales s and g stay whole (a subnormal gamma invstd keeps its digits), and a zero s makes
 * (x - m) s an exact zero however far x - m overflows.  A result that is not finite either way is
 * +-inf where the exact value overflows, and NaN from NaN inputs: always the one quiet NaN
 * (moments.h's fb_nan1), whose sign and payload would otherwise depend on the order in which
 * each build's compiler put the operands of a commutative operation that are both NaN.  A split
 * channel (a scale gam * inv beyond float64; always `exact`) takes split_apply1 / split_grad1
 * instead: the exact loops call exact_apply1_any / exact_grad1_any, out of line, and the
 * vector loops' inlined redo paths (apply1, grad1) stay as they were (a test inlined there
 * slowed those loops). */
#define FB_K 0x1p-32

/* The factored form's xhat term (d * inv) * q, d = x - m (scaled): 0 for q == 0 where d * inv
 * overflowed from finite x, m, inv (inf * 0 would make it NaN). */
static FB_INLINE double FN(xq)(double d, T x, const FN(coef) *co)
{
    const double xh = d * co->inv;
    if (co->q == 0.0 && isinf(xh) && isfinite((double)x) && isfinite(co->m) && isfinite(co->inv))
        return copysign(0.0, xh) * co->q;
    return xh * co->q;
}

/* exact_apply1 with s = gam inv applied as ((x - m) inv) gam */
static FB_NOINLINE T FN(split_apply1)(T x, const FN(coef) *co)
{
    const double y = (((double)x - co->m) * co->inv) * co->gam + co->c;
    if (isfinite(y)) return (T)y;
    if (!isfinite((double)x)) return (T)fb_nan1(y);
    const double h = (((double)x * FB_K - co->m * FB_K) * co->inv) * co->gam;
    return (T)fb_nan1((h + co->c * FB_K) * 0x1p32);
}

/* exact_grad1 with g = gam inv applied as gam (inv b): b = dy in the plain formula, the bracket
 * in batch norm's factored one (whose plain formula is not finite: c = -g mean(dy) is not) */
static FB_NOINLINE T FN(split_grad1)(T dy, T x, const FN(coef) *co)
{
    const double y = co->gam * (co->inv * (double)dy) + (((double)x - co->m) * co->s + co->c);
    if (isfinite(y)) return (T)y;
    if (!isfinite((double)dy) || !isfinite((double)x)) return (T)fb_nan1(y);
    if (!co->factored) {
        const double h = ((double)x * FB_K - co->m * FB_K) * co->s;
        if (co->s == 0.0) {
            const double y0 = co->gam * (co->inv * (double)dy) + (h + co->c);
            if (isfinite(y0)) return (T)y0;
        }
        const double p = co->gam * (co->inv * ((double)dy * FB_K));
        return (T)fb_nan1((p + (h + co->c * FB_K)) * 0x1p32);
    }
    const double r = co->gam * (co->inv * (((double)dy - co->mdy) -
                                           FN(xq)((double)x - co->m, x, co)));
    if (isfinite(r)) return (T)r;
    const double a = ((double)dy * FB_K - co->mdy * FB_K) -
                     FN(xq)((double)x * FB_K - co->m * FB_K, x, co);
    return (T)fb_nan1(co->gam * (co->inv * a) * 0x1p32);
}

static FB_INLINE T FN(exact_apply1)(T x, const FN(coef) *co)
{
    const double y = ((double)x - co->m) * co->s + co->c;
    if (isfinite(y)) return (T)y;
    if (!isfinite((double)x)) return (T)fb_nan1(y);   /* x's own inf or NaN: nothing to scale */
    const double h = ((double)x * FB_K - co->m * FB_K) * co->s;   /* (x - m) s 2^-32 */
    return (T)fb_nan1(co->s == 0.0 ? h + co->c : (h + co->c * FB_K) * 0x1p32);
}

static FB_INLINE T FN(exact_grad1)(T dy, T x, const FN(coef) *co)
{
    const double y = (double)dy * co->g + (((double)x - co->m) * co->s + co->c);
    if (isfinite(y)) return (T)y;
    if (!isfinite((double)dy) || !isfinite((double)x)) return (T)fb_nan1(y);
    if (!co->factored) {   /* the plain formula, (x - m) s exact 0 for s = 0; else scaled */
        const double h = ((double)x * FB_K - co->m * FB_K) * co->s;   /* (x - m) s 2^-32 */
        if (co->s == 0.0) {   /* h is (x - m) s, an exact signed zero */
            const double y0 = (double)dy * co->g + (h + co->c);
            if (isfinite(y0)) return (T)y0;
        }
        const double p = fabs((double)dy) >= fabs(co->g) ? (double)dy * FB_K * co->g
                                                         : (double)dy * (co->g * FB_K);
        return (T)fb_nan1((p + (h + co->c * FB_K)) * 0x1p32);
    }
    /* the factored form (s or c may be +-inf, g, q, mdy are not): the same error bound */
    const double r = co->g * (((double)dy - co->mdy) - FN(xq)((double)x - co->m, x, co));
    if (isfinite(r)) return (T)r;
    const double a = ((double)dy * FB_K - co->mdy * FB_K) -
                     FN(xq)((double)x * FB_K - co->m * FB_K, x, co);
    /* g = 0 (gamma 0): the exact dx is 0 for finite inputs however far the bracket overflows */
    if (co->g == 0.0 && isfinite(co->m) && isfinite(co->mdy) && isfinite(co->q) &&
        isfinite(co->inv))
        return (T)(copysign(0.0, co->g) * (a < 0.0 ? -1.0 : 1.0));
    return (T)fb_nan1(co->g * a * 0x1p32);
}

static FB_NOINLINE T FN(exact_apply1_any)(T x, const FN(coef) *co)
{
    return co->split ? FN(split_apply1)(x, co) : FN(exact_apply1)(x, co);
}

static FB_NOINLINE T FN(exact_grad1_any)(T dy, T x, const FN(coef) *co)
{
    return co->split ? FN(split_grad1)(dy, x, co) : FN(exact_grad1)(dy, x, co);
}
#undef FB_K

/* One output in FB_C (float64 for half storage: the float64 formula), rounded to T, the formulas
 * of the passes below.  Where the T result is not finite -- an
 * intermediate overflowed (float32 dy * g or (x - m) * s beyond FLT_MAX), or the exact value
 * itself is not finite -- the float64 formula is used instead: the same +-inf or NaN in the second
 * case, the representable result (rounded once) in the first.  Callers redo only the vectors
 * holding such a value, so finite results keep the bits of the vector pass. */
static FB_INLINE T FN(apply1)(T x, const FN(coef) *co)
{
    const T y = (T)((x - co->tm) * co->ts + co->tc);
    return isfinite(y) ? y : FN(exact_apply1)(x, co);
}

static FB_INLINE T FN(grad1)(T dy, T x, const FN(coef) *co)
{
    const T y = (T)(dy * co->tg + ((x - co->tm) * co->ts + co->tc));
    return isfinite(y) ? y : FN(exact_grad1)(dy, x, co);
}

/* ---- batch norm's fused epilogues: y = relu(t + r), and dy masked by that y --------------- */

/* torch.relu on CPU: +0 where t < 0, t itself elsewhere (NaN and -0.0 kept). */
static FB_INLINE T FN(relu1)(T t) { return t < 0 ? (T)0 : t; }

/* threshold_backward(dy, y, 0): +0 where y <= 0 (0, -0.0), dy elsewhere (also where y is NaN). */
static FB_INLINE T FN(relu_grad1)(T dy, T y) { return y <= 0 ? (T)0 : dy; }

#ifdef FB_MASK8
/* The mask of y[0..8) as bits (simd.h's layout): bit k set where relu_grad1 keeps dy.  float32
 * and float64 only: the half types' kernels are bound by their arithmetic, not by memory. */
static FB_INLINE unsigned FN(mask8)(const S *y) { return FB_MASK8(y); }
#endif

/* The forward's epilogue of output j, t (the unfused output, in T), returned in T for the
 * caller's one store (FB_ST): the unfused output as stored (FB_RT: t itself for float32/float64,
 * t rounded to the half type and widened back for float16/bfloat16), + res[j] (widened) in T
 * where has_res, then relu where `relu`.  So a half output is round(relu(unfused + r)), the add
 * and relu exact-then-rounded once, as NumPy and PyTorch compute half operations.  Callers pass
 * constant flags: each case is its own instantiation, and the unfused one is the plain store. */
static FB_INLINE T FN(fwd_epi1)(T t, const S *res, int64_t j, const int has_res, const int relu)
{
    if (has_res || relu) t = FB_RT(t);
    if (has_res) t = t + FB_LD(res[j]);
    return relu ? FN(relu1)(t) : t;
}

static FB_INLINE FB_TV FN(fwd_epi)(FB_TV t, const S *res, int64_t j, const int has_res,
                                   const int relu)
{
    if (has_res || relu) t = FB_SV_RT(t);
    if (has_res) t = FB_TV_ADD(t, FB_SV_LOAD(res + j));
    return relu ? FB_TV_RELU(t) : t;
}

#if FB_PARTS
/* fwd_epi over lanes [sh, sh + k) (FB_RUN_LOOP_P's PART): res read there alone */
static FB_INLINE FB_TV FN(fwd_epi_part)(FB_TV t, const S *res, int64_t j, int sh, int k,
                                        const int has_res, const int relu)
{
    if (has_res) t = FB_TV_ADD(t, FB_SV_LOAD_PART(res + j, sh, k));
    return relu ? FB_TV_RELU(t) : t;
}
#endif

/* ---- contiguous runs ---------------------------------------------------------------------- */

/* The two sums of both passes over a run, added into FB_LANES lanes (lane l takes the
 * i = l mod FB_LANES), with d = x - k and w = q if given (constant has_q), else w = d:
 *     s1 += w,  s2 += w * d
 * Statistics: q absent, k the shift, so s1 = sum(x - k), s2 = sum((x - k)^2).
 * Backward:   q = dy, k the mean,    so s1 = sum(dy),    s2 = sum(dy * (x - mean));
 *             with ym (has_y, pair_sums_fz), dy masked by it first (relu_grad1).
 * Lanes are visited FB_LG at a time -- as many as the registers hold -- in one pass each over
 * the run (which callers keep L1-sized); the order of the additions within a lane is the same
 * whatever FB_LG is, so every instruction set gives the same bits.  next (bytes, or 0): where the
 * next group's or channel's run lies from this one, prefetched into L2 as this one is read, so
 * that memory works while the sums compute from cache (x, q and ym). */
static FB_INLINE void FN(pair_sums_fz)(const S *FB_RESTRICT x, const S *FB_RESTRICT q,
                                       const int has_q, const S *FB_RESTRICT ym, const int has_y,
                                       int64_t n, double k, double s1[FB_LANES],
                                       double s2[FB_LANES], uintptr_t next)
{
    const fb_vd kv = fb_vd_set1(k);
    const int64_t full = n - n % FB_LANES;
    for (int g = 0; g < (full ? FB_LANES : 0); g += FB_LG) {   /* no whole round: the tail alone */
        fb_vd a[FB_NVG], b[FB_NVG];
        for (int j = 0; j < FB_NVG; j++)
            a[j] = fb_vd_load_f64(s1 + g + j * FB_VD_W), b[j] = fb_vd_load_f64(s2 + g + j * FB_VD_W);
        for (int64_t i = 0; i < full; i += FB_LANES) {
            if (g == 0) {   /* with the hardware prefetcher alone the pass takes ~1.5x a read */
                FB_PREFETCH_SPAN((uintptr_t)(x + i) + FB_PF_AHEAD, FB_LANES * (int)sizeof(S));
                if (has_q) FB_PREFETCH_SPAN((uintptr_t)(q + i) + FB_PF_AHEAD, FB_LANES * (int)sizeof(S));
                if (has_y)
                    FB_PREFETCH_SPAN((uintptr_t)(ym + i) + FB_PF_AHEAD, FB_LANES * (int)sizeof(S));
                if (next) {
                    const int span = FB_LANES * (int)sizeof(S);
                    FB_PREFETCH_SPAN_L2((uintptr_t)(x + i) + next, span);
                    if (has_q) FB_PREFETCH_SPAN_L2((uintptr_t)(q + i) + next, span);
                    if (has_y) FB_PREFETCH_SPAN_L2((uintptr_t)(ym + i) + next, span);
                }
            }
            /* With several passes, the first touches only the first FB_LG values of each lane
             * round: fetch the rest of the round too, so that memory sees one sequential stream
             * and the later passes hit L1 (NCHW backward's sums: 1.4x faster on Zen 3). */
            if (FB_LG < FB_LANES && g == 0) {
                for (int b = 64; b < FB_LANES * (int)sizeof(S); b += 64) {
                    fb_prefetch((const char *)(x + i) + b);
                    if (has_q) fb_prefetch((const char *)(q + i) + b);
                    if (has_y) fb_prefetch((const char *)(ym + i) + b);
                }
            }
            for (int j = 0; j < FB_NVG; j++) {
                const fb_vd d = fb_vd_sub(FB_VD_LOAD_T(x + i + g + j * FB_VD_W), kv);
                const int64_t at = i + g + j * FB_VD_W;
                const fb_vd qv = has_q ? FB_VD_LOAD_T(q + at) : d;
                const fb_vd w = has_y ? FB_VD_LOAD_RG(q + at, ym + at) : qv;
                /* the conversions and d take the adders: half of the statistics' sums, and all
                 * of the gradient's (two conversions), go to the multiply-add unit instead */
                a[j] = has_q || (j & 1) ? fb_vd_add_m(a[j], w) : fb_vd_add(a[j], w);
                b[j] = fb_vd_add_m(fb_vd_mul(w, d), b[j]);   /* = b + w * d, adder-free */
            }
        }
        for (int j = 0; j < FB_NVG; j++)
            fb_vd_store_f64(s1 + g + j * FB_VD_W, a[j]), fb_vd_store_f64(s2 + g + j * FB_VD_W, b[j]);
    }
#ifdef FB_VD_LOAD_T_HEAD
    /* the last, partial round in vectors too: added value by value, the next wide load of its
     * lanes waited for those stores (store forwarding) */
    for (int64_t i = full; i < n; i += FB_VD_W) {
        const int c = n - i < FB_VD_W ? (int)(n - i) : FB_VD_W;
        const fb_vd d = fb_vd_sub(FB_VD_LOAD_T_HEAD(x + i, c), kv);
        const fb_vd qv = has_q ? FB_VD_LOAD_T_HEAD(q + i, c) : d;
        const fb_vd w = has_y ? fb_vd_relu_grad(qv, FB_VD_LOAD_T_HEAD(ym + i, c)) : qv;
        double *a = s1 + (i - full), *b = s2 + (i - full);
        fb_vd_store_f64(a, fb_vd_add_head(fb_vd_load_f64(a), w, c));
        fb_vd_store_f64(b, fb_vd_add_head(fb_vd_load_f64(b), fb_vd_mul(w, d), c));
    }
#else
    for (int64_t i = full, l = 0; i < n; i++, l++) {
        const double d = (double)FB_LD(x[i]) - k;
        const double w =
            has_q ? (double)(has_y ? FN(relu_grad1)(FB_LD(q[i]), FB_LD(ym[i])) : FB_LD(q[i])) : d;
        s1[l] += w;
        s2[l] += w * d;
    }
#endif
}

#ifdef FB_VD_LOAD_T_HEAD
/* pair_sums_fz over one run from zeroed lanes, then fb_lanes_total's levels of whole vectors:
 * the same additions in the same order, with the lanes held in registers throughout (a short
 * run's lanes stored, reloaded and totalled cost more than its sums); fb_vd_total of *a and *b
 * gives fb_lanes_total's bits.  nv (a constant): the lanes' vectors a run reaches, FB_LANES /
 * FB_VD_W or, for n <= nv FB_VD_W, a half or a quarter of them; the others would stay +0, and
 * adding them is left out: a lane's sum is never -0 (it started +0), so adding +0 keeps it. */
static FB_INLINE void FN(run_pair_lanes)(const S *FB_RESTRICT x, const S *FB_RESTRICT q,
                                         const int has_q, int64_t n, double k, fb_vd *pa,
                                         fb_vd *pb, uintptr_t next, const int nv)
{
    enum { NV = FB_LANES / FB_VD_W };
    const fb_vd kv = fb_vd_set1(k);
    fb_vd a[NV], b[NV];
    for (int j = 0; j < nv; j++) a[j] = b[j] = fb_vd_set1(0.0);
    const int64_t full = nv == NV ? n - n % FB_LANES : 0;
    for (int64_t i = 0; i < full; i += FB_LANES) {
        FB_PREFETCH_SPAN((uintptr_t)(x + i) + FB_PF_AHEAD, FB_LANES * (int)sizeof(S));
        if (has_q) FB_PREFETCH_SPAN((uintptr_t)(q + i) + FB_PF_AHEAD, FB_LANES * (int)sizeof(S));
        if (next) {
            FB_PREFETCH_SPAN_L2((uintptr_t)(x + i) + next, FB_LANES * (int)sizeof(S));
            if (has_q) FB_PREFETCH_SPAN_L2((uintptr_t)(q + i) + next, FB_LANES * (int)sizeof(S));
        }
        for (int j = 0; j < NV; j++) {
            const fb_vd d = fb_vd_sub(FB_VD_LOAD_T(x + i + j * FB_VD_W), kv);
            const fb_vd w = has_q ? FB_VD_LOAD_T(q + i + j * FB_VD_W) : d;
            a[j] = fb_vd_add_m(a[j], w);
            b[j] = fb_vd_add_m(fb_vd_mul(w, d), b[j]);
        }
    }
    const int64_t rest = n - full;
    for (int j = 0; j < nv; j++) {   /* the last round as pair_sums_fz's (c = 0: nothing read) */
        const int64_t i = j * FB_VD_W < rest ? full + j * FB_VD_W : 0;
        const int c = rest - j * FB_VD_W >= FB_VD_W ? FB_VD_W
                      : rest > j * FB_VD_W          ? (int)(rest - j * FB_VD_W)
                                                    : 0;
        const fb_vd d = fb_vd_sub(FB_VD_LOAD_T_HEAD(x + i, c), kv);
        const fb_vd w = has_q ? FB_VD_LOAD_T_HEAD(q + i, c) : d;
        a[j] = fb_vd_add_head(a[j], w, c);
        b[j] = fb_vd_add_head(b[j], fb_vd_mul(w, d), c);
    }
    for (int h = nv / 2; h >= 1; h /= 2)
        for (int j = 0; j < h; j++)
            a[j] = fb_vd_add(a[j], a[j + h]), b[j] = fb_vd_add(b[j], b[j + h]);
    *pa = a[0], *pb = b[0];
}

/* run_pair_lanes with the fewest vectors that hold a run of n values */
#define FB_PAIR_LANES(x, q, has_q, n, k, pa, pb, next)                                          \
    do {                                                                                         \
        enum { NV_ = FB_LANES / FB_VD_W };                                                       \
        if (NV_ >= 4 && (n) <= FB_LANES / 4)                                                     \
            FN(run_pair_lanes)(x, q, has_q, n, k, pa, pb, next, NV_ >= 4 ? NV_ / 4 : NV_);       \
        else if (NV_ >= 2 && (n) <= FB_LANES / 2)                                                \
            FN(run_pair_lanes)(x, q, has_q, n, k, pa, pb, next, NV_ >= 2 ? NV_ / 2 : NV_);       \
        else                                                                                     \
            FN(run_pair_lanes)(x, q, has_q, n, k, pa, pb, next, NV_);                            \
    } while (0)

/* The two lane totals of one run (run_pair_lanes, then fb_vd_total: fb_lanes_total's bits). */
static FB_INLINE void FN(run_pair_totals)(const S *FB_RESTRICT x, const S *FB_RESTRICT q,
                                          const int has_q, int64_t n, double k, double *t1,
                                          double *t2, uintptr_t next)
{
    fb_vd a, b;
    FB_PAIR_LANES(x, q, has_q, n, k, &a, &b, next);
    *t1 = fb_vd_total(a), *t2 = fb_vd_total(b);   /* and its levels within one */
}

/* run_pair_totals of m consecutive runs of n values (run j at x + j n and q + j n, shifted by
 * k[j]) into t1[j] and t2[j], the same bits, FB_VD_W runs' last levels at once (fb_vd_totals). */
static FB_INLINE void FN(runs_pair_totals)(const S *x, const S *q, const int has_q, int64_t n,
                                           int64_t m, const double *k, double *t1, double *t2,
                                           uintptr_t next)
{
    int64_t j = 0;
    for (; j + FB_VD_W <= m; j += FB_VD_W) {
        fb_vd a[FB_VD_W], b[FB_VD_W];
        for (int i = 0; i < FB_VD_W; i++)
            FB_PAIR_LANES(x + (j + i) * n, has_q ? q + (j + i) * n : NULL, has_q, n, k[j + i],
                          &a[i], &b[i], next);
        fb_vd_store_f64(t1 + j, fb_vd_totals(a)), fb_vd_store_f64(t2 + j, fb_vd_totals(b));
    }
    for (; j < m; j++)
        FN(run_pair_totals)(x + j * n, has_q ? q + j * n : NULL, has_q, n, k[j], &t1[j], &t2[j],
                            next);
}
#endif

#ifdef FB_VN_LOAD_T
/* pair_sums_fz's statistics (no q) in half-width vectors, every lane in registers at once: the
 * same lanes, additions and order, so the same bits.  Where fb_narrow_sums (cpu.h).  The whole
 * lane rounds of a run of n values, into the lanes a, b. */
static FB_INLINE void FN(stat_lanes_narrow)(const S *FB_RESTRICT x, int64_t n, double k,
                                            fb_vn a[FB_LANES / FB_VN_W],
                                            fb_vn b[FB_LANES / FB_VN_W], uintptr_t next)
{
    const fb_vn kv = fb_vn_set1(k);
    const int64_t full = n - n % FB_LANES;
    for (int64_t i = 0; i < full; i += FB_LANES) {
        FB_PREFETCH_SPAN((uintptr_t)(x + i) + FB_PF_AHEAD, FB_LANES * (int)sizeof(S));
        if (next) FB_PREFETCH_SPAN_L2((uintptr_t)(x + i) + next, FB_LANES * (int)sizeof(S));
        for (int j = 0; j < FB_LANES / FB_VN_W; j++) {
            const fb_vn d = fb_vn_sub(FB_VN_LOAD_T(x + i + j * FB_VN_W), kv);
            a[j] = j & 1 ? fb_vn_add_m(a[j], d) : fb_vn_add(a[j], d);
            b[j] = fb_vn_add_m(fb_vn_mul(d, d), b[j]);
        }
    }
}

/* stat_lanes_narrow added to the lanes s1, s2, and the partial last round */
static void FN(stat_sums_narrow)(const S *FB_RESTRICT x, int64_t n, double k, double s1[FB_LANES],
                                 double s2[FB_LANES], uintptr_t next)
{
    fb_vn a[FB_LANES / FB_VN_W], b[FB_LANES / FB_VN_W];
    for (int j = 0; j < FB_LANES / FB_VN_W; j++)
        a[j] = fb_vn_load_f64(s1 + j * FB_VN_W), b[j] = fb_vn_load_f64(s2 + j * FB_VN_W);
    FN(stat_lanes_narrow)(x, n, k, a, b, next);
    for (int j = 0; j < FB_LANES / FB_VN_W; j++)
        fb_vn_store_f64(s1 + j * FB_VN_W, a[j]), fb_vn_store_f64(s2 + j * FB_VN_W, b[j]);
    for (int64_t i = n - n % FB_LANES, l = 0; i < n; i++, l++) {
        const double d = (double)FB_LD(x[i]) - k;
        s1[l] += d;
        s2[l] += d * d;
    }
}
#endif

static FB_INLINE void FN(run_pair_sums)(const S *FB_RESTRICT x, const S *FB_RESTRICT q,
                                        const int has_q, int64_t n, double k,
                                        double s1[FB_LANES], double s2[FB_LANES], uintptr_t next)
{
#ifdef FB_VN_LOAD_T
    if (!has_q && fb_narrow_sums) {
        FN(stat_sums_narrow)(x, n, k, s1, s2, next);
        return;
    }
#endif
    FN(pair_sums_fz)(x, q, has_q, NULL, 0, n, k, s1, s2, next);
}

/* y = (x - m) * s + c over a run, then fwd_epi1 (residual res, relu; constant flags).  y may be
 * x itself (in place: each element is read before it is written, and nothing is read again), so
 * neither pointer is restrict; the coefficients are copied to locals so that stores through y
 * need not reload them.  pf (or NULL): the next run of the same length, prefetched (into L2
 * alone where pf_l2: batch norm's next channel, read after this one's whole slab). */
static FB_INLINE void FN(run_apply_fz)(const S *x, S *y, int64_t n, const FN(coef) *co, int stream,
                                       const S *res, const int has_res, const int relu, const S *pf,
                                       const int pf_l2, int ends)
{
    if (co->exact) {
        for (int64_t i = 0; i < n; i++)
            y[i] = FB_ST(FN(fwd_epi1)(FN(exact_apply1_any)(FB_LD(x[i]), co), res, i, has_res,
                                      relu));
        return;
    }
    const FB_CV m = FB_CV_SET1(co->tm), s = FB_CV_SET1(co->ts), c = FB_CV_SET1(co->tc);
#define FB_APPLY_AT(o) FB_CV_ADD(FB_CV_MUL(FB_CV_SUB(FB_CV_LOAD_S(x + (o)), m), s), c)
#define FB_APPLY(i) FB_CV_TO_TV(FB_APPLY_AT, i)
#define FB_APPLY1(j) FB_ST(FN(fwd_epi1)(FN(apply1)(FB_LD(x[j]), co), res, j, has_res, relu))
/* two vectors a step, one finiteness test; a pair with a non-finite value is redone element by
 * element (apply1), in place too: each element is read before it is written */
#define FB_APPLY_STORE2(STORE, i)                                                                \
    do {                                                                                         \
        if (pf && pf_l2) FB_PREFETCH_SPAN_L2(pf + (i), 2 * FB_TV_W * (int)sizeof(S));          \
        else if (pf) FB_PREFETCH_SPAN(pf + (i), 2 * FB_TV_W * (int)sizeof(S));                 \
        const FB_TV r0_ = FB_APPLY(i), r1_ = FB_APPLY((i) + FB_TV_W);                            \
        if (FB_TV_FINITE2(r0_, r1_)) {                                                           \
            STORE(y + (i), FN(fwd_epi)(r0_, res, (i), has_res, relu));                           \
            STORE(y + (i) + FB_TV_W, FN(fwd_epi)(r1_, res, (i) + FB_TV_W, has_res, relu));       \
        } else for (int64_t j_ = (i); j_ < (i) + 2 * FB_TV_W; j_++) y[j_] = FB_APPLY1(j_);      \
    } while (0)
#define FB_APPLY_ONE(j) y[j] = FB_APPLY1(j)
#if FB_PARTS
#define FB_APPLY_PART(LD, ST, i, sh, k)                                                          \
    do {                                                                                         \
        if (pf && pf_l2) FB_PREFETCH_SPAN_L2(pf + (i), (k) * (int)sizeof(S));                    \
        else if (pf) FB_PREFETCH_SPAN(pf + (i), (k) * (int)sizeof(S));                           \
        const FB_TV t_ = FB_CV_ADD(FB_CV_MUL(FB_CV_SUB(LD(x + (i), sh, k), m), s), c);           \
        if (FB_TV_FINITE(t_))                                                                    \
            ST(y + (i), FN(fwd_epi_part)(t_, res, (i), sh, k, has_res, relu), sh, k);            \
        else for (int64_t j_ = (i); j_ < (i) + (k); j_++) y[j_] = FB_APPLY1(j_);                \
    } while (0)
#else
#define FB_APPLY_PART FB_NO_PART
#endif
    FB_RUN_LOOP_P(stream, y, n, FB_APPLY_ONE, FB_APPLY_STORE2, FB_APPLY_PART, FB_PARTS, ends,
                  FB_RUN_PLACE(y, x, res), 1);
#undef FB_APPLY_PART
#undef FB_APPLY_ONE
#undef FB_APPLY_STORE2
#undef FB_APPLY1
#undef FB_APPLY
#undef FB_APPLY_AT
}

/* run_apply with batch norm's epilogue (res may be NULL): one branch per run, each case its own
 * instantiation, so the unfused loop is run_apply's. */
static inline void FN(run_apply_fused)(const S *x, S *y, int64_t n, const FN(coef) *co,
                                       int stream, const S *res, int relu, const S *pf, int ends)
{
    if (res && relu) FN(run_apply_fz)(x, y, n, co, stream, res, 1, 1, pf, 1, ends);
    else if (res) FN(run_apply_fz)(x, y, n, co, stream, res, 1, 0, pf, 1, ends);
    else if (relu) FN(run_apply_fz)(x, y, n, co, stream, NULL, 0, 1, pf, 1, ends);
    else FN(run_apply_fz)(x, y, n, co, stream, NULL, 0, 0, pf, 1, ends);
}

/* dx = g * tg + ((x - m) * s + c) over a run, g = dy, or with ym (has_y) dy masked by the fused
 * forward's output (relu_grad1); with dres (has_dres) g is stored there too.  `stream` as in
 * run_apply; pfx, pfg (or NULL): the next run's x and dy (and y), prefetched into L2.  dx may be dy
 * itself (in place, elementwise), so no pointer is restrict. */
static FB_INLINE void FN(run_grad_apply_fz)(const S *dy, const S *x, S *dx, int64_t n,
                                            const FN(coef) *co, int stream, const S *ym,
                                            const int has_y, S *dres, const int has_dres,
                                            const S *pfx, const S *pfg, int ends)
{
#define FB_G1(j) (has_y ? FN(relu_grad1)(FB_LD(dy[j]), FB_LD(ym[j])) : FB_LD(dy[j]))
#define FB_GRAD1(j, EXPR)                                                                        \
    do {                                                                                         \
        const T g1_ = FB_G1(j);                                                                  \
        dx[j] = FB_ST(EXPR);                                                                     \
        if (has_dres) dres[j] = FB_ST(g1_);   /* dy or 0: exact */                               \
    } while (0)
    if (co->exact) {
        for (int64_t i = 0; i < n; i++) FB_GRAD1(i, FN(exact_grad1_any)(g1_, FB_LD(x[i]), co));
        return;
    }
    const FB_CV m = FB_CV_SET1(co->tm), g = FB_CV_SET1(co->tg);
    const FB_CV s = FB_CV_SET1(co->ts), c = FB_CV_SET1(co->tc);
    /* the next run's y, prefetched with its x and dy: ym shares x's offsets (batch norm's slabs) */
    const S *pfy = has_y && pfx ? ym + (pfx - x) : NULL;
#define FB_GV(i) (has_y ? FB_TV_RELU_GRAD(FB_SV_LOAD(dy + (i)), FB_SV_LOAD(ym + (i)))         \
                        : FB_SV_LOAD(dy + (i)))
#define FB_GC(o) (has_y ? FB_CV_RELU_GRAD(FB_CV_LOAD_S(dy + (o)), FB_CV_LOAD_S(ym + (o)))     \
                        : FB_CV_LOAD_S(dy + (o)))
#define FB_GRAD_AT(o) FB_CV_ADD(FB_CV_MUL(FB_GC(o), g),                                          \
                                FB_CV_ADD(FB_CV_MUL(FB_CV_SUB(FB_CV_LOAD_S(x + (o)), m), s), c))
#define FB_GRAD_STORE2(STORE, i)                                                                 \
    do {                                                                                         \
        /* g read before dx (which may be dy) is written; two vectors, one finiteness test */    \
        if (pfx) {                                                                               \
            FB_PREFETCH_SPAN_L2(pfx + (i), 2 * FB_TV_W * (int)sizeof(S));                       \
            FB_PREFETCH_SPAN_L2(pfg + (i), 2 * FB_TV_W * (int)sizeof(S));                       \
            if (has_y) FB_PREFETCH_SPAN_L2(pfy + (i), 2 * FB_TV_W * (int)sizeof(S));            \
        }                                                                                        \
        const FB_TV g0_ = FB_GV(i), g1_ = FB_GV((i) + FB_TV_W);                                  \
        const FB_TV r0_ = FB_CV_TO_TV(FB_GRAD_AT, i), r1_ = FB_CV_TO_TV(FB_GRAD_AT, (i) + FB_TV_W); \
        if (FB_TV_FINITE2(r0_, r1_)) STORE(dx + (i), r0_), STORE(dx + (i) + FB_TV_W, r1_);      \
        else for (int64_t j_ = (i); j_ < (i) + 2 * FB_TV_W; j_++)                               \
            dx[j_] = FB_ST(FN(grad1)(FB_G1(j_), FB_LD(x[j_]), co));                              \
        if (has_dres) FB_SV_STORE(dres + (i), g0_), FB_SV_STORE(dres + (i) + FB_TV_W, g1_);      \
    } while (0)
#define FB_GRAD_ONE(j) FB_GRAD1(j, FN(grad1)(g1_, FB_LD(x[j]), co))
#if FB_PARTS
#define FB_GRAD_PART(LD, ST, i, sh, k)                                                           \
    do {                                                                                         \
        if (pfx) {                                                                               \
            FB_PREFETCH_SPAN_L2(pfx + (i), (k) * (int)sizeof(S));                                \
            FB_PREFETCH_SPAN_L2(pfg + (i), (k) * (int)sizeof(S));                                \
            if (has_y) FB_PREFETCH_SPAN_L2(pfy + (i), (k) * (int)sizeof(S));                     \
        }                                                                                        \
        const FB_TV dy_ = LD(dy + (i), sh, k);                                                   \
        const FB_TV g_ = has_y ? FB_TV_RELU_GRAD(dy_, LD(ym + (i), sh, k)) : dy_;                \
        const FB_TV xh_ = FB_CV_ADD(FB_CV_MUL(FB_CV_SUB(LD(x + (i), sh, k), m), s), c);          \
        const FB_TV t_ = FB_CV_ADD(FB_CV_MUL(g_, g), xh_);                                       \
        if (FB_TV_FINITE(t_)) ST(dx + (i), t_, sh, k);                                           \
        else for (int64_t j_ = (i); j_ < (i) + (k); j_++)                                       \
            dx[j_] = FB_ST(FN(grad1)(FB_G1(j_), FB_LD(x[j_]), co));                              \
        if (has_dres) FB_SV_STORE_PART(dres + (i), g_, sh, k);   /* dres is never streamed */    \
    } while (0)
#else
#define FB_GRAD_PART FB_NO_PART
#endif
    FB_RUN_LOOP_P(stream, dx, n, FB_GRAD_ONE, FB_GRAD_STORE2, FB_GRAD_PART, FB_PARTS, ends,
                  FB_RUN_PLACE(dx, dy, x, ym), 1);
#undef FB_GRAD_PART
#undef FB_GRAD_ONE
#undef FB_GRAD_STORE2
#undef FB_GRAD_AT
#undef FB_GC
#undef FB_GV
#undef FB_GRAD1
#undef FB_G1
}

static void FN(run_grad_apply)(const S *dy, const S *x, S *dx, int64_t n, const FN(coef) *co,
                               int stream, const S *pfx, const S *pfg)
{
    FN(run_grad_apply_fz)(dy, x, dx, n, co, stream, NULL, 0, NULL, 0, pfx, pfg, 0);
}

/* run_grad_apply masked by ym and writing dres (either may be NULL), as run_apply_fused. */
static inline void FN(run_grad_apply_fused)(const S *dy, const S *x, S *dx, int64_t n,
                                            const FN(coef) *co, int stream, const S *ym, S *dres,
                                            const S *pfx, const S *pfg, int ends)
{
#define FB_GRAD_FZ(ym_, has_y, dres_, has_dres, ends_) \
    FN(run_grad_apply_fz)(dy, x, dx, n, co, stream, ym_, has_y, dres_, has_dres, pfx, pfg, ends_)
    if (ym && dres) FB_GRAD_FZ(ym, 1, dres, 1, ends);
    else if (ym) FB_GRAD_FZ(ym, 1, NULL, 0, ends);
    else if (dres) FB_GRAD_FZ(NULL, 0, dres, 1, ends);
    else if (ends) FB_GRAD_FZ(NULL, 0, NULL, 0, 1);
    else FN(run_grad_apply)(dy, x, dx, n, co, stream, pfx, pfg);
#undef FB_GRAD_FZ
}

/* Where a row segment's coefficients come from, for the elements redone in float64.  Element v
 * of the segment is at place (phase + v) % period of its period (v if period is 0).  Batch norm
 * (coefs): that place is virtual channel v0 + place, real channel (v0 + place) / inner.  The
 * core's columns layout (coefs NULL): its float64 coefficients are em[place], es[place],
 * eg[place], ec[place] (those of make_coef; a split channel is `exact` and never comes here).
 * Batch norm's fused arrays, indexed as the segment (NULL, 0: none): forward res, relu
 * (fwd_epi1); backward ym (dy masked by it, relu_grad1) and dres (receives the masked dy); mbits
 * (or NULL): ym's mask as bits (mask8), element j of the segment at bit mb0 + j, read by the
 * vector loop instead of ym. */
typedef struct {
    const FN(coef) *coefs;
    int64_t v0, phase, period, inner;
    const double *em, *es, *eg, *ec;
    const S *res;
    int relu;
    const S *ym;
    S *dres;
    const unsigned char *mbits;
    int64_t mb0;
} FN(row_src);

/* Elements [v, v + n) of a row segment by apply1/grad1 (the rare non-finite vectors), with the
 * fused epilogue (dres is left to the caller). */
static void FN(row_redo)(const S *xr, const S *gr, S *yr, int64_t v, int64_t n, const FN(row_src) *src)
{
    for (int64_t j = v; j < v + n; j++) {
        const T g = gr && src->ym ? FN(relu_grad1)(FB_LD(gr[j]), FB_LD(src->ym[j]))
                    : gr          ? FB_LD(gr[j])
                                  : 0;
        const T x = FB_LD(xr[j]);
        T t;
        if (src->coefs) {
            const FN(coef) *co = &src->coefs[(src->v0 + (src->phase + j) % src->period) / src->inner];
            t = gr ? FN(grad1)(g, x, co) : FN(apply1)(x, co);
        } else {
            const int64_t q = src->period ? (src->phase + j) % src->period : j;
            const FN(coef) co = FN(make_coef)(src->em[q], src->es[q], gr ? src->eg[q] : 0.0,
                                              src->ec[q]);
            t = gr ? FN(grad1)(g, x, &co) : FN(apply1)(x, &co);
        }
        yr[j] = FB_ST(gr ? t : FN(fwd_epi1)(t, src->res, j, src->res != NULL, src->relu));
    }
}

/* The FB_CV of a per-channel coefficient array a at element o of a segment whose element 0 is
 * element src->v0 of channel 0, each channel src->inner >= its width long: one channel's value,
 * or where the vector reaches the next channel, both (a[c + 1] is read either way).  cmag:
 * ceil(2^32 / inner), exact for v0 + o < 2^32 / inner. */
static FB_INLINE FB_CV FN(chan_cv)(const FB_C *a, const FN(row_src) *src, uint64_t cmag,
                                   int64_t o)
{
    const uint64_t at = (uint64_t)(src->v0 + o), c = at * cmag >> 32;   /* at / inner */
    return FB_CV_SPLIT(a[c], a[c + 1], (int64_t)((c + 1) * (uint64_t)src->inner - at));
}

/* One row segment: y = (x - tm) * ts + tc, or with dy: y = g * tg + ((x - tm) * ts + tc), the
 * coefficients per element (bych: per channel, chan_cv's), with batch norm's fused epilogues of src
 * (constant flags: bwd for the gradient, has_res, relu forward, has_y, has_dres backward; see
 * run_apply_fz and run_grad_apply_fz); non-temporal stores where `stream` and aligned.  yr may
 * be xr or gr itself (in place, elementwise), so those three are not restrict; the coefficients
 * (scratch of the kernel) are.  Values that are not finite in T are redone by row_redo (see
 * apply1). */
static FB_INLINE void FN(row_apply_fz)(const S *xr, const S *gr, S *yr,
                                       int64_t w, const FB_C *FB_RESTRICT tm,
                                       const FB_C *FB_RESTRICT ts, const FB_C *FB_RESTRICT tg,
                                       const FB_C *FB_RESTRICT tc, int stream,
                                       const FN(row_src) *src, const int bwd, const int has_res,
                                       const int relu, const int has_y, const int has_dres,
                                       const int bych, uint64_t cmag)
{
    const S *res = src->res, *ym = src->ym;
    S *dres = src->dres;
    const unsigned char *mbits = src->mbits;
    const int64_t mb0 = src->mb0;
#define FB_ROW_C1(a, v) (bych ? (a)[(src->v0 + (v)) / src->inner] : (a)[v])
#define FB_ROW_C(a, o) (bych ? FN(chan_cv)((a), src, cmag, (o)) : FB_CV_LOAD((a) + (o)))
#define FB_ROW_T(v) (FB_LD(xr[v]) - FB_ROW_C1(tm, v)) * FB_ROW_C1(ts, v) + FB_ROW_C1(tc, v)
#define FB_ROW_AT(o) FB_CV_ADD(FB_CV_MUL(FB_CV_SUB(FB_CV_LOAD_S(xr + (o)), FB_ROW_C(tm, o)),    \
                                         FB_ROW_C(ts, o)), FB_ROW_C(tc, o))
#define FB_ROW_V(v) FB_CV_TO_TV(FB_ROW_AT, v)
/* has_y 2: ym's mask from mbits */
#define FB_ROW_GV(v)                                                                             \
    (has_y == 2 ? FB_TV_BITS_GRAD(FB_SV_LOAD(gr + (v)), fb_mask_at(mbits, mb0 + (v)))           \
     : has_y    ? FB_TV_RELU_GRAD(FB_SV_LOAD(gr + (v)), FB_SV_LOAD(ym + (v)))                   \
                : FB_SV_LOAD(gr + (v)))
#define FB_ROW_GC(o)                                                                             \
    (has_y == 2 ? FB_CV_BITS_GRAD(FB_CV_LOAD_S(gr + (o)), fb_mask_at(mbits, mb0 + (o)))         \
     : has_y    ? FB_CV_RELU_GRAD(FB_CV_LOAD_S(gr + (o)), FB_CV_LOAD_S(ym + (o)))               \
                : FB_CV_LOAD_S(gr + (o)))
#define FB_ROW_GAT(o) FB_CV_ADD(FB_CV_MUL(FB_ROW_GC(o), FB_ROW_C(tg, o)), FB_ROW_AT(o))
#define FB_ROW_G1(v) (has_y ? FN(relu_grad1)(FB_LD(gr[v]), FB_LD(ym[v])) : FB_LD(gr[v]))
/* two vectors a step, one finiteness test (a pair with a non-finite value is redone) */
#define FB_ROW_PUT2(STORE, v)                                                                    \
    do {                                                                                         \
        const FB_TV r0_ = FB_ROW_V(v), r1_ = FB_ROW_V((v) + FB_TV_W);                            \
        if (FB_TV_FINITE2(r0_, r1_)) {                                                           \
            STORE(yr + (v), FN(fwd_epi)(r0_, res, (v), has_res, relu));                          \
            STORE(yr + (v) + FB_TV_W, FN(fwd_epi)(r1_, res, (v) + FB_TV_W, has_res, relu));      \
        } else FN(row_redo)(xr, gr, yr, (v), 2 * FB_TV_W, src);                                  \
    } while (0)
#define FB_ROW_ONE(v)                                                                            \
    do {                                                                                         \
        const T r_ = (T)(FB_ROW_T(v));                                                           \
        if (isfinite(r_)) yr[v] = FB_ST(FN(fwd_epi1)(r_, res, (v), has_res, relu));              \
        else FN(row_redo)(xr, gr, yr, (v), 1, src);                                              \
    } while (0)
#define FB_ROW_AHEAD(p, v)                                                                       \
    do {                                                                                         \
        if (ahead)                                                                               \
            FB_PREFETCH_SPAN_L2((uintptr_t)((p) + (v)) + FB_GRAD_APPLY_AHEAD,                    \
                                2 * FB_TV_W * (int)sizeof(S));                                   \
    } while (0)
#define FB_ROW_GPUT2(STORE, v)                                                                   \
    do {                                                                                         \
        /* read before yr (which may be gr) is written */                                        \
        FB_ROW_AHEAD(xr, v);                                                                     \
        FB_ROW_AHEAD(gr, v);                                                                     \
        if (has_y == 1) FB_ROW_AHEAD(ym, v);                                                     \
        const FB_TV g0_ = FB_ROW_GV(v), g1_ = FB_ROW_GV((v) + FB_TV_W);                          \
        const FB_TV r0_ = FB_CV_TO_TV(FB_ROW_GAT, v), r1_ = FB_CV_TO_TV(FB_ROW_GAT, (v) + FB_TV_W); \
        if (FB_TV_FINITE2(r0_, r1_)) STORE(yr + (v), r0_), STORE(yr + (v) + FB_TV_W, r1_);      \
        else FN(row_redo)(xr, gr, yr, (v), 2 * FB_TV_W, src);                                    \
        if (has_dres) FB_SV_STORE(dres + (v), g0_), FB_SV_STORE(dres + (v) + FB_TV_W, g1_);      \
    } while (0)
#define FB_ROW_GONE(v)                                                                           \
    do {                                                                                         \
        const T g_ = FB_ROW_G1(v);                                                               \
        const T r_ = (T)(g_ * FB_ROW_C1(tg, v) + (FB_ROW_T(v)));                                 \
        if (isfinite(r_)) yr[v] = FB_ST(r_);                                                     \
        else FN(row_redo)(xr, gr, yr, (v), 1, src);                                              \
        if (has_dres) dres[v] = FB_ST(g_);                                                       \
    } while (0)
#if FB_PARTS
#define FB_ROW_PC(LD, a, v, sh, k)                                                               \
    (bych ? FN(chan_cv)((a), src, cmag, (v) - (sh)) : LD((a) + (v), sh, k))
#define FB_ROW_PAT(LD, v, sh, k)                                                                 \
    FB_CV_ADD(FB_CV_MUL(FB_CV_SUB(LD(xr + (v), sh, k), FB_ROW_PC(LD, tm, v, sh, k)),             \
                        FB_ROW_PC(LD, ts, v, sh, k)),                                            \
              FB_ROW_PC(LD, tc, v, sh, k))
#define FB_ROW_PART(LD, ST, v, sh, k)                                                            \
    do {                                                                                         \
        const FB_TV t_ = FB_ROW_PAT(LD, v, sh, k);                                               \
        if (FB_TV_FINITE(t_))                                                                    \
            ST(yr + (v), FN(fwd_epi_part)(t_, res, (v), sh, k, has_res, relu), sh, k);           \
        else FN(row_redo)(xr, gr, yr, (v), (k), src);                                            \
    } while (0)
#define FB_ROW_GPART(LD, ST, v, sh, k)                                                           \
    do {                                                                                         \
        FB_ROW_AHEAD(xr, v);                                                                     \
        FB_ROW_AHEAD(gr, v);                                                                     \
        if (has_y == 1) FB_ROW_AHEAD(ym, v);                                                     \
        const FB_TV gl_ = LD(gr + (v), sh, k);                                                   \
        const FB_TV g_ = has_y == 2 ? FB_TV_BITS_GRAD(gl_, fb_mask_at(mbits, mb0 + (v)) << (sh)) \
                         : has_y    ? FB_TV_RELU_GRAD(gl_, LD(ym + (v), sh, k))                  \
                                    : gl_;                                                       \
        const FB_TV t_ =                                                                         \
            FB_CV_ADD(FB_CV_MUL(g_, FB_ROW_PC(LD, tg, v, sh, k)), FB_ROW_PAT(LD, v, sh, k));     \
        if (FB_TV_FINITE(t_)) ST(yr + (v), t_, sh, k);                                           \
        else FN(row_redo)(xr, gr, yr, (v), (k), src);                                            \
        if (has_dres) FB_SV_STORE_PART(dres + (v), g_, sh, k);   /* dres is never streamed */    \
    } while (0)
#else
#define FB_ROW_PART FB_NO_PART
#define FB_ROW_GPART FB_NO_PART
#endif
    const int place = stream ? FB_RUN_PLACE(yr, xr, gr, res, ym, tm, ts, tg, tc) : 0;
    const int ahead = fb_grad_prefetch;
    if (!bwd)
        FB_RUN_LOOP_P(stream, yr, w, FB_ROW_ONE, FB_ROW_PUT2, FB_ROW_PART, FB_PARTS, 0, place, 1);
    else
        FB_RUN_LOOP_P(stream, yr, w, FB_ROW_GONE, FB_ROW_GPUT2, FB_ROW_GPART, FB_PARTS, 0, place,
                      1);
#undef FB_ROW_PART
#undef FB_ROW_GPART
#undef FB_ROW_PAT
#undef FB_ROW_PC
#undef FB_ROW_C
#undef FB_ROW_C1
#undef FB_ROW_T
#undef FB_ROW_AT
#undef FB_ROW_V
#undef FB_ROW_GV
#undef FB_ROW_AHEAD
#undef FB_ROW_GC
#undef FB_ROW_GAT
#undef FB_ROW_G1
#undef FB_ROW_PUT2
#undef FB_ROW_ONE
#undef FB_ROW_GPUT2
#undef FB_ROW_GONE
}

/* row_apply_fz for gr NULL (forward) or not, and src's fused arrays: one branch per segment,
 * each case its own instantiation. */
static FB_INLINE void FN(row_apply)(const S *xr, const S *gr, S *yr,
                                    int64_t w, const FB_C *FB_RESTRICT tm, const FB_C *FB_RESTRICT ts,
                                    const FB_C *FB_RESTRICT tg, const FB_C *FB_RESTRICT tc, int stream,
                                    const FN(row_src) *src)
{
#define FB_ROW_FZ(bwd, has_res, relu, has_y, has_dres)                                          \
    FN(row_apply_fz)(xr, gr, yr, w, tm, ts, tg, tc, stream, src, bwd, has_res, relu, has_y,      \
                     has_dres, 0, 0)
    if (!gr) {
        if (src->res && src->relu) FB_ROW_FZ(0, 1, 1, 0, 0);
        else if (src->res) FB_ROW_FZ(0, 1, 0, 0, 0);
        else if (src->relu) FB_ROW_FZ(0, 0, 1, 0, 0);
        else FB_ROW_FZ(0, 0, 0, 0, 0);
    } else {
#ifdef FB_MASK8
        if (src->mbits && src->dres) FB_ROW_FZ(1, 0, 0, 2, 1);
        else if (src->mbits) FB_ROW_FZ(1, 0, 0, 2, 0);
        else
#endif
        if (src->ym && src->dres) FB_ROW_FZ(1, 0, 0, 1, 1);
        else if (src->ym) FB_ROW_FZ(1, 0, 0, 1, 0);
        else if (src->dres) FB_ROW_FZ(1, 0, 0, 0, 1);
        else FB_ROW_FZ(1, 0, 0, 0, 0);
    }
#undef FB_ROW_FZ
}

#undef FB_PAIR_LANES
#undef FN
#undef T
#undef S
