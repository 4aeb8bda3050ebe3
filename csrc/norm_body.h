/*
 * norm_body.h -- the normalization core for one element type.
 *
 * Included by norm_kernels.c once per dtype (dtype_f32.h / dtype_f64.h), after norm_common.h;
 * norm.h has the layout, the guarantees and the error bound.
 *
 * Four pieces, each written once: group_moments (shifted float64 sums per segment, Chan-merged
 * in order: the statistics of batch norm's slab path; a block's groups of one segment take its
 * fold as fb_seg_moments, branch-free), the apply (y = (x - mh) * s + c', the
 * mean split as mh + mlo and mlo folded into c', as batch norm's elementwise pass), the gradient
 * sums (sum gamma dy and sum gamma dy (x - mean) per group, sum dy and sum dy xhat per channel)
 * and the gradient apply (dx = dy g + ((x - mh) s + c')).  coef, make_coef, run_pair_sums,
 * run_apply, run_grad_apply and row_apply are batch norm's (norm_common.h, included before this
 * file).  Where x - mh could overflow in T (|mean| >= 2^102) the float64 formula is used, and a
 * vector whose T result is not finite is redone by element in float64 (apply1, grad1), as batch
 * norm's.
 */
#define FN(name) FB_CAT3(name, _, FB_DT)
#define T FB_T
#define S FB_S   /* the tensors' storage type: read and written through FB_LD / FB_ST */

/* One gradient output with its own gamma (float64; tg = (T)(gamma r)) and the set's m, s, c,
 * whose g is r (elem_grad_finish's): grad1, so the T formula, or where that is not finite the
 * float64 one. */
static T FN(elem_grad1)(T dy, T x, double gamma, const FN(coef) *co)
{
    const FN(coef) ce = FN(make_bwd_coef)(co->m, co->s, gamma, co->g, co->c);
    return ce.split ? FN(split_grad1)(dy, x, &ce) : FN(grad1)(dy, x, &ce);
}

/* dx = dy * tg[i] + ((x - tm) * ts + tc): the gradient apply with g per element (gd: gamma in
 * float64, for the vectors redone by elem_grad1 where the T result is not finite). */
static void FN(elem_grad_apply)(const S *dy, const S *x, S *dx, int64_t n,
                                const FB_C *FB_RESTRICT tg, const double *FB_RESTRICT gd,
                                const FN(coef) *co, int stream)
{
    const FB_C tm = co->tm, ts = co->ts, tc = co->tc;
    const FB_CV m = FB_CV_SET1(tm), s = FB_CV_SET1(ts), c = FB_CV_SET1(tc);
#define FB_E_AT(o) FB_CV_ADD(FB_CV_MUL(FB_CV_LOAD_S(dy + (o)), FB_CV_LOAD(tg + (o))),             \
                             FB_CV_ADD(FB_CV_MUL(FB_CV_SUB(FB_CV_LOAD_S(x + (o)), m), s), c))
#define FB_E_STORE(STORE, i)                                                                      \
    do {                                                                                          \
        const FB_TV r_ = FB_CV_TO_TV(FB_E_AT, i);                                                 \
        if (FB_TV_FINITE(r_)) STORE(dx + (i), r_);                                                \
        else for (int64_t j_ = (i); j_ < (i) + FB_TV_W; j_++)                                     \
            dx[j_] = FB_ST(FN(elem_grad1)(FB_LD(dy[j_]), FB_LD(x[j_]), gd[j_], co));             \
    } while (0)
#define FB_E1(i)                                                                                  \
    do {                                                                                          \
        const T r_ = (T)(FB_LD(dy[i]) * tg[i] + ((FB_LD(x[i]) - tm) * ts + tc));                  \
        dx[i] = FB_ST(isfinite(r_) ? r_ : FN(elem_grad1)(FB_LD(dy[i]), FB_LD(x[i]), gd[i], co));  \
    } while (0)
#define FB_E_STORE2(STORE, i) do { FB_E_STORE(STORE, i); FB_E_STORE(STORE, (i) + FB_TV_W); } while (0)
#if FB_PARTS
#define FB_E_PART(LD, ST, i, sh, k)                                                               \
    do {                                                                                          \
        const FB_TV r_ = FB_CV_ADD(FB_CV_MUL(LD(dy + (i), sh, k), LD(tg + (i), sh, k)),           \
                                   FB_CV_ADD(FB_CV_MUL(FB_CV_SUB(LD(x + (i), sh, k), m), s), c)); \
        if (FB_TV_FINITE(r_)) ST(dx + (i), r_, sh, k);                                            \
        else for (int64_t j_ = (i); j_ < (i) + (k); j_++) FB_E1(j_);                              \
    } while (0)
#else
#define FB_E_PART FB_NO_PART
#endif
    FB_RUN_LOOP_P(stream, dx, n, FB_E1, FB_E_STORE2, FB_E_PART, FB_PARTS, 0,
                  FB_RUN_PLACE(dx, dy, x, tg), 0);
#undef FB_E_PART
#undef FB_E_STORE2
#undef FB_E1
#undef FB_E_STORE
#undef FB_E_AT
}

/* One output of a row with per-element gamma gm and beta bt (NULL: ones, zeros, so that they
 * give the same bits): t = fma(x - tm, ts, tc), batch norm's xhat with the mean split, then
 * y = fma(t, gamma, beta).  Where that is not finite, apply1 of the element's own coefficients
 * (the float64 formula where its T one is not finite either). */
static FB_INLINE T FN(row_affine1)(T x, const FN(coef) *co, const T *gm, const T *bt, int64_t e,
                                   double mu, double r)
{
    const FB_C t = FB_CFMA1(x - co->tm, co->ts, co->tc);
    const FB_C y = FB_CFMA1(t, gm ? gm[e] : (FB_C)1, bt ? bt[e] : (FB_C)0);
    if (isfinite(y)) return (T)y;
    const FN(coef) ce = FN(make_coef)(mu, gm ? (double)gm[e] * r : r, 0.0, bt ? (double)bt[e] : 0.0);
    return FN(apply1)(x, &ce);
}

/* One row of per-element coefficients (layer / RMS norm, inner == 1), as row_affine1: two
 * multiply-adds a vector, two vectors a step with one finiteness test, gamma and beta present or
 * not as constant flags (no test in the loop).  Streamed when `stream`, the ends in masked
 * vectors where FB_ROW_ENDS; pf, if not NULL, is a later row (FB_FWD_ROWS_AHEAD on), prefetched
 * into L2 while this one runs. */
static FB_INLINE void FN(row_affine_fz)(const S *xr, S *yr, int64_t n, const FN(coef) *co,
                                        const T *gm, const T *bt, double mu, double r,
                                        const S *pf, int stream, const int has_g, const int has_b)
{
    const FB_CV m = FB_CV_SET1(co->tm), s = FB_CV_SET1(co->ts), c = FB_CV_SET1(co->tc);
#define FB_RA_AT(o)                                                                               \
    FB_CV_FMA(FB_CV_FMA(FB_CV_SUB(FB_CV_LOAD_S(xr + (o)), m), s, c),                              \
              has_g ? FB_CV_LOAD_P(gm + (o)) : FB_CV_SET1((FB_C)1),                               \
              has_b ? FB_CV_LOAD_P(bt + (o)) : FB_CV_SET1((FB_C)0))
#define FB_RA_V(e) FB_CV_TO_TV(FB_RA_AT, e)
#define FB_RA1(e) FB_ST(FN(row_affine1)(FB_LD(xr[e]), co, gm, bt, e, mu, r))
#define FB_RA_STORE2(STORE, e)                                                                    \
    do {                                                                                          \
        if (pf) FB_PREFETCH_SPAN_L2(pf + (e), 2 * FB_TV_W * (int)sizeof(S));                     \
        const FB_TV y0_ = FB_RA_V(e), y1_ = FB_RA_V((e) + FB_TV_W);                              \
        if (FB_TV_FINITE2(y0_, y1_)) STORE(yr + (e), y0_), STORE(yr + (e) + FB_TV_W, y1_);        \
        else for (int64_t j_ = (e); j_ < (e) + 2 * FB_TV_W; j_++) yr[j_] = FB_RA1(j_);            \
    } while (0)
#define FB_RA_ONE(e) yr[e] = FB_RA1(e)
#if FB_PARTS
#define FB_RA_PART(LD, ST, e, sh, k)                                                              \
    do {                                                                                          \
        if (pf) FB_PREFETCH_SPAN_L2(pf + (e), (k) * (int)sizeof(S));                            \
        const FB_TV y_ = FB_CV_FMA(FB_CV_FMA(FB_CV_SUB(LD(xr + (e), sh, k), m), s, c),            \
                                   has_g ? LD(gm + (e), sh, k) : FB_CV_SET1((FB_C)1),             \
                                   has_b ? LD(bt + (e), sh, k) : FB_CV_SET1((FB_C)0));            \
        if (FB_TV_FINITE(y_)) ST(yr + (e), y_, sh, k);                                            \
        else for (int64_t j_ = (e); j_ < (e) + (k); j_++) yr[j_] = FB_RA1(j_);                    \
    } while (0)
#else
#define FB_RA_PART FB_NO_PART
#endif
    FB_RUN_LOOP_P(stream, yr, n, FB_RA_ONE, FB_RA_STORE2, FB_RA_PART, FB_PARTS, FB_ROW_ENDS,
                  FB_RUN_PLACE(yr, xr, gm, bt), 1);
#undef FB_RA_PART
#undef FB_RA_ONE
#undef FB_RA_STORE2
#undef FB_RA1
#undef FB_RA_V
#undef FB_RA_AT
}

static void FN(row_affine)(const S *xr, S *yr, int64_t n, const FN(coef) *co, const T *gm,
                           const T *bt, double mu, double r, const S *pf, int stream)
{
    if (gm && bt) FN(row_affine_fz)(xr, yr, n, co, gm, bt, mu, r, pf, stream, 1, 1);
    else if (gm) FN(row_affine_fz)(xr, yr, n, co, gm, NULL, mu, r, pf, stream, 1, 0);
    else if (bt) FN(row_affine_fz)(xr, yr, n, co, NULL, bt, mu, r, pf, stream, 0, 1);
    else FN(row_affine_fz)(xr, yr, n, co, NULL, NULL, mu, r, pf, stream, 0, 0);
}

/* Runs of nr rows (1 or 2, a constant) of the backward's elementwise layout with gamma cached in
 * float64 (layer / RMS norm), in one pass: for row q, la[q][l] += gamma dy and
 * lb[q][l] += gamma dy (x - mu_q) in lane l = e mod FB_LANES (the order of the plain loop), and
 * the per-element partials qdb += dy, qdg += dy (x - mu_q) r_q, row after row (the first row
 * assigns when fst).  Two rows load and store the partials once, and prefetch x and dy `ahead`
 * bytes ahead into L2 (which, measured, slows one row down). */
static FB_INLINE void FN(rows_grad_sums_n)(const S *const *xr, const S *const *gr, int64_t L,
                                           const double *mu, const double *r,
                                           const double *FB_RESTRICT gd, double (*la)[FB_LANES],
                                           double (*lb)[FB_LANES], double *FB_RESTRICT qdg,
                                           double *FB_RESTRICT qdb, int fst, const int nr,
                                           uintptr_t ahead)
{
    fb_vd mv[2], rv[2];
    for (int q = 0; q < nr; q++) mv[q] = fb_vd_set1(mu[q]), rv[q] = fb_vd_set1(r[q]);
    const int64_t full = L - L % FB_LANES;
    for (int g = 0; g < FB_LANES; g += FB_LG) {
        fb_vd a[2][FB_NVG], b[2][FB_NVG];
        for (int q = 0; q < nr; q++)
            for (int j = 0; j < FB_NVG; j++)
                a[q][j] = fb_vd_load_f64(la[q] + g + j * FB_VD_W),
                b[q][j] = fb_vd_load_f64(lb[q] + g + j * FB_VD_W);
        for (int64_t i = 0; i < full; i += FB_LANES) {
            for (int q = 0; nr == 2 && g == 0 && q < nr; q++) {   /* ahead of the hardware's */
                FB_PREFETCH_SPAN_L2((uintptr_t)(xr[q] + i) + ahead, FB_LANES * (int)sizeof(S));
                FB_PREFETCH_SPAN_L2((uintptr_t)(gr[q] + i) + ahead, FB_LANES * (int)sizeof(S));
            }
            for (int j = 0; j < FB_NVG; j++) {
                const int64_t e = i + g + j * FB_VD_W;
                const fb_vd gv = fb_vd_load_f64(gd + e);
                fb_vd qb = fst ? fb_vd_set1(0.0) : fb_vd_load_f64(qdb + e);
                fb_vd qg = fst ? fb_vd_set1(0.0) : fb_vd_load_f64(qdg + e);
                for (int q = 0; q < nr; q++) {
                    const fb_vd dyv = FB_VD_LOAD_T(gr[q] + e);
                    const fb_vd d = fb_vd_sub(FB_VD_LOAD_T(xr[q] + e), mv[q]);
                    const fb_vd wv = fb_vd_mul(gv, dyv), pg = fb_vd_mul(fb_vd_mul(dyv, d), rv[q]);
                    a[q][j] = fb_vd_add(a[q][j], wv);
                    b[q][j] = fb_vd_add_m(fb_vd_mul(wv, d), b[q][j]);
                    qb = fst && q == 0 ? dyv : fb_vd_add(qb, dyv);
                    qg = fst && q == 0 ? pg : fb_vd_add(qg, pg);
                }
                fb_vd_store_f64(qdb + e, qb);
                fb_vd_store_f64(qdg + e, qg);
            }
        }
        for (int q = 0; q < nr; q++)
            for (int j = 0; j < FB_NVG; j++)
                fb_vd_store_f64(la[q] + g + j * FB_VD_W, a[q][j]),
                fb_vd_store_f64(lb[q] + g + j * FB_VD_W, b[q][j]);
    }
    for (int64_t e = full; e < L; e++)
        for (int q = 0; q < nr; q++) {
            const double dyv = (double)FB_LD(gr[q][e]), d = (double)FB_LD(xr[q][e]) - mu[q];
            const double wv = gd[e] * dyv, pg = dyv * d * r[q];
            la[q][e - full] += wv;
            lb[q][e - full] += wv * d;
            qdb[e] = fst && q == 0 ? dyv : qdb[e] + dyv;
            qdg[e] = fst && q == 0 ? pg : qdg[e] + pg;
        }
}

static void FN(rows_grad_sums1)(const S *const *xr, const S *const *gr, int64_t L, const double *mu,
                                const double *r, const double *gd, double (*la)[FB_LANES],
                                double (*lb)[FB_LANES], double *qdg, double *qdb, int fst)
{
    FN(rows_grad_sums_n)(xr, gr, L, mu, r, gd, la, lb, qdg, qdb, fst, 1, 0);
}

static void FN(rows_grad_sums2)(const S *const *xr, const S *const *gr, int64_t L, const double *mu,
                                const double *r, const double *gd, double (*la)[FB_LANES],
                                double (*lb)[FB_LANES], double *qdg, double *qdb, int fst,
                                uintptr_t ahead)
{
    FN(rows_grad_sums_n)(xr, gr, L, mu, r, gd, la, lb, qdg, qdb, fst, 2, ahead);
}

/* One gradient of a row with per-element gamma gm (NULL: ones, the same bits):
 * dx = fma(dy * gamma, tg, fma(x - tm, ts, tc)) with tg = (T)invstd; where that is not finite,
 * elem_grad1 with the element's gamma. */
static FB_INLINE T FN(row_grad_affine1)(T dy, T x, const FN(coef) *co, const T *gm, int64_t e,
                                        double r)
{
    const FB_C w = gm ? (FB_C)dy * gm[e] : (FB_C)dy;
    const T d = (T)FB_CFMA1(w, co->tg, FB_CFMA1(x - co->tm, co->ts, co->tc));
    return isfinite(d) ? d : FN(elem_grad1)(dy, x, gm ? (double)gm[e] : 1.0, co);
}

/* row_grad_affine1 over a run: three operations a vector besides the subtraction, two vectors a
 * step with one finiteness test, gamma present or not as a constant flag (as row_affine).
 * Streamed when `stream`, last element first where dx lies just above an input modulo 4 KB
 * (FB_RUN_PLACE_REV), the unaligned ends element by element (masked vectors measured no
 * faster here); pfx, pfg (or NULL): a later run's x and dy, prefetched (into L2 alone where
 * pf_l2). */
static FB_INLINE void FN(row_grad_affine_fz)(const S *dy, const S *x, S *dx, int64_t n,
                                             const FN(coef) *co, const T *gm, double r,
                                             const S *pfx, const S *pfg, int pf_l2, int stream,
                                             const int has_g)
{
    const FB_CV m = FB_CV_SET1(co->tm), s = FB_CV_SET1(co->ts), c = FB_CV_SET1(co->tc);
    const FB_CV tg = FB_CV_SET1(co->tg);
#define FB_G_AT(o) (has_g ? FB_CV_MUL(FB_CV_LOAD_S(dy + (o)), FB_CV_LOAD_P(gm + (o)))           \
                          : FB_CV_LOAD_S(dy + (o)))
#define FB_GA_AT(o) FB_CV_FMA(FB_G_AT(o), tg, FB_CV_FMA(FB_CV_SUB(FB_CV_LOAD_S(x + (o)), m), s, c))
#define FB_E1(i) dx[i] = FB_ST(FN(row_grad_affine1)(FB_LD(dy[i]), FB_LD(x[i]), co, gm, i, r))
#define FB_E_STORE2(STORE, i)                                                                     \
    do {                                                                                          \
        if (pfx) {                                                                                \
            if (pf_l2) {                                                                          \
                FB_PREFETCH_SPAN_L2(pfx + (i), 2 * FB_TV_W * (int)sizeof(S));                    \
                FB_PREFETCH_SPAN_L2(pfg + (i), 2 * FB_TV_W * (int)sizeof(S));                    \
            } else {                                                                              \
                FB_PREFETCH_SPAN(pfx + (i), 2 * FB_TV_W * (int)sizeof(S));                       \
                FB_PREFETCH_SPAN(pfg + (i), 2 * FB_TV_W * (int)sizeof(S));                       \
            }                                                                                     \
        }                                                                                         \
        const FB_TV r0_ = FB_CV_TO_TV(FB_GA_AT, i), r1_ = FB_CV_TO_TV(FB_GA_AT, (i) + FB_TV_W);  \
        if (FB_TV_FINITE2(r0_, r1_)) STORE(dx + (i), r0_), STORE(dx + (i) + FB_TV_W, r1_);       \
        else for (int64_t j_ = (i); j_ < (i) + 2 * FB_TV_W; j_++) FB_E1(j_);                     \
    } while (0)
#if FB_PARTS
#define FB_GA_PART(LD, ST, i, sh, k)                                                              \
    do {                                                                                          \
        if (pfx && pf_l2) {                                                                       \
            FB_PREFETCH_SPAN_L2(pfx + (i), (k) * (int)sizeof(S));                                \
            FB_PREFETCH_SPAN_L2(pfg + (i), (k) * (int)sizeof(S));                                \
        } else if (pfx) {                                                                         \
            FB_PREFETCH_SPAN(pfx + (i), (k) * (int)sizeof(S));                                   \
            FB_PREFETCH_SPAN(pfg + (i), (k) * (int)sizeof(S));                                   \
        }                                                                                         \
        const FB_TV dy_ = LD(dy + (i), sh, k);                                                    \
        const FB_TV g_ = has_g ? FB_CV_MUL(dy_, LD(gm + (i), sh, k)) : dy_;                       \
        const FB_TV r_ = FB_CV_FMA(g_, tg, FB_CV_FMA(FB_CV_SUB(LD(x + (i), sh, k), m), s, c));    \
        if (FB_TV_FINITE(r_)) ST(dx + (i), r_, sh, k);                                            \
        else for (int64_t j_ = (i); j_ < (i) + (k); j_++) FB_E1(j_);                              \
    } while (0)
#else
#define FB_GA_PART FB_NO_PART
#endif
    FB_RUN_LOOP_P(stream, dx, n, FB_E1, FB_E_STORE2, FB_GA_PART, FB_PARTS, 0,
                  FB_RUN_PLACE_REV(dx, dy, x, gm), 1);
#undef FB_GA_PART
#undef FB_E_STORE2
#undef FB_E1
#undef FB_GA_AT
#undef FB_G_AT
}

static void FN(row_grad_affine)(const S *dy, const S *x, S *dx, int64_t n, const FN(coef) *co,
                                const T *gm, double r, const S *pfx, const S *pfg, int pf_l2,
                                int stream)
{
    if (gm) FN(row_grad_affine_fz)(dy, x, dx, n, co, gm, r, pfx, pfg, pf_l2, stream, 1);
    else FN(row_grad_affine_fz)(dy, x, dx, n, co, NULL, r, pfx, pfg, pf_l2, stream, 0);
}

/* ---- the fused epilogue and mask (issue 17): batch norm's, norm_common.h ------------------ */

/* y = relu(y + res) over n outputs the plain apply has just stored (fwd_epi on the stored value:
 * for half storage the unfused output rounded to the half type, as batch norm's epilogue rounds
 * it first).  Constant flags, so each case is its own loop. */
static FB_INLINE void FN(epi_run_fz)(S *y, const S *res, int64_t n, const int has_res,
                                     const int relu)
{
    int64_t i = 0;
    for (; i + FB_TV_W <= n; i += FB_TV_W)
        FB_SV_STORE(y + i, FN(fwd_epi)(FB_SV_LOAD(y + i), res, i, has_res, relu));
    for (; i < n; i++) y[i] = FB_ST(FN(fwd_epi1)(FB_LD(y[i]), res, i, has_res, relu));
}

static void FN(epi_run)(S *y, const S *res, int64_t n, int relu)
{
    if (res && relu) FN(epi_run_fz)(y, res, n, 1, 1);
    else if (res) FN(epi_run_fz)(y, res, n, 1, 0);
    else if (relu) FN(epi_run_fz)(y, NULL, n, 0, 1);
}

/* g = threshold_backward(dy, ym, 0) over n values (relu_grad1: dy or +0, exact), or dy itself
 * without ym: the dy that every later read of the backward sees, and dresidual's values. */
static void FN(mask_run)(const S *dy, const S *ym, S *g, int64_t n)
{
    if (!ym) {
        memcpy(g, dy, sizeof(S) * (size_t)n);
        return;
    }
    int64_t i = 0;
    for (; i + FB_TV_W <= n; i += FB_TV_W)
        FB_SV_STORE(g + i, FB_TV_RELU_GRAD(FB_SV_LOAD(dy + i), FB_SV_LOAD(ym + i)));
    for (; i < n; i++) g[i] = FB_ST(FN(relu_grad1)(FB_LD(dy[i]), FB_LD(ym[i])));
}

/* ---- moments: one group's statistics ------------------------------------------------------ */

#ifdef FB_VN_LOAD_T
/* stat_sums_narrow from zeroed lanes, then fb_lanes_total of each, in registers (reading the
 * lanes back from half-width stores stalls on store forwarding, once a row).  The partial last
 * round adds +0 to the lanes it does not reach, which keeps them (a sum begun at +0 is not -0). */
static FB_NOINLINE void FN(stat_totals_narrow)(const S *FB_RESTRICT x, int64_t n, double k,
                                               double *t1, double *t2, uintptr_t next)
{
    enum { NV = FB_LANES / FB_VN_W };
    fb_vn a[NV], b[NV];
    for (int j = 0; j < NV; j++) a[j] = b[j] = fb_vn_set1(0.0);
    FN(stat_lanes_narrow)(x, n, k, a, b, next);
    const int64_t full = n - n % FB_LANES, rest = n - full;
    for (int j = 0; j < NV && j * FB_VN_W < rest; j++) {
        fb_vn d = fb_vn_set1(0.0);
        for (int i = 0; i < FB_VN_W && j * FB_VN_W + i < rest; i++)
            d[i] = (double)FB_LD(x[full + j * FB_VN_W + i]) - k;
        a[j] = fb_vn_add(a[j], d);
        b[j] = fb_vn_add(b[j], fb_vn_mul(d, d));
    }
    /* fb_lanes_total's levels: lane i + 16, i + 8 and i + 4 to lane i in vectors, then the last
     * vector's i + 2 and i + 1 */
    for (int h = NV / 2; h >= 1; h /= 2)
        for (int j = 0; j < h; j++)
            a[j] = fb_vn_add(a[j], a[j + h]), b[j] = fb_vn_add(b[j], b[j + h]);
    *t1 = fb_vn_total(a[0]), *t2 = fb_vn_total(b[0]);
}
#endif

/* The two lane totals of one run of n <= FB_SEG values (run_pair_sums from zeroed lanes, then
 * fb_lanes_total of each); runs shorter than FB_TOTALS_RUN, and the narrow sums, with the lanes
 * in registers. */
static FB_INLINE void FN(run_totals)(const S *x, const S *q, const int has_q, int64_t n, double k,
                                     double *t1, double *t2, uintptr_t next)
{
#ifdef FB_VD_LOAD_T_HEAD
    if (n < FB_TOTALS_RUN) {
        FN(run_pair_totals)(x, q, has_q, n, k, t1, t2, next);
        return;
    }
#endif
#ifdef FB_VN_LOAD_T
    if (!has_q && fb_narrow_sums) {
        FN(stat_totals_narrow)(x, n, k, t1, t2, next);
        return;
    }
#endif
    double s1[FB_LANES], s2[FB_LANES];
    fb_lanes_zero(s1), fb_lanes_zero(s2);
    FN(run_pair_sums)(x, q, has_q, n, k, s1, s2, next);
    *t1 = fb_lanes_total(s1), *t2 = fb_lanes_total(s2);
}

/* Mean and variance (centered), or 0 and mean(x^2) (not centered), of `mid` runs of L values
 * `stride` apart.  Segments of pieces (at most FB_SEG values of a run) until FB_SEG values or the
 * group ends, shifted by their first value and Chan-merged in order: batch norm's slab path.
 * next: as pair_sums_fz's (the next group's run, prefetched into L2), or 0. */
static FB_INLINE void FN(group_moments)(const S *base, int64_t mid, int64_t L, int64_t stride,
                                        int centered, uintptr_t next, double *mean, double *var)
{
    double n = 0.0, mu = 0.0, m2 = 0.0, sq = 0.0;
    int64_t m = 0, p = 0, parts = 0;
    while (m < mid) {
        parts++;
        const double k = centered ? (double)FB_LD(base[m * stride + p]) : 0.0;
        int64_t count = 0;
        double t1, t2;
        if (mid == 1 && L <= FB_SEG) {   /* one run, one segment */
            FN(run_totals)(base, NULL, 0, L, k, &t1, &t2, next);
            count = L, m = 1;
        } else {
            double s1[FB_LANES], s2[FB_LANES];
            fb_lanes_zero(s1);
            fb_lanes_zero(s2);
            while (m < mid && count < FB_SEG) {
                const int64_t len = L - p < FB_SEG ? L - p : FB_SEG;
                FN(run_pair_sums)(base + m * stride + p, NULL, 0, len, k, s1, s2, next);
                count += len, p += FB_SEG;
                if (p >= L) p = 0, m++;
            }
            t1 = fb_lanes_total(s1), t2 = fb_lanes_total(s2);
        }
        if (centered) {
            double smu, sm2;
            fb_shifted_result(k, (double)count, t1, t2, &smu, &sm2);
            fb_chan_merge(&n, &mu, &m2, (double)count, smu, sm2);
        } else {
            sq += t2;
            n += (double)count;
        }
    }
    if (centered && parts > 1 && FN(needs_refine)(mu, m2, n))   /* far from zero: batch norm's */
        FN(refine_stats)(base, mid, stride, L, &mu, &m2);
    *mean = centered ? mu : 0.0;
    *var = (centered ? m2 : sq) / n;
}

/* ---- forward: statistics, then the apply while the group is in cache ----------------------- */

/* Whether group (o, g) is followed in memory by another (its runs contiguous, mid == 1): the one
 * the passes over this group prefetch. */
static inline int FN(has_next_group)(const fb_norm_plan *p, int64_t o, int64_t g)
{
    return p->v.mid == 1 && (g + 1 < p->v.G || o + 1 < p->v.outer);
}

/* Where the group a thread takes after (o, g) of task `task` (samples up to o1, nb blocks of gb
 * groups a chunk) starts, in bytes from (o, g)'s: sample o + 1's in the same task, else the first
 * of the task nt on, as nt threads take the tasks in turn; 0 where there is none or it lies
 * behind. */
static inline uintptr_t FN(next_taken)(const fb_norm_plan *p, int nt, int64_t task,
                                       int64_t n_tasks, int64_t nb, int64_t gb, int64_t o,
                                       int64_t g, int64_t o1)
{
    if (o + 1 < o1) return (uintptr_t)p->per_outer * sizeof(S);
    const int64_t t = task + nt;
    if (t >= n_tasks) return 0;
    const int64_t d = (t / nb * p->OC - o) * p->per_outer + (t % nb * gb - g) * p->L;
    return d > 0 ? (uintptr_t)d * sizeof(S) : 0;
}

/* The channel-first groups' prefetch on nt > 1 threads: next_taken where runs are contiguous
 * (mid == 1) and fb_first_prefetch; 0 otherwise (one thread prefetches the next group). */
static inline uintptr_t FN(own_next)(const fb_norm_plan *p, int nt, int64_t task,
                                     int64_t n_tasks, int64_t nb, int64_t gb, int64_t o,
                                     int64_t g, int64_t o1)
{
    if (nt < 2 || !fb_first_prefetch || p->v.mid != 1) return 0;
    return FN(next_taken)(p, nt, task, n_tasks, nb, gb, o, g, o1);
}

typedef struct {
    const fb_norm_plan *p;
    const S *x;
    S *y;
    const T *gamma, *beta;
    double eps;
    int centered, stream;
    double *mean, *invstd;
    const S *res;   /* the fused epilogue: residual (or NULL) and relu */
    int relu;
    int pf_first;   /* one thread (and fb_first_prefetch): whole-channel runs prefetch the next
                     * group in the statistics */
    int var_out;    /* FB_NORM_VAR: the invstd array receives the variance */
    int nt;         /* the threads the tasks run on */
} FN(fwd_ctx);

/* Group (o, g)'s results from its mean mu and variance: r = 1 / sqrt(var + eps), both stored in
 * mean and invstd (a NaN as fb_nan1's). */
static FB_INLINE double FN(store_stats)(const FN(fwd_ctx) *k, int64_t o, int64_t g, double mu,
                                        double var)
{
    const double r = 1.0 / sqrt(var + k->eps);
    k->mean[o * k->p->v.G + g] = fb_nan1(mu);
    k->invstd[o * k->p->v.G + g] = fb_nan1(k->var_out ? var : r);
    return r;
}

/* Group (o, g)'s statistics (store_stats): the mean mu and r.
 * row: the group is one contiguous row (mid == 1, inner == 1), a constant; own: own_next's. */
static FB_INLINE void FN(forward_stats)(const FN(fwd_ctx) *k, int64_t o, int64_t g, const int row,
                                        uintptr_t own, double *mu, double *r)
{
    const fb_norm_plan *p = k->p;
    const S *xb = k->x + o * p->per_outer + g * p->L;
    double var;
    /* the next group (contiguous when mid == 1): prefetched during the apply, and during the
     * statistics too for rows (layer / RMS norm: a thread's run of rows goes on there) and for
     * whole-channel runs on one thread (where the next group is this thread's); on more
     * threads, whole-channel runs prefetch the group this thread takes next (own) */
    const int stats_next = FN(has_next_group)(p, o, g) && (p->elementwise || k->pf_first);
    const uintptr_t next = own ? own : stats_next ? (uintptr_t)p->L * sizeof(S) : 0;
    FN(group_moments)(xb, row ? 1 : p->v.mid, p->L, p->stride, k->centered, next, mu, &var);
    *r = FN(store_stats)(k, o, g, *mu, var);
}

/* Channel c's coefficients in a group, as the per-channel loops make them: forward
 * make_fwd_coef(mu, gamma, r, beta), backward make_bwd_coef(mu, s, gamma, r, c). */
typedef struct {
    double mu, r, s, c;
    const T *gm, *bt;
    int bwd;
} FN(chan_rule);

static FB_INLINE FN(coef) FN(chan_coef)(const FN(chan_rule) *q, int64_t c)
{
    const double gm = q->gm ? (double)q->gm[c] : 1.0;
    if (!q->bwd) return FN(make_fwd_coef)(q->mu, gm, q->r, q->bt ? (double)q->bt[c] : 0.0);
    return FN(make_bwd_coef)(q->mu, q->s, gm, q->r, q->c);
}

/* row_apply's forward or backward segment, tm, ts, tg, tc per channel (row_apply_fz's bych) */
static void FN(chan_row_apply)(const S *xr, const S *gr, S *yr, int64_t w, const FB_C *tm,
                               const FB_C *ts, const FB_C *tg, const FB_C *tc, int stream,
                               const FN(row_src) *src)
{
    const uint64_t cmag = ((1ull << 32) + (uint64_t)src->inner - 1) / (uint64_t)src->inner;
    if (!gr) FN(row_apply_fz)(xr, gr, yr, w, tm, ts, tg, tc, stream, src, 0, 0, 0, 0, 0, 1, cmag);
    else FN(row_apply_fz)(xr, gr, yr, w, tm, ts, tg, tc, stream, src, 1, 0, 0, 0, 0, 1, cmag);
}

/* run_apply_fused without the epilogue (norm_common.h): a run's y = (x - m) s + c */
static void FN(run_apply)(const S *x, S *y, int64_t n, const FN(coef) *co, int stream, const S *pf)
{
    FN(run_apply_fz)(x, y, n, co, stream, NULL, 0, 0, pf, 0, 0);
}

/* Contiguous groups of short channel runs (mid == 1, inner < FB_SHORT_RUN: one group, or a
 * plan's block), n values in all, as row segments of FB_EBLK elements, each channel's
 * coefficients (q[group], chan_coef) repeated over its run (row_apply; where a vector spans at
 * most two runs, made per vector from per-channel arrays, chan_row_apply): the bits of run_apply
 * and run_grad_apply, without their costs per run (setup, unaligned ends taken one by one).
 * Segments after the first start on y's 64-byte lines.  gb NULL: the forward. */
static FB_INLINE void FN(short_runs_fz)(const S *xb, const S *gb, S *yb, int64_t n, int64_t inner,
                                        int64_t Cg, const FN(chan_rule) *q, int stream,
                                        FN(coef) *co, const int one)
{
    enum { W = (int)(sizeof(FB_CV) / sizeof(FB_C)) };   /* whole vectors fill past a run's end */
    FB_C tm[FB_EBLK + W], ts[FB_EBLK + W], tg[FB_EBLK + W], tc[FB_EBLK + W];
    const int64_t lw = 64 / (int64_t)sizeof(S);
    const int bych = inner >= W;
    for (int64_t i = 0; one && !bych && i < (n < FB_EBLK ? n : FB_EBLK); i += W)
        FB_CV_STORE(tm + i, FB_CV_SET1((FB_C)q->mu));
    for (int64_t e0 = 0, e1; e0 < n; e0 = e1) {
        e1 = e0 + FB_EBLK - (e0 ? 0 : (int64_t)((uintptr_t)yb / sizeof(S)) % lw);
        if (e1 > n) e1 = n;
        const int64_t cA = e0 / inner;
        int exact = 0;
        /* channel c is channel cg of group qg: stepped along, not divided for */
        for (int64_t c = cA, e = e0, qg = cA / Cg, cg = cA % Cg; e < e1; c++) {
            const int64_t b = (c + 1) * inner < e1 ? (c + 1) * inner : e1;
            const FN(coef) cc = co[c - cA] = FN(chan_coef)(&q[qg], cg);
            if (++cg == Cg) cg = 0, qg++;
            exact |= cc.exact;
            if (bych) {   /* and at c + 1, read by chan_cv's last vector */
                tm[c - cA] = tm[c - cA + 1] = cc.tm, ts[c - cA] = ts[c - cA + 1] = cc.ts;
                tg[c - cA] = tg[c - cA + 1] = cc.tg, tc[c - cA] = tc[c - cA + 1] = cc.tc;
                e = b;
                continue;
            }
            const FB_CV mv = FB_CV_SET1(cc.tm), sv = FB_CV_SET1(cc.ts), cv = FB_CV_SET1(cc.tc);
            const FB_CV gv = FB_CV_SET1(cc.tg);
            for (int64_t i = e - e0; i < b - e0; i += W) {
                FB_CV_STORE(ts + i, sv), FB_CV_STORE(tc + i, cv);
                if (!one) FB_CV_STORE(tm + i, mv);
                if (gb) FB_CV_STORE(tg + i, gv);
            }
            e = b;
        }
        if (exact) {   /* a channel takes the float64 formula: the per-run loops */
            for (int64_t c = cA, e = e0; e < e1; c++) {
                const int64_t b = (c + 1) * inner < e1 ? (c + 1) * inner : e1;
                if (gb) FN(run_grad_apply)(gb + e, xb + e, yb + e, b - e, &co[c - cA], stream,
                                           NULL, NULL);
                else FN(run_apply)(xb + e, yb + e, b - e, &co[c - cA], stream, NULL);
                e = b;
            }
            continue;
        }
        const FN(row_src) src = {co, e0 - cA * inner, 0, e1 - e0, inner, NULL, NULL, NULL, NULL,
                                 NULL, 0, NULL, NULL, NULL, 0};
        if (bych)
            FN(chan_row_apply)(xb + e0, gb ? gb + e0 : NULL, yb + e0, e1 - e0, tm, ts, tg, tc,
                               stream, &src);
        else
            FN(row_apply)(xb + e0, gb ? gb + e0 : NULL, yb + e0, e1 - e0, tm, ts, tg, tc, stream,
                          &src);
    }
}

/* short_runs_fz's co, a segment's channels: up to 66 for runs under FB_SLAB_MIN values here, 18
 * in short_runs, whose stack frame the larger array changed (and with it its speed) */
static void FN(short_runs_small)(const S *xb, const S *gb, S *yb, int64_t n, int64_t inner,
                                 int64_t Cg, const FN(chan_rule) *q, int stream)
{
    FN(coef) co[FB_EBLK / FB_BLOCK_MIN_RUN + 2];
    FN(short_runs_fz)(xb, gb, yb, n, inner, Cg, q, stream, co, 0);
}

/* one (short_runs_fz): a single group, its mean throughout (a constant flag, a loop of its own) */
static void FN(short_runs)(const S *xb, const S *gb, S *yb, int64_t n, int64_t inner, int64_t Cg,
                           const FN(chan_rule) *q, int stream)
{
    FN(coef) co[FB_EBLK / FB_SLAB_MIN + 2];
    if (inner < FB_SLAB_MIN) FN(short_runs_small)(xb, gb, yb, n, inner, Cg, q, stream);
    else if (n <= Cg * inner) FN(short_runs_fz)(xb, gb, yb, n, inner, Cg, q, stream, co, 1);
    else FN(short_runs_fz)(xb, gb, yb, n, inner, Cg, q, stream, co, 0);
}

/* Group (o, g)'s outputs from its statistics, then the fused epilogue relu(y + res) while they
 * are in cache.  row as forward_stats'. */
static FB_INLINE void FN(forward_apply)(const FN(fwd_ctx) *k, int64_t o, int64_t g, const int row,
                                        double mu, double r)
{
    const fb_norm_plan *p = k->p;
    const int64_t mid = row ? 1 : p->v.mid, Cg = p->v.Cg, inner = row ? 1 : p->v.inner;
    const int64_t L = p->L, stride = p->stride;
    const int64_t off = o * p->per_outer + g * L, c0 = g * Cg;
    const S *xb = k->x + off;
    S *yb = k->y + off;
    if (!p->elementwise && mid == 1 && Cg > 1 && inner < FB_SHORT_RUN) {
        const FN(chan_rule) q = {mu, r, 0.0, 0.0, k->gamma ? k->gamma + c0 : NULL,
                                 k->beta ? k->beta + c0 : NULL, 0};
        FN(short_runs)(xb, NULL, yb, L, inner, Cg, &q, k->stream);
    } else if (!p->elementwise) {     /* whole-channel runs: one coefficient set per channel */
        const S *next = FN(has_next_group)(p, o, g) ? xb + L : NULL;
        for (int64_t m = 0; m < mid; m++)
            for (int64_t c = 0; c < Cg; c++) {
                const FN(coef) co = FN(make_fwd_coef)(mu, k->gamma ? (double)k->gamma[c0 + c] : 1.0,
                                                      r, k->beta ? (double)k->beta[c0 + c] : 0.0);
                FN(run_apply)(xb + m * stride + c * inner, yb + m * stride + c * inner, inner, &co,
                              k->stream, next ? next + c * inner : NULL);
            }
    } else {
        /* Per-element coefficients with per-group statistics.  One channel per element (layer
         * and RMS norm): xhat with the group's coefficients, then gamma and beta (row_affine).
         * Other layouts, or where x - mean could overflow in T: the float64 formula
         * y = (x - mean) * (gamma r) + beta, rounded once. */
        const T *gm = k->gamma ? k->gamma + c0 : NULL, *bt = k->beta ? k->beta + c0 : NULL;
        const FN(coef) co = FN(make_coef)(mu, r, 0.0, 0.0);
        for (int64_t m = 0; m < mid; m++) {
            const S *xr = xb + m * stride;
            S *yr = yb + m * stride;
            const int64_t ahead = FB_FWD_ROWS_AHEAD;
            const S *next = mid == 1 && o + ahead < p->v.outer ? xr + ahead * p->per_outer : NULL;
            if (inner == 1 && !co.exact) {
                FN(row_affine)(xr, yr, L, &co, gm, bt, mu, r, next, k->stream);
                continue;
            }
            for (int64_t c = 0; c < Cg; c++) {   /* a channel's run: a loop to vectorize */
                const double g = gm ? (double)gm[c] : 1.0, sc = g * r, b = bt ? (double)bt[c] : 0.0;
                const S *xc = xr + c * inner;   /* yc may be xc (in place) */
                S *yc = yr + c * inner;
                if (fb_split_overflows(g, r)) {   /* make_fwd_coef's split scale */
                    const FN(coef) cs = FN(make_fwd_coef)(mu, g, r, b);
                    for (int64_t i = 0; i < inner; i++)
                        yc[i] = FB_ST(FN(split_apply1)(FB_LD(xc[i]), &cs));
                    continue;
                }
                for (int64_t i = 0; i < inner; i++)
                    yc[i] = FB_ST64(fb_nan1(((double)FB_LD(xc[i]) - mu) * sc + b));
            }
        }
    }
    if (k->res || k->relu)
        for (int64_t m = 0; m < mid; m++)
            FN(epi_run)(yb + m * stride, FB_AT(k->res, off + m * stride), L, k->relu);
}

/* A plan's block: groups [g0, g1) of sample o, contiguous, each one shifted-sum segment.  Every
 * group's totals (group_moments' one segment), then their statistics, so that the groups' scalar
 * work overlaps; then the apply over them all with the fused epilogue: one short_runs, or runs of
 * FB_BLOCK_RUN values or more each in its own loop. */
static void FN(forward_block)(const FN(fwd_ctx) *k, int64_t o, int64_t g0, int64_t g1)
{
    const fb_norm_plan *p = k->p;
    FN(chan_rule) q[FB_BLOCK_GROUPS];
    double sh[FB_BLOCK_GROUPS], t1[FB_BLOCK_GROUPS], t2[FB_BLOCK_GROUPS];
    /* the next block in memory (the next task's), prefetched by the statistics */
    const uintptr_t next =
        o + 1 < p->v.outer || g1 < p->v.G ? (uintptr_t)((g1 - g0) * p->L) * sizeof(S) : 0;
    for (int64_t g = g0; g < g1; g++)
        sh[g - g0] = k->centered ? (double)FB_LD(k->x[o * p->per_outer + g * p->L]) : 0.0;
#ifdef FB_VD_LOAD_T_HEAD
    if (p->L < FB_TOTALS_RUN)   /* run_totals' bits */
        FN(runs_pair_totals)(k->x + o * p->per_outer + g0 * p->L, NULL, 0, p->L, g1 - g0, sh, t1,
                             t2, next);
    else
#endif
        for (int64_t g = g0; g < g1; g++)
            FN(run_totals)(k->x + o * p->per_outer + g * p->L, NULL, 0, p->L, sh[g - g0],
                           &t1[g - g0], &t2[g - g0], next);
    double mu[FB_BLOCK_GROUPS], r[FB_BLOCK_GROUPS];
    for (int64_t j = 0; j < g1 - g0; j++) {   /* a loop of its own, which vectorizes */
        double var;
        fb_seg_moments(k->centered, sh[j], (double)p->L, t1[j], t2[j], &mu[j], &var);
        r[j] = FN(store_stats)(k, o, g0 + j, mu[j], var);
    }
    for (int64_t j = 0; j < g1 - g0; j++) {
        const int64_t c0 = (g0 + j) * p->v.Cg;
        q[j] = (FN(chan_rule)){mu[j], r[j], 0.0, 0.0, k->gamma ? k->gamma + c0 : NULL,
                               k->beta ? k->beta + c0 : NULL, 0};
    }
    const int64_t off = o * p->per_outer + g0 * p->L, n = (g1 - g0) * p->L;
    if (p->v.inner >= FB_BLOCK_RUN) {   /* each run its own loop, its ends in masked vectors */
        for (int64_t c = 0; c < n / p->v.inner; c++) {
            const FN(coef) co = FN(chan_coef)(&q[c / p->v.Cg], c % p->v.Cg);
            const int64_t at = off + c * p->v.inner;
            FN(run_apply_fused)(k->x + at, k->y + at, p->v.inner, &co, k->stream, FB_AT(k->res, at),
                                k->relu, NULL, 1);
        }
        return;
    }
    FN(short_runs)(k->x + off, NULL, k->y + off, n, p->v.inner, p->v.Cg, q, k->stream);
    if (k->res || k->relu) FN(epi_run)(k->y + off, FB_AT(k->res, off), n, k->relu);
}

static void FN(forward_task)(void *vctx, int64_t task)
{
    const FN(fwd_ctx) *k = (const FN(fwd_ctx) *)vctx;
    const fb_norm_plan *p = k->p;
    const int64_t ch = task / p->n_blocks, g = task % p->n_blocks * p->GB, o0 = ch * p->OC;
    const int64_t o1 = o0 + p->OC < p->v.outer ? o0 + p->OC : p->v.outer;
    if (p->blocked) {   /* the task is (sample ch, block g) */
        FN(forward_block)(k, ch, g, g + p->GB < p->v.G ? g + p->GB : p->v.G);
        if (k->stream) fb_stream_fence();
        return;
    }
    /* Short rows (a group a row, at most FB_PAIR_ROW_BYTES) in pairs: both rows' statistics, then
     * both applies, so that a row's scalar tail (totals, divisions, square root) overlaps the
     * other row's vector loop.  The same operations a row, so the same bits. */
    const int pairs = p->v.G == 1 && p->v.mid == 1 && p->v.inner == 1 &&
                      p->L * (int64_t)sizeof(S) <= FB_PAIR_ROW_BYTES;
    double mu[2], r[2];
    int64_t o = o0;
    for (; pairs && o + 1 < o1; o += 2) {
        for (int q = 0; q < 2; q++) FN(forward_stats)(k, o + q, g, 1, 0, &mu[q], &r[q]);
        for (int q = 0; q < 2; q++) FN(forward_apply)(k, o + q, g, 1, mu[q], r[q]);
    }
    for (; o < o1; o++) {
        const uintptr_t own = p->elementwise ? 0
                              : FN(own_next)(p, k->nt, task, p->n_fwd_tasks, p->n_blocks, p->GB,
                                             o, g, o1);
        FN(forward_stats)(k, o, g, 0, own, &mu[0], &r[0]);
        FN(forward_apply)(k, o, g, 0, mu[0], r[0]);
    }
    if (k->stream) fb_stream_fence();
}

/* ---- the columns layout: a sample as mid rows of V = C * inner columns ---------------------- */

/* Per-chunk scratch of the columns layout: 6 V doubles and 4 coefficient arrays (cols_span). */
typedef struct {
    fb_norm_merge mg;                    /* backward: partial sums, n_chunks * V, and results */
    const fb_norm_plan *p;
    const S *x, *dy;
    S *y;
    const T *gamma, *beta;
    double eps;
    int centered, stream;
    const double *mean_in, *invstd_in;   /* backward */
    double *mean, *invstd;               /* forward */
    double *dw;                          /* n_chunks * 6V */
    FB_C *tw;                            /* n_chunks * 4 arrays of cols_span, from a line */
    const S *res;                        /* forward's fused epilogue: residual (or NULL), relu */
    int relu;
    const S *ym;                         /* backward: the fused forward's output (or NULL) */
    S *gbuf;                             /* backward: the masked dy (or NULL: dy as given) */
    int nt;                              /* forward: the threads the tasks run on */
    int var_out;                         /* forward: FB_NORM_VAR, as fwd_ctx's */
} FN(cols_ctx);

/* Spread one group's coefficients over its columns [v0, v0 + L); gamma per column's channel.
 * em, es, ec, eg receive the float64 formula (forward: eg 0, or for make_fwd_coef's split scale
 * es = r and eg = gamma); returns 1 if the group needs it. */
static int FN(cols_coefs)(const FN(cols_ctx) *k, int64_t v0, int64_t L, double mu, double s,
                          double r, double c, int grad, FB_C *tm, FB_C *ts, FB_C *tg, FB_C *tc,
                          double *em, double *es, double *eg, double *ec)
{
    const int64_t inner = k->p->v.inner;
    const FN(coef) co = FN(make_coef)(mu, s, r, c);
    int exact = co.exact;
    for (int64_t v = v0; v < v0 + L; v++) {
        const int64_t ch = v / inner;
        const double gm = k->gamma ? (double)k->gamma[ch] : 1.0;
        if (grad) {   /* dx = dy (gamma r) + ((x - m) s + c) */
            tm[v] = co.tm, ts[v] = co.ts, tc[v] = co.tc, tg[v] = (FB_C)(gm * r);
            em[v] = mu, es[v] = s, ec[v] = c, eg[v] = gm * r;
            if (isfinite(eg[v]) && !isfinite((double)tg[v])) exact = 1;   /* beyond T's range */
            if (fb_split_overflows(gm, r)) exact = 1;   /* and float64's */
        } else {      /* y = (x - m) (gamma r) + beta: make_fwd_coef per column */
            const FN(coef) cc = FN(make_fwd_coef)(mu, gm, r, k->beta ? (double)k->beta[ch] : 0.0);
            tm[v] = cc.tm, ts[v] = cc.ts, tc[v] = cc.tc;
            em[v] = mu, es[v] = cc.split ? r : cc.s, eg[v] = cc.split ? gm : 0.0, ec[v] = cc.c;
            exact |= cc.exact;
        }
    }
    return exact;
}

/* The coefficient arrays of a chunk: (R + 1) V elements each and a line of slack (cols_place),
 * in whole lines, each starting a line. */
static int64_t FN(cols_span)(const fb_norm_plan *p)
{
    const int64_t le = 64 / (int64_t)sizeof(FB_C);
    return ((p->R + 1) * p->P + 2 * le - 1) / le * le;
}

/* p rounded up to a 64-byte line (the allocations of the coefficient arrays have a line spare). */
static FB_C *FN(line_up)(FB_C *p)
{
    return (FB_C *)(void *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* Where a chunk's coefficient arrays start (t0: their lines) for a sample whose apply starts
 * with h elements: every call after the first starts at column h % V, and loads whole lines. */
static FB_C *FN(cols_place)(FB_C *t0, const fb_norm_plan *p, int64_t h)
{
    const int64_t le = 64 / (int64_t)sizeof(FB_C), q = h % p->P;
    return t0 + (le - q % le) % le;
}

/* The apply of a sample, R rows a call (short rows made long runs): the coefficients of columns
 * [0, V) are first repeated over R + 1 rows, so that a call may start within a row.  The first
 * call takes the h elements before y's first line (fb_line_head), so that the later ones store
 * whole lines (and load them, from x with y's offset and from arrays placed by cols_place): no
 * line is shared by two calls (streamed, both would store it normally, read from memory first),
 * and no vector spans two lines.  rg: the backward's invstd of the sample's groups (NULL
 * forward), for the float64 formula's dy term. */
static void FN(cols_apply_rows)(const FN(cols_ctx) *k, const S *xs, const S *gs, S *ys, int64_t h,
                                int exact, FB_C *tm, FB_C *ts, FB_C *tg, FB_C *tc,
                                const double *em, const double *es, const double *eg,
                                const double *ec, const double *rg)
{
    const int64_t V = k->p->P, mid = k->p->v.mid, R = k->p->R, n = mid * V;
    if (!exact) {
        for (int64_t q = 1; q <= R; q++) {
            memcpy(tm + q * V, tm, sizeof(FB_C) * (size_t)V);
            memcpy(ts + q * V, ts, sizeof(FB_C) * (size_t)V);
            memcpy(tc + q * V, tc, sizeof(FB_C) * (size_t)V);
            if (tg) memcpy(tg + q * V, tg, sizeof(FB_C) * (size_t)V);
        }
        for (int64_t e = 0, w; e < n; e += w) {
            const int64_t q = e % V;
            w = fb_call_len(e, h, R * V, n);
            const FN(row_src) src = {NULL, 0, q, V, 0, em, es, eg, ec};   /* column (q + j) % V */
            FN(row_apply)(xs + e, gs ? gs + e : NULL, ys + e, w, tm + q, ts + q, tg ? tg + q : NULL,
                          tc + q, k->stream, &src);
        }
        return;
    }
    for (int64_t m = 0; m < mid; m++) {
        const S *xr = xs + m * V, *gr = gs ? gs + m * V : NULL;
        S *yr = ys + m * V;
        for (int64_t v = 0; v < V; v++) {
            const double d = (double)FB_LD(xr[v]) - em[v];
            double t = (!gr && eg[v] != 0.0 ? (d * es[v]) * eg[v] : d * es[v]) + ec[v];
            if (gr) {   /* dy eg[v], eg[v] = gamma r: those factors apart where it overflows */
                const double gm = k->gamma ? (double)k->gamma[v / k->p->v.inner] : 1.0;
                t = fb_times_split((double)FB_LD(gr[v]), gm, rg[v / k->p->L]) + t;
            }
            yr[v] = FB_ST64(fb_nan1(t));
        }
    }
}

/* Column sums of rows [r0, r1) of the columns layout (V columns a row): with d = x - k[v] and
 * w = q (has_q, a constant) or d, s1[v] += w and s2[v] += w * d, row after row.  Without q
 * (the statistics) four rows a step, so that each column's sums are loaded and stored once per
 * four rows, their lines prefetched FB_PF_AHEAD bytes ahead, and the same lines `next` bytes
 * on (the next sample, or 0: none) into L2; with q, a row a step (four rows of x and dy a step
 * were slower from memory). */
static FB_INLINE void FN(cols_pair_sums_fz)(const S *xs, const S *qs, const int has_q, int64_t V,
                                            int64_t r0, int64_t r1, const double *FB_RESTRICT k,
                                            double *FB_RESTRICT s1, double *FB_RESTRICT s2,
                                            uintptr_t next)
{
    int64_t r = r0;
    for (; !has_q && r + 4 <= r1; r += 4) {
        const S *FB_RESTRICT xr = xs + r * V;
        for (int64_t e = 0; e < 4 * V; e += 64 / (int64_t)sizeof(S)) {
            fb_prefetch((const void *)((uintptr_t)(xr + e) + FB_PF_AHEAD));
            if (next) fb_prefetch_l2((const void *)((uintptr_t)(xr + e) + next));
        }
        int64_t v = 0;
        for (; v + FB_VD_W <= V; v += FB_VD_W) {   /* the squares' sums and half of the others' */
            const fb_vd kv = fb_vd_load_f64(k + v);   /* on the multiply-add unit (pair_sums_fz) */
            fb_vd a = fb_vd_load_f64(s1 + v), b = fb_vd_load_f64(s2 + v);
            for (int j = 0; j < 4; j++) {
                const fb_vd d = fb_vd_sub(FB_VD_LOAD_T(xr + j * V + v), kv);
                a = j & 1 ? fb_vd_add_m(a, d) : fb_vd_add(a, d);
                b = fb_vd_add_m(fb_vd_mul(d, d), b);
            }
            fb_vd_store_f64(s1 + v, a), fb_vd_store_f64(s2 + v, b);
        }
        for (; v < V; v++) {
            double a = s1[v], b = s2[v];
            for (int j = 0; j < 4; j++) {
                const double d = (double)FB_LD(xr[j * V + v]) - k[v];
                a += d;
                b += d * d;
            }
            s1[v] = a, s2[v] = b;
        }
    }
    for (; r < r1; r++) {
        const S *FB_RESTRICT xr = xs + r * V, *FB_RESTRICT qr = has_q ? qs + r * V : NULL;
        for (int64_t v = 0; v < V; v++) {
            const double d = (double)FB_LD(xr[v]) - k[v];
            const double w = has_q ? (double)FB_LD(qr[v]) : d;
            s1[v] += w;
            s2[v] += w * d;
        }
    }
}

static void FN(cols_forward_task)(void *vctx, int64_t ch)
{
    const FN(cols_ctx) *k = (const FN(cols_ctx) *)vctx;
    const fb_norm_plan *p = k->p;
    const int64_t V = p->P, mid = p->v.mid, G = p->v.G, L = p->L, o0 = ch * p->OC;
    const int64_t o1 = o0 + p->OC < p->v.outer ? o0 + p->OC : p->v.outer;
    double *sh = k->dw + ch * 6 * V, *s1 = sh + V, *s2 = s1 + V, *cm = s2 + V, *cq = cm + V;
    double *eg = cq + V;
    const int64_t RS = FN(cols_span)(p);
    for (int64_t o = o0; o < o1; o++) {
        const S *xs = k->x + o * p->per_outer;
        S *ys = k->y + o * p->per_outer;
        const int64_t h = fb_line_head(ys, sizeof(S), p->per_outer);
        FB_C *tm = FN(cols_place)(k->tw + ch * 4 * RS, p, h), *ts = tm + RS, *tc = ts + RS;
        /* Each column: shifted sums over segments of FB_COLS_ROWS rows, Chan-merged in order
         * (the merge weights depend on the counts alone: one step for every column).  They
         * prefetch the sample this thread takes next (the task's next, or the first of the task
         * nt on: the tasks are taken in turn), so that memory works while this one is applied
         * from cache (a sample is more than L2 holds, but less than L3). */
        const uintptr_t next = FN(next_taken)(p, k->nt, ch, p->n_tasks, 1, 0, o, 0, o1);
        double n = 0.0;
        for (int64_t r0 = 0; r0 < mid; r0 += FB_COLS_ROWS) {
            const int64_t r1 = r0 + FB_COLS_ROWS < mid ? r0 + FB_COLS_ROWS : mid;
            const double cnt = (double)(r1 - r0);
            for (int64_t v = 0; v < V; v++)
                sh[v] = k->centered ? (double)FB_LD(xs[r0 * V + v]) : 0.0, s1[v] = 0.0, s2[v] = 0.0;
            FN(cols_pair_sums_fz)(xs, NULL, 0, V, r0, r1, sh, s1, s2, next);
            if (!k->centered) {
                for (int64_t v = 0; v < V; v++) cq[v] = n == 0.0 ? s2[v] : cq[v] + s2[v];
            } else if (n == 0.0) {
                for (int64_t v = 0; v < V; v++) fb_shifted_result(sh[v], cnt, s1[v], s2[v], &cm[v], &cq[v]);
            } else {
                const double nt = n + cnt, wm = cnt / nt, wq = n * cnt / nt;
                for (int64_t v = 0; v < V; v++) {
                    double mb, m2b;
                    fb_shifted_result(sh[v], cnt, s1[v], s2[v], &mb, &m2b);
                    fb_chan_step(&cm[v], &cq[v], mb, m2b, wm, wq);
                }
            }
            n += cnt;
        }
        /* Each group: its columns merged in order, then its coefficients per column. */
        int exact = 0;
        for (int64_t g = 0; g < G; g++) {
            double nn = 0.0, mu = 0.0, m2 = 0.0, sq = 0.0;
            for (int64_t v = g * L; v < (g + 1) * L; v++) {
                if (k->centered) fb_chan_merge(&nn, &mu, &m2, n, cm[v], cq[v]);
                else sq += cq[v], nn += n;
            }
            if (k->centered && FN(needs_refine)(mu, m2, nn))   /* far from zero: batch norm's */
                FN(refine_stats)(xs + g * L, mid, V, L, &mu, &m2);
            const double var = (k->centered ? m2 : sq) / nn, r = 1.0 / sqrt(var + k->eps);
            k->mean[o * G + g] = k->centered ? fb_nan1(mu) : 0.0;
            k->invstd[o * G + g] = fb_nan1(k->var_out ? var : r);
            exact |= FN(cols_coefs)(k, g * L, L, k->centered ? mu : 0.0, r, r, 0.0, 0, tm, ts, NULL,
                                    tc, sh, s1, eg, s2);
        }
        FN(cols_apply_rows)(k, xs, NULL, ys, h, exact, tm, ts, NULL, tc, sh, s1, eg, s2, NULL);
        if (k->res || k->relu)
            FN(epi_run)(k->y + o * p->per_outer, FB_AT(k->res, o * p->per_outer), p->per_outer,
                        k->relu);
    }
    if (k->stream) fb_stream_fence();
}

static void FN(cols_backward_task)(void *vctx, int64_t ch)
{
    const FN(cols_ctx) *k = (const FN(cols_ctx) *)vctx;
    const fb_norm_plan *p = k->p;
    const int64_t V = p->P, mid = p->v.mid, G = p->v.G, L = p->L, o0 = ch * p->OC;
    const int64_t o1 = o0 + p->OC < p->v.outer ? o0 + p->OC : p->v.outer;
    double *vm = k->dw + ch * 6 * V, *s1 = vm + V, *s2 = s1 + V, *es = s2 + V, *ec = es + V;
    double *eg = ec + V;
    const int64_t RS = FN(cols_span)(p);
    double *pdg = k->mg.pdg + ch * V, *pdb = k->mg.pdb + ch * V;
    const double n = (double)p->n;
    for (int64_t o = o0; o < o1; o++) {
        const S *xs = k->x + o * p->per_outer, *gs = k->dy + o * p->per_outer;
        S *ys = k->y + o * p->per_outer;
        const int64_t h = fb_line_head(ys, sizeof(S), p->per_outer);
        FB_C *tm = FN(cols_place)(k->tw + ch * 4 * RS, p, h), *ts = tm + RS, *tg = ts + RS;
        FB_C *tc = tg + RS;
        if (k->gbuf) {   /* the fused backward: the sample's dy masked once, read from there */
            FN(mask_run)(gs, FB_AT(k->ym, o * p->per_outer), k->gbuf + o * p->per_outer,
                         p->per_outer);
            gs = k->gbuf + o * p->per_outer;
        }
        for (int64_t v = 0; v < V; v++)
            vm[v] = k->centered ? k->mean_in[o * G + v / L] : 0.0, s1[v] = 0.0, s2[v] = 0.0;
        FN(cols_pair_sums_fz)(xs, gs, 1, V, 0, mid, vm, s1, s2, 0);
        int exact = 0;
        for (int64_t g = 0; g < G; g++) {
            const double r = k->invstd_in[o * G + g], mu = vm[g * L];
            double A = 0.0, B = 0.0, coef[3], unused;
            for (int64_t v = g * L; v < (g + 1) * L; v++) {
                const double w = k->gamma ? (double)k->gamma[v / p->v.inner] : 1.0;
                A += w * s1[v], B += w * s2[v];
                pdb[v] = o == o0 ? s1[v] : pdb[v] + s1[v];
                pdg[v] = o == o0 ? s2[v] * r : pdg[v] + s2[v] * r;
            }
            fb_grad_coefs(A, B, n, r, 1.0, &unused, &unused, coef);
            if (!k->centered) coef[2] = 0.0;
            exact |= FN(cols_coefs)(k, g * L, L, mu, coef[0], r, coef[2], 1, tm, ts, tg, tc, vm, es,
                                    eg, ec);
        }
        FN(cols_apply_rows)(k, xs, gs, ys, h, exact, tm, ts, tg, tc, vm, es, eg, ec,
                            k->invstd_in + o * G);
    }
    if (k->stream) fb_stream_fence();
}

/* ---- public kernels ----------------------------------------------------------------------- */

/* Where gamma and beta are read element by element with a streamed output y (inner == 1):
 * copies of them 1024 and 1536 bytes past y modulo 4 KB, clear of y's stores (4K aliasing).
 * Returns the block to free; NULL keeps the caller's arrays (none needed, or no memory). */
static void *FN(params_placed)(const fb_norm_plan *p, const S *y, int stream, const T **gamma,
                               const T **beta)
{
    if (!stream || !p->elementwise || p->v.inner != 1 || (!*gamma && !*beta)) return NULL;
    const size_t n = (size_t)p->C, bytes = sizeof(T) * n;
    char *block = (char *)malloc(2 * (bytes + 4096) + 2 * sizeof(T));
    if (!block) return NULL;
    char *at = block;
    const T **params[2] = {gamma, beta};
    for (int a = 0; a < 2; a++) {
        if (!*params[a]) continue;
        at = fb_place_past(at, y, (size_t)(1024 + 512 * a), sizeof(T));
        memcpy(at, *params[a], bytes);
        *params[a] = (const T *)at;
        at += bytes;
    }
    return block;
}

static fb_status FN(forward)(const S *x, S *y, const fb_norm_view *v, const T *gamma, const T *beta,
                             double eps, int centered, double *mean, double *invstd,
                             const S *residual, int relu, int n_threads)
{
    if (!fb_norm_view_ok(v)) return FB_EINVAL;
    const fb_norm_plan p = fb_norm_plan_make(v);
    if (v->outer == 0 || v->G == 0) return FB_OK;
    if (p.n == 0) return FB_EINVAL;
    const int var_out = (centered & FB_NORM_VAR) != 0;
    centered &= ~FB_NORM_VAR;
    const int64_t total = v->outer * p.per_outer;
    /* fused: the epilogue rereads the outputs from cache, so the apply does not stream them */
    const int stream = !residual && !relu && fb_stream_output(total * (int64_t)sizeof(S));
    if (p.columns) {
        double *dw = (double *)malloc(sizeof(double) * 6 * (size_t)(p.n_chunks * p.P));
        FB_C *tw = (FB_C *)malloc(sizeof(FB_C) * (size_t)(4 * p.n_chunks * FN(cols_span)(&p)) + 64);
        if (!dw || !tw) {
            free(dw), free(tw);
            return FB_ENOMEM;
        }
        const int nt = fb_threads_for(total, n_threads);
        FN(cols_ctx) c = {{&p, NULL, NULL, NULL, NULL}, &p, x, NULL, y, gamma, beta, eps, centered,
                          stream, NULL, NULL, mean, invstd, dw, FN(line_up)(tw), residual, relu,
                          NULL, NULL, nt, var_out};
        fb_parallel_for(p.n_tasks, nt, FN(cols_forward_task), &c);
        free(dw), free(tw);
        return FB_OK;
    }
    const int nt = fb_threads_for(total, n_threads);
    void *placed = FN(params_placed)(&p, y, stream, &gamma, &beta);
    FN(fwd_ctx) k = {&p, x, y, gamma, beta, eps, centered, stream, mean, invstd, residual, relu,
                     nt == 1 && fb_first_prefetch, var_out, nt};
    fb_parallel_for(p.n_fwd_tasks, nt, FN(forward_task), &k);
    free(placed);
    return FB_OK;
}

/* ---- backward: gradient sums, then the gradient apply while the group is in cache ---------- */

typedef struct {
    fb_norm_merge mg;           /* the partial sums (per chunk, P each) and the results */
    const fb_norm_plan *p;
    const S *dy, *x;
    S *dx;
    const double *mean, *invstd;
    const T *gamma;
    int centered, stream;
    const S *ym;   /* the fused forward's output (or NULL) */
    S *gbuf;       /* the masked dy, written per group before its first read (or NULL) */
    int pf_first;  /* one thread (and fb_first_prefetch): the sums prefetch the next group too */
    int nt;        /* the threads the tasks run on */
} FN(bwd_ctx);

/* Partial per-channel sums: the chunk's first group assigns, the others add (so that one group
 * gives its own sum bit for bit, -0 included). */
#define FB_PART(dst, val) ((dst) = first ? (val) : (dst) + (val))

/* out[e] = gamma of element e0 + e of a run (channel (e0 + e) / inner), e < w: the channel
 * stepped along the run, not divided for. */
static inline void FN(elem_gamma)(const T *gm, int64_t e0, int64_t w, int64_t inner, double *out)
{
    int64_t c = e0 / inner, at = e0 - c * inner;
    for (int64_t e = 0; e < w; e++) {
        out[e] = (double)gm[c];
        if (++at == inner) at = 0, c++;
    }
}

/* The dy of the group at off that every later read sees: in the fused backward, masked once
 * (into gbuf); otherwise dy as given. */
static const S *FN(group_dy)(const FN(bwd_ctx) *k, int64_t off)
{
    const fb_norm_plan *p = k->p;
    if (!k->gbuf) return k->dy + off;
    for (int64_t m = 0; m < p->v.mid; m++)
        FN(mask_run)(k->dy + off + m * p->stride, FB_AT(k->ym, off + m * p->stride),
                     k->gbuf + off + m * p->stride, p->L);
    return k->gbuf + off;
}

/* The elementwise gradient of group (o, g) from its lane sums: the coefficients, then
 * dx = dy gamma r + ((x - mean) s + c) over its runs (gb: the group's dy as group_dy gives it).
 * A row (inner == 1, mid == 1) prefetches the x and dy of the row `ahead` samples on (the next
 * one, or with long rows taken in pairs the next pair's): into L2 from FB_PF_L2_ROW bytes, into
 * L1 below (measured best either side). */
static void FN(elem_grad_finish)(const FN(bwd_ctx) *k, int64_t o, int64_t g, const S *gb,
                                 const double la[FB_LANES], const double lb[FB_LANES], int ahead)
{
    const fb_norm_plan *p = k->p;
    const int64_t mid = p->v.mid, inner = p->v.inner, L = p->L, stride = p->stride;
    const int64_t off = o * p->per_outer + g * L, og = o * p->v.G + g;
    const S *xb = k->x + off;
    S *db = k->dx + off;
    const double mu = k->centered ? k->mean[og] : 0.0, r = k->invstd[og], n = (double)p->n;
    const T *gm = k->gamma ? k->gamma + g * p->v.Cg : NULL;
    double coef[3], unused;
    fb_grad_coefs(fb_lanes_total(la), fb_lanes_total(lb), n, r, 1.0, &unused, &unused, coef);
    if (!k->centered) coef[2] = 0.0;
    const FN(coef) co = FN(make_coef)(mu, coef[0], r, coef[2]);
    if (inner == 1 && !co.exact) {
        const int pf = mid == 1 && o + ahead < p->v.outer;
        const int64_t to = ahead * p->per_outer;   /* dy as given: a masked row is not yet written */
        for (int64_t m = 0; m < mid; m++)
            FN(row_grad_affine)(gb + m * stride, xb + m * stride, db + m * stride, L, &co, gm, r,
                                pf ? xb + to : NULL, pf ? k->dy + off + to : NULL,
                                L * (int64_t)sizeof(S) >= FB_PF_L2_ROW, k->stream);
        return;
    }
    if (!gm) {
        for (int64_t m = 0; m < mid; m++)
            FN(run_grad_apply)(gb + m * stride, xb + m * stride, db + m * stride, L, &co, k->stream,
                               NULL, NULL);
        return;
    }
    FB_C tg[FB_EBLK];
    double tgd[FB_EBLK];   /* gamma in float64, for the float64 formulas */
    for (int64_t e0 = 0; e0 < L; e0 += FB_EBLK) {
        const int64_t w = L - e0 < FB_EBLK ? L - e0 : FB_EBLK;
        FN(elem_gamma)(gm, e0, w, inner, tgd);
        if (co.exact) {
            for (int64_t m = 0; m < mid; m++)
                for (int64_t e = e0; e < e0 + w; e++) {
                    const int64_t at = m * stride + e;
                    db[at] = FB_ST64(fb_nan1(fb_times_split((double)FB_LD(gb[at]), tgd[e - e0], r) +
                                         (((double)FB_LD(xb[at]) - mu) * coef[0] + coef[2])));
                }
            continue;
        }
        for (int64_t e = 0; e < w; e++) tg[e] = (FB_C)(tgd[e] * r);
        for (int64_t m = 0; m < mid; m++)
            FN(elem_grad_apply)(gb + m * stride + e0, xb + m * stride + e0, db + m * stride + e0, w,
                                tg, tgd, &co, k->stream);
    }
}

/* Channel c's gradient totals in group (o, g) at xb, gb (its dy as group_dy gives it), over
 * whole-channel runs: t1 = sum(dy), t2 = sum(dy (x - mu)). */
static FB_INLINE void FN(chan_grad_totals)(const FN(bwd_ctx) *k, const S *xb, const S *gb,
                                           int64_t c, double mu, uintptr_t ahead, double *t1,
                                           double *t2)
{
    const fb_norm_plan *p = k->p;
    const int64_t mid = p->v.mid, inner = p->v.inner, stride = p->stride;
    if (mid == 1 && inner <= FB_SEG) {   /* one run, one piece */
        FN(run_totals)(xb + c * inner, gb + c * inner, 1, inner, mu, t1, t2, ahead);
        return;
    }
    double sdy[FB_LANES], sdyx[FB_LANES];
    fb_lanes_zero(sdy), fb_lanes_zero(sdyx);
    for (int64_t m = 0; m < mid; m++)   /* L1-sized pieces, as batch norm's slab path */
        for (int64_t s = 0; s < inner; s += FB_SEG)
            FN(run_pair_sums)(xb + m * stride + c * inner + s, gb + m * stride + c * inner + s, 1,
                              inner - s < FB_SEG ? inner - s : FB_SEG, mu, sdy, sdyx, ahead);
    *t1 = fb_lanes_total(sdy), *t2 = fb_lanes_total(sdyx);
}

/* The rule of group (o, g)'s channels' coefficients from its s and c (fb_grad_coefs' coef[0],
 * coef[2]): channel c's, make_coef(mu, s, gamma_c r, c). */
static FB_INLINE FN(chan_rule) FN(grad_rule)(const FN(bwd_ctx) *k, int64_t o, int64_t g, double s,
                                            double c)
{
    const int64_t og = o * k->p->v.G + g;
    const FN(chan_rule) q = {k->centered ? k->mean[og] : 0.0, k->invstd[og], s,
                             k->centered ? c : 0.0, k->gamma ? k->gamma + g * k->p->v.Cg : NULL,
                             NULL, 1};
    return q;
}

/* A group of one channel (o, g) from its totals: gamma factors out, batch norm's coefficients
 * s and c (grad_rule's); its parts of dgamma and dbeta added. */
static FB_INLINE void FN(chan1_grad_coefs)(const FN(bwd_ctx) *k, int64_t o, int64_t g, double t1,
                                           double t2, double *pdg, double *pdb, int first,
                                           double *s, double *c)
{
    const double r = k->invstd[o * k->p->v.G + g];
    double coef[3], dbeta, dgamma;
    fb_grad_coefs(t1, t2, (double)k->p->n, r, k->gamma ? (double)k->gamma[g] : 1.0, &dbeta,
                  &dgamma, coef);
    FB_PART(pdb[g], dbeta);
    FB_PART(pdg[g], dgamma);
    *s = coef[0], *c = coef[2];
    const double gm = k->gamma ? (double)k->gamma[g] : 1.0;
    if (fb_split_overflows(gm, r)) {
        /* g = gamma r beyond float64 (s and c with it): those of gamma-weighted sums, as a group
         * of several channels has, beside dy's term gamma (r dy) (make_bwd_coef) */
        double unused;
        fb_grad_coefs(gm * t1, gm * t2, (double)k->p->n, r, 1.0, &unused, &unused, coef);
        *s = coef[0], *c = coef[2];
    }
}

/* Group (o, g)'s gradient sums over whole-channel runs (gb: its dy as group_dy gives it), their
 * parts of dgamma and dbeta added, and the rule of its channels' coefficients. */
static FN(chan_rule) FN(group_grad_rule)(const FN(bwd_ctx) *k, int64_t o, int64_t g, const S *gb,
                                         double *pdg, double *pdb, int first, uintptr_t ahead)
{
    const fb_norm_plan *p = k->p;
    const int64_t Cg = p->v.Cg, c0 = g * Cg, og = o * p->v.G + g;
    const S *xb = k->x + o * p->per_outer + g * p->L;
    const double mu = k->centered ? k->mean[og] : 0.0, r = k->invstd[og];
    double t1, t2, coef[3], unused, A = 0.0, B = 0.0;
    if (Cg == 1) {
        FN(chan_grad_totals)(k, xb, gb, 0, mu, ahead, &t1, &t2);
        FN(chan1_grad_coefs)(k, o, g, t1, t2, pdg, pdb, first, &coef[0], &coef[2]);
        return FN(grad_rule)(k, o, g, coef[0], coef[2]);
    }
#ifdef FB_VD_LOAD_T_HEAD
    if (p->v.mid == 1 && p->v.inner < FB_TOTALS_RUN) {   /* chan_grad_totals' bits */
        enum { NC = 32 };   /* channels whose totals are taken together */
        double mus[NC], u1[NC], u2[NC];
        for (int j = 0; j < NC; j++) mus[j] = mu;
        for (int64_t c1 = 0; c1 < Cg; c1 += NC) {
            const int64_t m = Cg - c1 < NC ? Cg - c1 : NC;
            FN(runs_pair_totals)(xb + c1 * p->v.inner, gb + c1 * p->v.inner, 1, p->v.inner, m,
                                 mus, u1, u2, ahead);
            for (int64_t j = 0; j < m; j++) {
                const double w = k->gamma ? (double)k->gamma[c0 + c1 + j] : 1.0;
                A += w * u1[j], B += w * u2[j];
                FB_PART(pdb[c0 + c1 + j], u1[j]);
                FB_PART(pdg[c0 + c1 + j], u2[j] * r);
            }
        }
        fb_grad_coefs(A, B, (double)p->n, r, 1.0, &unused, &unused, coef);
        return FN(grad_rule)(k, o, g, coef[0], coef[2]);
    }
#endif
    for (int64_t c = 0; c < Cg; c++) {
        FN(chan_grad_totals)(k, xb, gb, c, mu, ahead, &t1, &t2);
        const double w = k->gamma ? (double)k->gamma[c0 + c] : 1.0;
        A += w * t1, B += w * t2;
        FB_PART(pdb[c0 + c], t1);
        FB_PART(pdg[c0 + c], t2 * r);
    }
    fb_grad_coefs(A, B, (double)p->n, r, 1.0, &unused, &unused, coef);
    return FN(grad_rule)(k, o, g, coef[0], coef[2]);
}

/* Group (o, g)'s gradient apply over whole-channel runs, channel c's coefficients chan_coef(q, c)
 * (gb: its dy as group_dy gives it). */
static void FN(group_grad_apply)(const FN(bwd_ctx) *k, int64_t o, int64_t g, const S *gb,
                                 const FN(chan_rule) *q)
{
    const fb_norm_plan *p = k->p;
    const int64_t mid = p->v.mid, Cg = p->v.Cg, inner = p->v.inner, L = p->L, stride = p->stride;
    const int64_t off = o * p->per_outer + g * L;
    const S *xb = k->x + off;
    S *db = k->dx + off;
    const int next = FN(has_next_group)(p, o, g);   /* its x and dy prefetched in the apply */
    for (int64_t m = 0; m < mid; m++)
        for (int64_t c = 0; c < Cg; c++) {
            const FN(coef) co = FN(chan_coef)(q, c);
            const int64_t at = m * stride + c * inner;
            FN(run_grad_apply)(gb + at, xb + at, db + at, inner, &co, k->stream,
                               next ? xb + L + at : NULL, next ? k->dy + off + L + at : NULL);
        }
}

/* A plan's block (forward_block's): each group's gradient sums, then the gradient apply over them
 * all, as forward_block's.  Groups of one channel as forward_block's: every group's totals, then
 * their rules. */
static void FN(backward_block)(const FN(bwd_ctx) *k, int64_t o, int64_t g0, int64_t g1,
                               double *pdg, double *pdb, int first, uintptr_t next)
{
    const fb_norm_plan *p = k->p;
    FN(chan_rule) q[FB_BLOCK_GROUPS];
    const S *gb = NULL;
    if (p->v.Cg == 1) {
        double t1[FB_BLOCK_GROUPS], t2[FB_BLOCK_GROUPS], mu[FB_BLOCK_GROUPS];
        for (int64_t g = g0; g < g1; g++) {
            if (k->gbuf) FN(group_dy)(k, o * p->per_outer + g * p->L);   /* masks dy into gbuf */
            mu[g - g0] = k->centered ? k->mean[o * p->v.G + g] : 0.0;
        }
        gb = (k->gbuf ? k->gbuf : k->dy) + o * p->per_outer + g0 * p->L;   /* group_dy's */
        const S *xb = k->x + o * p->per_outer + g0 * p->L;
#ifdef FB_VD_LOAD_T_HEAD
        if (p->L < FB_TOTALS_RUN)   /* chan_grad_totals' bits (one run a group: run_totals') */
            FN(runs_pair_totals)(xb, gb, 1, p->L, g1 - g0, mu, t1, t2, next);
        else
#endif
            for (int64_t j = 0; j < g1 - g0; j++)
                FN(chan_grad_totals)(k, xb + j * p->L, gb + j * p->L, 0, mu[j], next, &t1[j],
                                     &t2[j]);
        double s[FB_BLOCK_GROUPS], c[FB_BLOCK_GROUPS];
        for (int64_t j = 0; j < g1 - g0; j++)   /* a loop of its own, which vectorizes */
            FN(chan1_grad_coefs)(k, o, g0 + j, t1[j], t2[j], pdg, pdb, first, &s[j], &c[j]);
        for (int64_t j = 0; j < g1 - g0; j++) q[j] = FN(grad_rule)(k, o, g0 + j, s[j], c[j]);
    } else {
        for (int64_t g = g0; g < g1; g++) {
            const S *gg = FN(group_dy)(k, o * p->per_outer + g * p->L);
            if (g == g0) gb = gg;
            q[g - g0] = FN(group_grad_rule)(k, o, g, gg, pdg, pdb, first, next);
        }
    }
    const int64_t off = o * p->per_outer + g0 * p->L;
    if (p->v.inner >= FB_BLOCK_RUN) {   /* as forward_block's */
        for (int64_t c = 0; c < (g1 - g0) * p->v.Cg; c++) {
            const FN(coef) co = FN(chan_coef)(&q[c / p->v.Cg], c % p->v.Cg);
            const int64_t at = c * p->v.inner;
            FN(run_grad_apply_fused)(gb + at, k->x + off + at, k->dx + off + at, p->v.inner, &co,
                                     k->stream, NULL, NULL, NULL, NULL, 1);
        }
        return;
    }
    FN(short_runs)(k->x + off, gb, k->dx + off, (g1 - g0) * p->L, p->v.inner, p->v.Cg, q,
                   k->stream);
}

/* gd: the group's gamma in float64 when inner == 1 (or NULL); own: own_next's (whole-channel
 * runs). */
static void FN(backward_group)(const FN(bwd_ctx) *k, int64_t o, int64_t g, double *pdg,
                               double *pdb, int first, const double *gd, uintptr_t own)
{
    const fb_norm_plan *p = k->p;
    const int64_t mid = p->v.mid, Cg = p->v.Cg, inner = p->v.inner, L = p->L, stride = p->stride;
    const int64_t off = o * p->per_outer + g * L;
    const S *xb = k->x + off, *gb = FN(group_dy)(k, off);
    if (!p->elementwise) {
        /* the next group's x and dy (contiguous when mid == 1) prefetched on one thread, on
         * more the group this thread takes next */
        const uintptr_t ahead =
            own ? own : FN(has_next_group)(p, o, g) && k->pf_first ? (uintptr_t)L * sizeof(S) : 0;
        const FN(chan_rule) q = FN(group_grad_rule)(k, o, g, gb, pdg, pdb, first, ahead);
        if (mid == 1 && Cg > 1 && inner < FB_SHORT_RUN)
            FN(short_runs)(xb, gb, k->dx + off, L, inner, Cg, &q, k->stream);
        else
            FN(group_grad_apply)(k, o, g, gb, &q);
        return;
    }
    /* Elementwise: lanes over the run for the group's sums, per-element partials. */
    const int64_t og = o * p->v.G + g;
    const double mu = k->centered ? k->mean[og] : 0.0, r = k->invstd[og];
    const T *gm = k->gamma ? k->gamma + g * Cg : NULL;
    double la[FB_LANES], lb[FB_LANES];
    fb_lanes_zero(la), fb_lanes_zero(lb);
    double *qdg = pdg + g * L, *qdb = pdb + g * L;
    for (int64_t m = 0; gd && m < mid; m++) {   /* layer and RMS norm: one fused pass */
        const S *xr = xb + m * stride, *gr = gb + m * stride;
        FN(rows_grad_sums1)(&xr, &gr, L, &mu, &r, gd, &la, &lb, qdg, qdb, first && m == 0);
    }
    for (int64_t m = 0; !gd && m < mid; m++) {
        const S *xr = xb + m * stride, *gr = gb + m * stride;
        const int fst = first && m == 0;
        const int64_t full = L - L % FB_LANES;
        if (inner == 1 && gm) {   /* layer and RMS norm: whole lane rounds, written to vectorize */
            for (int64_t e0 = 0; e0 < full; e0 += FB_LANES)
                for (int l = 0; l < FB_LANES; l++) {
                    const double dyv = (double)FB_LD(gr[e0 + l]), d = (double)FB_LD(xr[e0 + l]) - mu;
                    const double wv = (double)gm[e0 + l] * dyv;
                    la[l] += wv;
                    lb[l] += wv * d;
                }
        }
        for (int64_t e0 = inner == 1 && gm ? full : 0; e0 < L; e0 += FB_LANES) {
            const int64_t w = L - e0 < FB_LANES ? L - e0 : FB_LANES;
            double gv[FB_LANES];
            if (gm) FN(elem_gamma)(gm, e0, w, inner, gv);
            for (int64_t l = 0; l < w; l++) {
                const int64_t e = e0 + l;
                const double dyv = (double)FB_LD(gr[e]), d = (double)FB_LD(xr[e]) - mu;
                const double wv = gm ? gv[l] * dyv : dyv;
                la[l] += wv;
                lb[l] += wv * d;
            }
        }
        if (fst) {   /* the per-element partials of dbeta and dgamma */
            for (int64_t e = 0; e < L; e++) {
                const double dyv = (double)FB_LD(gr[e]);
                qdb[e] = dyv;
                qdg[e] = dyv * ((double)FB_LD(xr[e]) - mu) * r;
            }
        } else {
            for (int64_t e = 0; e < L; e++) {
                const double dyv = (double)FB_LD(gr[e]);
                qdb[e] += dyv;
                qdg[e] += dyv * ((double)FB_LD(xr[e]) - mu) * r;
            }
        }
    }
    FN(elem_grad_finish)(k, o, g, gb, la, lb, 1);
}

#undef FB_PART

/* Two samples' group g (o and o + 1; mid == 1, gd given): their gradient sums in one pass over
 * both runs, then each one's finish, as backward_group gives them.  Long rows prefetch further,
 * in both passes, so that memory works under the apply too: the sums 2 FB_GRAD_AHEAD bytes on,
 * or where a pair is longer, up to FB_GRAD_PAIR_AHEAD, the next pair (each row two rows on). */
static void FN(backward_rows2)(const FN(bwd_ctx) *k, int64_t o, int64_t g, double *pdg,
                               double *pdb, int first, const double *gd)
{
    const fb_norm_plan *p = k->p;
    const int64_t off = o * p->per_outer + g * p->L, og = o * p->v.G + g;
    const S *xr[2] = {k->x + off, k->x + off + p->per_outer};
    const S *gr[2] = {FN(group_dy)(k, off), FN(group_dy)(k, off + p->per_outer)};
    const double mu[2] = {k->centered ? k->mean[og] : 0.0, k->centered ? k->mean[og + p->v.G] : 0.0};
    const double r[2] = {k->invstd[og], k->invstd[og + p->v.G]};
    double la[2][FB_LANES], lb[2][FB_LANES];
    for (int q = 0; q < 2; q++) fb_lanes_zero(la[q]), fb_lanes_zero(lb[q]);
    const int long_rows = p->L * (int64_t)sizeof(S) >= FB_PF_L2_ROW;
    const uintptr_t pair = 2 * (uintptr_t)p->L * sizeof(S);
    FN(rows_grad_sums2)(xr, gr, p->L, mu, r, gd, la, lb, pdg + g * p->L, pdb + g * p->L, first,
                        !long_rows ? FB_GRAD_AHEAD
                        : pair > 2 * FB_GRAD_AHEAD && pair <= FB_GRAD_PAIR_AHEAD ? pair
                                                                                : 2 * FB_GRAD_AHEAD);
    FN(elem_grad_finish)(k, o, g, gr[0], la[0], lb[0], long_rows ? 2 : 1);
    FN(elem_grad_finish)(k, o + 1, g, gr[1], la[1], lb[1], long_rows ? 2 : 1);
}

static void FN(backward_task)(void *vctx, int64_t task)
{
    const FN(bwd_ctx) *k = (const FN(bwd_ctx) *)vctx;
    const fb_norm_plan *p = k->p;
    /* (chunk, block) or (chunk, group) */
    const int64_t nb = p->bwd_blocked ? p->n_blocks : p->v.G, gb = p->bwd_blocked ? p->GB : 1;
    const int64_t ch = task / nb, g = task % nb * gb, o0 = ch * p->OC;
    const int64_t o1 = o0 + p->OC < p->v.outer ? o0 + p->OC : p->v.outer;
    double *pdg = k->mg.pdg + ch * p->P, *pdb = k->mg.pdb + ch * p->P;
    if (p->bwd_blocked) {
        const int64_t g1 = g + p->GB < p->v.G ? g + p->GB : p->v.G;
        for (int64_t o = o0; o < o1; o++)   /* the sums prefetch the same block of sample o + 1 */
            FN(backward_block)(k, o, g, g1, pdg, pdb, o == o0,
                               o + 1 < o1 ? (uintptr_t)p->per_outer * sizeof(S) : 0);
        if (k->stream) fb_stream_fence();
        return;
    }
    /* Layer / RMS norm: gamma converted once per task (as the forward's; ones without gamma,
     * which give the plain path's bits), and samples taken FB_GRAD_ROWS at a time. */
    double *gd = NULL;
    if (p->elementwise && p->v.inner == 1 && o1 - o0 > 1)
        gd = (double *)malloc(sizeof(double) * (size_t)p->L);   /* NULL: the plain path */
    for (int64_t e = 0; gd && e < p->L; e++)
        gd[e] = k->gamma ? (double)k->gamma[g * p->v.Cg + e] : 1.0;
    for (int64_t o = o0; o < o1; o++) {
        if (FB_GRAD_ROWS == 2 && gd && p->v.mid == 1 && o + 1 < o1)
            FN(backward_rows2)(k, o, g, pdg, pdb, o == o0, gd), o++;
        else
            FN(backward_group)(k, o, g, pdg, pdb, o == o0, gd,
                               p->elementwise ? 0
                               : FN(own_next)(p, k->nt, task, p->n_tasks, p->v.G, 1, o, g, o1));
    }
    free(gd);
    if (k->stream) fb_stream_fence();
}

/* dgamma, dbeta: the chunks' partial sums added in chunk order, then (elementwise mode with
 * inner > 1) each channel's inner positions in order; a NaN stored as fb_nan1's. */
static void FN(backward_then)(void *vctx)
{
    const fb_norm_merge *k = (const fb_norm_merge *)vctx;   /* either layout's context */
    const fb_norm_plan *p = k->p;
    double *dg = k->pdg, *dbs = k->pdb;
    for (int64_t ch = 1; ch < p->n_chunks; ch++)
        for (int64_t i = 0; i < p->P; i++) dg[i] += dg[ch * p->P + i], dbs[i] += dbs[ch * p->P + i];
    const int64_t per = p->P / p->C;
    for (int64_t c = 0; c < p->C; c++) {
        double a = dg[c * per], b = dbs[c * per];
        for (int64_t i = 1; i < per; i++) a += dg[c * per + i], b += dbs[c * per + i];
        k->dgamma[c] = fb_nan1(a);
        if (k->dbeta) k->dbeta[c] = fb_nan1(b);
    }
}

static fb_status FN(backward)(const S *dy, const S *x, S *dx, const fb_norm_view *v,
                              const double *mean, const double *invstd, const T *gamma,
                              int centered, double *dgamma, double *dbeta, const S *y,
                              S *dresidual, int n_threads)
{
    if (!fb_norm_view_ok(v)) return FB_EINVAL;
    const fb_norm_plan p = fb_norm_plan_make(v);
    if (p.C == 0) return FB_OK;
    if (v->outer == 0) {   /* no groups: the parameters' gradients are sums over nothing */
        for (int64_t c = 0; c < p.C; c++) {
            dgamma[c] = 0.0;
            if (dbeta) dbeta[c] = 0.0;
        }
        return FB_OK;
    }
    if (p.n == 0) return FB_EINVAL;
    const size_t nP = (size_t)(p.n_chunks * p.P);
    double *scratch = (double *)malloc(sizeof(double) * (p.columns ? 8 : 2) * nP);
    const size_t tw_bytes = p.columns ? sizeof(FB_C) * (size_t)(4 * p.n_chunks * FN(cols_span)(&p)) : 0;
    FB_C *tw = p.columns ? (FB_C *)malloc(tw_bytes + 64) : NULL;
    const int64_t total = v->outer * p.per_outer;
    /* fused (y or dresidual): the masked dy goes to dresidual, or to scratch of x's size */
    S *own = y && !dresidual ? (S *)malloc(sizeof(S) * (size_t)total) : NULL;
    S *gbuf = dresidual ? dresidual : own;
    if (!scratch || (p.columns && !tw) || (y && !gbuf)) {
        free(scratch), free(tw), free(own);
        return FB_ENOMEM;
    }
    const int stream = fb_stream_output(total * (int64_t)sizeof(S));
    const T *unused_beta = NULL;
    void *placed = p.columns ? NULL : FN(params_placed)(&p, dx, stream, &gamma, &unused_beta);
    const fb_norm_merge mg = {&p, scratch, scratch + nP, dgamma, dbeta};
    const int nt = fb_threads_for(total, n_threads);
    FN(bwd_ctx) k = {mg, &p, dy, x, dx, mean, invstd, gamma, centered, stream, y, gbuf,
                     nt == 1 && fb_first_prefetch, nt};
    FN(cols_ctx) c = {mg, &p, x, dy, dx, gamma, NULL, 0.0, centered, stream, mean, invstd, NULL, NULL,
                      scratch + 2 * nP, tw ? FN(line_up)(tw) : NULL, NULL, 0, y, gbuf, 0};
    const fb_phase phase = {p.n_tasks, p.columns ? FN(cols_backward_task) : FN(backward_task),
                            p.columns ? (void *)&c : (void *)&k, FN(backward_then)};
    fb_parallel_phases(&phase, 1, nt);
    free(scratch), free(tw), free(own), free(placed);
    return FB_OK;
}

#undef FN
#undef T
#undef S
