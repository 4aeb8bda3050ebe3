/*
 * batchnorm_body.h -- the batch-norm kernels for one element type.
 *
 * Included by batchnorm_kernels.c once per dtype with FB_T (float or double), FB_DT (f32 or f64),
 * the vector of that element type (FB_TV*) and FB_VD_LOAD_T (load T as float64) defined
 * (dtype_f32.h / dtype_f64.h), after norm_common.h (the coefficients, runs and row segments
 * shared with the normalization core).  See batchnorm.h for the layout and the guarantees.
 *
 * Numerics
 *   Statistics: each segment (slab pieces gathered to FB_SEG values or a few more, or a row chunk
 *   of one column) is reduced with shifted sums in float64, the shift k being its first value:
 *   S1 = sum(x - k), S2 = sum((x - k)^2), mean = k + S1/n, M2 = S2 - S1^2/n.  Since
 *   (x_0 - mean)^2 <= M2, S1^2/n <= n*M2, so the subtraction loses at most a factor (2n + 1) of
 *   float64 epsilon relative to M2 (n < 8192: about 2e-12 relative) -- never the catastrophic
 *   cancellation of E[x^2] - E[x]^2.  Segments are combined with Chan's update in a fixed order;
 *   where the rounded segment means could cost M2 more than 1e-13 (|mean| / sd > ~56), the channel
 *   is read a second time with the merged mean as the shift (refine_stats).
 *   Elementwise passes run in FB_C: the data type T, as PyTorch's do (float64 for half storage,
 *   below).  The mean is split as mh + mlo (mh = mean rounded to FB_C), y = (x - mh) * s + c'
 *   with c' = c - mlo * s, so x - mh is exact
 *   wherever x is within a factor 2 of the mean (the far-from-zero data that matter) and nothing
 *   cancels catastrophically.  With u the unit roundoff of T (2^-24 for float32) and e its smallest
 *   subnormal (2^-149), each output obeys
 *       forward:  |y - y*|   <= 4u |(x - mean) s| + 2u |c| + 4u^2 |mean s| + e (|x - mean| + u|mean| + 1)
 *       backward: |dx - dx*| <= 8u (|dy g| + |(x - mean) s| + |c|) + 4u^2 |mean s|
 *                                + e (|dy| + m1 + |xhat| m2 + |x - mean| + u|mean| + 2)
 *   (m1, m2: the channel's means of |dy| and |dy xhat|, which scale a subnormal g's error through
 *   s and c)
 *   (a few units in the last place of the largest term; tests/bn_helpers.py checks exactly this).
 *   The e terms are underflow: below T's smallest normal, rounding errs by up to e/2 absolutely,
 *   once per coefficient rounded to T (scaled by |dy|, |x - mh|, 1) and once per product.
 *   float16 / bfloat16 (dtype_f16.h, dtype_bf16.h) store the tensors in 16 bits and run the
 *   elementwise passes in float64 (FB_C): x is widened exactly, so the bounds above hold with
 *   u = 2^-53 for the float64 result, which is rounded to float and then to the half type:
 *   |y - y*| <= ulp_h(|y*| + b)/2 + ulp_32(|y*| + b)/2 + b, one ulp_h of y* but at outputs some
 *   2^-35 of their terms.  A result beyond the half range becomes +-inf, as a cast.
 *   Where x - mh could overflow in T (|mean| >= 2^102), or a coefficient rounds to +-inf in T, the
 *   float64 formula is used instead; a vector whose T result is not finite is redone by element
 *   (apply1/grad1), so an intermediate overflow never turns a representable result into inf/NaN.
 */
#define FN(name) FB_CAT3(name, _, FB_DT)
#define T FB_T
#define S FB_S   /* the tensors' storage type: read and written through FB_LD / FB_ST */

/* ---- slab path: one task per channel, its data cache-resident between the two passes ------ */

typedef struct {
    const S *x, *dy;
    S *y;
    int64_t outer, C, inner;
    const T *gamma, *beta;
    double eps;
    double *mean, *var, *invstd;  /* train: outputs; backward: mean, invstd are inputs */
    double *dgamma, *dbeta;       /* backward: outputs; sums only: sum dy (x - mean), sum dy */
    double *m2;                   /* moments only: M2 out (and mean), no elementwise pass */
    int sums_only;                /* backward: the sums alone, no elementwise pass */
    const FN(coef) *coefs;        /* elementwise alone: one per channel */
    int64_t per_task;             /* elementwise alone: slabs per task */
    int stream;                   /* write outputs with non-temporal stores */
    const S *res;                 /* forward: y = relu(y + res) (res may be NULL, relu 0) */
    int relu;
    const S *ym;                  /* backward: dy masked by the fused forward's y, or NULL */
    S *dres;                      /* backward: receives the masked dy, or NULL */
    int pf_first;                 /* one thread: the first pass prefetches the next channel too */
} FN(slab_ctx);

/* One statistics segment of a channel: pieces of at most FB_SEG values (whole small slabs, or
 * FB_SEG-long parts of large ones), in order, until it holds FB_SEG values or the channel ends;
 * its shift is its first value.  A cursor advances through it a few KB at a time, so that two
 * segments can be read side by side (two memory streams: one alone gets ~70% of the bandwidth
 * on Zen 3) without changing the order of any lane's additions. */
typedef struct {
    const S *x;
    int64_t outer, inner, stride;
    int64_t o, p, off, count;   /* piece (slab o, offset p), position in it, values done */
    int done;
    uintptr_t next;             /* the next channel's slab from this one (bytes), or 0 */
    double shift, s1[FB_LANES], s2[FB_LANES];
} FN(seg_cursor);

static void FN(seg_start)(FN(seg_cursor) *g, const S *x, int64_t outer, int64_t inner,
                          int64_t stride, int64_t o, int64_t p, uintptr_t next)
{
    g->x = x, g->outer = outer, g->inner = inner, g->stride = stride, g->next = next;
    g->o = o, g->p = p, g->off = 0, g->count = 0;
    g->done = o >= outer;
    g->shift = g->done ? 0.0 : (double)FB_LD(x[o * stride + p]);
    for (int l = 0; l < FB_LANES; l++) g->s1[l] = 0.0, g->s2[l] = 0.0;
}

/* Where the segment starting at piece (o, p) ends: the next segment's first piece. */
static void FN(seg_next)(int64_t outer, int64_t inner, int64_t *o, int64_t *p)
{
    int64_t count = 0;
    while (*o < outer && count < FB_SEG) {
        count += inner - *p < FB_SEG ? inner - *p : FB_SEG;
        *p += FB_SEG;
        if (*p >= inner) *p = 0, ++*o;
    }
}

/* Advance by about `budget` values (a multiple of FB_LANES within each piece, so every value
 * keeps its lane and its place in the lane's order). */
static void FN(seg_step)(FN(seg_cursor) *g, int64_t budget)
{
    while (!g->done && budget > 0) {
        const int64_t len = g->inner - g->p < FB_SEG ? g->inner - g->p : FB_SEG;
        const int64_t n = len - g->off < budget ? len - g->off : budget;
        FN(run_pair_sums)(g->x + g->o * g->stride + g->p + g->off, NULL, 0, n, g->shift, g->s1,
                          g->s2, g->next);
        g->off += n, budget -= n;
        if (g->off < len) continue;
        budget -= budget % FB_LANES;
        g->count += len, g->off = 0, g->p += FB_SEG;
        if (g->p >= g->inner) g->p = 0, g->o++;
        g->done = g->count >= FB_SEG || g->o >= g->outer;
    }
}

/* Where channel c + 1's slab lies from c's (bytes), for the first pass to prefetch on one thread
 * where a second pass follows and fb_first_prefetch (cpu.h); 0 otherwise. */
static uintptr_t FN(slab_next)(const FN(slab_ctx) *k, int64_t c)
{
    const int second_pass = !k->m2 && !k->sums_only;
    return k->pf_first && fb_first_prefetch && second_pass && c + 1 < k->C
               ? (uintptr_t)k->inner * sizeof(S) : 0;
}

static void FN(slab_train_task)(void *vctx, int64_t c)
{
    const FN(slab_ctx) *k = (const FN(slab_ctx) *)vctx;
    const int64_t inner = k->inner, stride = k->C * inner;
    double n = 0.0, mu = 0.0, m2 = 0.0;
    FN(seg_cursor) g[2];
    int64_t o = 0, p = 0;
    /* With a residual, the statistics prefetch this channel's residual slabs instead (the second
     * pass, which reads them in short runs, still prefetches the next channel's x). */
    uintptr_t next = FN(slab_next)(k, c);
    if (k->res && k->pf_first && !k->m2) next = (uintptr_t)k->res - (uintptr_t)k->x;
    while (o < k->outer) {
        /* Two consecutive segments side by side, merged in order. */
        FN(seg_start)(&g[0], k->x + c * inner, k->outer, inner, stride, o, p, next);
        FN(seg_next)(k->outer, inner, &o, &p);
        FN(seg_start)(&g[1], k->x + c * inner, k->outer, inner, stride, o, p, next);
        if (o < k->outer) FN(seg_next)(k->outer, inner, &o, &p);
        while (!g[0].done || !g[1].done)
            FN(seg_step)(&g[0], FB_SEG_STEP), FN(seg_step)(&g[1], FB_SEG_STEP);
        for (int j = 0; j < 2; j++) {
            if (g[j].count == 0) continue;
            double smu, sm2;
            fb_shifted_result(g[j].shift, (double)g[j].count, fb_lanes_total(g[j].s1),
                              fb_lanes_total(g[j].s2), &smu, &sm2);
            fb_chan_merge(&n, &mu, &m2, (double)g[j].count, smu, sm2);
        }
    }
    if (n > FB_SEG && FN(needs_refine)(mu, m2, n))   /* more than one segment was merged */
        FN(refine_stats)(k->x + c * inner, k->outer, stride, inner, &mu, &m2);
    if (k->m2) {   /* moments only */
        k->mean[c] = fb_nan1(mu), k->m2[c] = fb_nan1(m2);
        return;
    }
    const double var = m2 / n, invstd = 1.0 / sqrt(var + k->eps);
    k->mean[c] = fb_nan1(mu), k->var[c] = fb_nan1(var), k->invstd[c] = fb_nan1(invstd);
    const FN(coef) co = FN(make_fwd_coef)(mu, k->gamma ? (double)k->gamma[c] : 1.0, invstd,
                                          k->beta ? (double)k->beta[c] : 0.0);
    /* Second pass in reverse: the slabs read last are the surest to still be in cache.  It
     * prefetches the next channel's slabs, so that memory works while this one computes. */
    for (int64_t o = k->outer - 1; o >= 0; o--) {
        const int64_t at = o * stride + c * inner;
        if (k->stream && o > 0) fb_prefetch_end_w(k->y + at - stride + inner);   /* the next run */
        FN(run_apply_fused)(k->x + at, k->y + at, inner, &co, k->stream, FB_AT(k->res, at),
                            k->relu, c + 1 < k->C ? k->x + at + inner : NULL, 1);
    }
    if (k->stream) fb_stream_fence();
}

static void FN(slab_backward_task)(void *vctx, int64_t c)
{
    const FN(slab_ctx) *k = (const FN(slab_ctx) *)vctx;
    const int64_t inner = k->inner, stride = k->C * inner;
    const double mu = k->mean[c], invstd = k->invstd[c];
    double sdy[FB_LANES], sdyx[FB_LANES];
    fb_lanes_zero(sdy), fb_lanes_zero(sdyx);
    const uintptr_t next = FN(slab_next)(k, c);
    for (int64_t o = 0; o < k->outer; o++)   /* L1-sized pieces; FB_SEG is a multiple of FB_LANES */
        for (int64_t s = 0; s < inner; s += FB_SEG) {
            const int64_t at = o * stride + c * inner + s;
            const int64_t len = inner - s < FB_SEG ? inner - s : FB_SEG;
            /* dy masked by the fused forward's y: its own instantiation */
            if (k->ym)
                FN(pair_sums_fz)(k->x + at, k->dy + at, 1, k->ym + at, 1, len, mu, sdy, sdyx, next);
            else
                FN(run_pair_sums)(k->x + at, k->dy + at, 1, len, mu, sdy, sdyx, next);
        }
    if (k->sums_only) {
        k->dbeta[c] = fb_nan1(fb_lanes_total(sdy)), k->dgamma[c] = fb_nan1(fb_lanes_total(sdyx));
        return;
    }
    double coef[7];
    fb_bn_grad_coefs(fb_lanes_total(sdy), fb_lanes_total(sdyx), (double)k->outer * (double)inner, invstd,
                  k->gamma ? (double)k->gamma[c] : 1.0, &k->dbeta[c], &k->dgamma[c], coef);
    const FN(coef) gco = FN(make_grad_coef)(mu, coef);
    for (int64_t o = k->outer - 1; o >= 0; o--) {   /* reverse, prefetching, as slab_train_task */
        const int64_t at = o * stride + c * inner;
        if (k->stream && o > 0) fb_prefetch_end_w(k->y + at - stride + inner);
        FN(run_grad_apply_fused)(k->dy + at, k->x + at, k->y + at, inner, &gco, k->stream,
                                 FB_AT(k->ym, at), FB_AT(k->dres, at),
                                 c + 1 < k->C ? k->x + at + inner : NULL,
                                 c + 1 < k->C ? k->dy + at + inner : NULL, 1);
    }
    if (k->stream) fb_stream_fence();
}

static void FN(slab_apply_task)(void *vctx, int64_t task)
{
    const FN(slab_ctx) *k = (const FN(slab_ctx) *)vctx;
    const int64_t n_slabs = k->outer * k->C, j0 = task * k->per_task;
    const int64_t j1 = j0 + k->per_task < n_slabs ? j0 + k->per_task : n_slabs;
    /* Runs one after another in memory: their ends go element by element (in masked vectors,
     * two to a line shared by consecutive runs, 1.1x slower at 14 x 14). */
    for (int64_t j = j0; j < j1; j++) {
        const int64_t at = j * k->inner;
        if (k->stream && j + 1 < n_slabs) fb_prefetch_end_w(k->y + at + 2 * k->inner);
        if (k->dy)
            FN(run_grad_apply_fused)(k->dy + at, k->x + at, k->y + at, k->inner,
                                     &k->coefs[j % k->C], k->stream, FB_AT(k->ym, at),
                                     FB_AT(k->dres, at), NULL, NULL, 0);
        else
            FN(run_apply_fused)(k->x + at, k->y + at, k->inner, &k->coefs[j % k->C], k->stream,
                                FB_AT(k->res, at), k->relu, NULL, 0);
    }
    if (k->stream) fb_stream_fence();
}

/* ---- rows path: (rows, V) with V = C * inner virtual channels, tiled (row chunk, column tile) */

typedef struct {
    fb_rows_plan p;           /* the reductions' tasks */
    fb_rows_plan ap;          /* the elementwise pass's (fb_rows_plan_rows) */
    const S *x, *dy;
    S *y;
    double *r1, *r2;          /* per row chunk and virtual channel: mean & M2, or sdy & sdyx */
    const FN(coef) *coefs;    /* per real channel */
    const double *vm;         /* per virtual channel: the mean (backward sums) */
    FB_C *tm, *ts, *tg, *tc;  /* per virtual channel, repeated group + 1 times: coefficients */
    int64_t group;            /* rows per elementwise run (V small: runs of about FB_RUN values) */
    int exact, backward, stream;
    int reverse;              /* apply the tasks last first: those read last are still cached */
    const S *res;             /* forward: y = relu(y + res) (res may be NULL, relu 0) */
    int relu;
    const S *ym;              /* backward: dy masked by the fused forward's y, or NULL */
    S *dres;                  /* backward: receives the masked dy, or NULL */
    unsigned char *mbits;     /* backward: ym's mask as bits (mask8) from the sums, or NULL */
} FN(rows_ctx);

/* Rows are taken four at a time: each accumulator gains ((r0 + r1) + (r2 + r3)), which halves
 * the accumulator traffic twice over; the order is fixed by the plan, like everything else. */
#define FB_ROWS_AT_ONCE 4

/* Rows i..i+3 are read four at a time, four streams that the hardware prefetcher alone follows
 * slowly: four rows ahead (columns from `at` on), the next four or, for short rows, those
 * FB_PF_ROWS_AHEAD bytes on, to be prefetched into L2 while these are read (into L1 was
 * slower); `far` times as far, up to `far` FB_PF_ROWS_AHEAD bytes (a stream's lead stays small
 * beside any L2); NULL for rows under FB_PF_ROW_BYTES, or past the last row. */
static FB_INLINE const S *FN(rows_pf_next)(const FN(rows_ctx) *k, const S *at, int64_t i, int far)
{
    const int64_t row = k->p.V * (int64_t)sizeof(S);
    const int64_t rows = row * FB_ROWS_AT_ONCE >= FB_PF_ROWS_AHEAD ? FB_ROWS_AT_ONCE
                                                                     : FB_PF_ROWS_AHEAD / row;
    const int64_t capped = far * FB_PF_ROWS_AHEAD / row;
    const int64_t ahead = capped > far * rows ? far * rows : capped < rows ? rows : capped;
    const int wide = row >= FB_PF_ROW_BYTES;
    return wide && at && i + FB_ROWS_AT_ONCE + ahead <= k->p.R ? at + ahead * k->p.V : NULL;
}

/* Once per line of progress along the columns (v counts from the tile's start): the line at v
 * in each of the four rows nx (rows_pf_next), into L2. */
#define FB_ROWS_PF(nx, V, v)                                                                      \
    do {                                                                                          \
        if ((nx) && ((v) & (64 / (int64_t)sizeof(S) - 1)) == 0)                                   \
            for (int j_ = 0; j_ < FB_ROWS_AT_ONCE; j_++) fb_prefetch_l2((nx) + j_ * (V) + (v));    \
    } while (0)

/* The statistics of one (row chunk, column tile) as they are read: shifts and running sums. */
typedef struct {
    int64_t r0, r1, i, v0, w, ch;   /* rows [r0, r1), the next row i, columns [v0, v0 + w) */
    double sh[FB_TILE_COLS], s1[FB_TILE_COLS], s2[FB_TILE_COLS];
} FN(rows_acc);

static void FN(rows_acc_start)(const FN(rows_ctx) *k, FN(rows_acc) *a, int64_t task)
{
    fb_rows_task_range(&k->p, task, &a->r0, &a->r1, &a->v0, &a->w);
    a->i = a->r0, a->ch = task / k->p.n_ctiles;
    const S *first = k->x + a->r0 * k->p.V + a->v0;
    for (int64_t v = 0; v < a->w; v++) a->sh[v] = (double)FB_LD(first[v]), a->s1[v] = 0.0, a->s2[v] = 0.0;
}

/* Add the next FB_ROWS_AT_ONCE rows, or the next single row once fewer are left; 1 when done. */
static int FN(rows_acc_step)(const FN(rows_ctx) *k, FN(rows_acc) *ac)
{
    const int64_t V = k->p.V, w = ac->w, i = ac->i;
    double *FB_RESTRICT s1 = ac->s1, *FB_RESTRICT s2 = ac->s2;
    const double *FB_RESTRICT sh = ac->sh;
    if (i >= ac->r1) return 1;
    if (i + FB_ROWS_AT_ONCE <= ac->r1) {
        const S *FB_RESTRICT a = k->x + i * V + ac->v0, *FB_RESTRICT b = a + V, *FB_RESTRICT c = b + V,
                *FB_RESTRICT d = c + V;
        const S *nx = FN(rows_pf_next)(k, a, i, 1);
        int64_t v = 0;
        for (; v + FB_VD_W <= w; v += FB_VD_W) {
            FB_ROWS_PF(nx, V, v);
            const fb_vd kv = fb_vd_load_f64(sh + v);
            const fb_vd da = fb_vd_sub(FB_VD_LOAD_T(a + v), kv), db = fb_vd_sub(FB_VD_LOAD_T(b + v), kv);
            const fb_vd dc = fb_vd_sub(FB_VD_LOAD_T(c + v), kv), dd = fb_vd_sub(FB_VD_LOAD_T(d + v), kv);
            const fb_vd t1 = fb_vd_add(fb_vd_add(da, db), fb_vd_add(dc, dd));
            /* the squares' sums on the multiply-add unit (fb_vd_add_m), balancing the ports */
            const fb_vd t2 = fb_vd_add_m(fb_vd_add_m(fb_vd_mul(da, da), fb_vd_mul(db, db)),
                                         fb_vd_add_m(fb_vd_mul(dc, dc), fb_vd_mul(dd, dd)));
            fb_vd_store_f64(s1 + v, fb_vd_add(fb_vd_load_f64(s1 + v), t1));
            fb_vd_store_f64(s2 + v, fb_vd_add_m(fb_vd_load_f64(s2 + v), t2));
        }
        for (; v < w; v++) {
            const double da = (double)FB_LD(a[v]) - sh[v], db = (double)FB_LD(b[v]) - sh[v];
            const double dc = (double)FB_LD(c[v]) - sh[v], dd = (double)FB_LD(d[v]) - sh[v];
            s1[v] += (da + db) + (dc + dd);
            s2[v] += (da * da + db * db) + (dc * dc + dd * dd);
        }
        ac->i += FB_ROWS_AT_ONCE;
    } else {
        const S *FB_RESTRICT row = k->x + i * V + ac->v0;
        int64_t v = 0;
        for (; v + FB_VD_W <= w; v += FB_VD_W) {
            const fb_vd d = fb_vd_sub(FB_VD_LOAD_T(row + v), fb_vd_load_f64(sh + v));
            fb_vd_store_f64(s1 + v, fb_vd_add(fb_vd_load_f64(s1 + v), d));
            fb_vd_store_f64(s2 + v, fb_vd_add(fb_vd_load_f64(s2 + v), fb_vd_mul(d, d)));
        }
        for (; v < w; v++) {
            const double d = (double)FB_LD(row[v]) - sh[v];
            s1[v] += d;
            s2[v] += d * d;
        }
        ac->i += 1;
    }
    return ac->i >= ac->r1;
}

static void FN(rows_acc_end)(const FN(rows_ctx) *k, const FN(rows_acc) *a)
{
    const int64_t V = k->p.V;
    for (int64_t v = 0; v < a->w; v++)
        fb_shifted_result(a->sh[v], (double)(a->r1 - a->r0), a->s1[v], a->s2[v],
                          &k->r1[a->ch * V + a->v0 + v], &k->r2[a->ch * V + a->v0 + v]);
}

/* The same column tile of row chunks 2q and 2q + 1, read side by side a few rows of each in turn:
 * two memory streams instead of one.  Only tiles of FB_PAIR_COLS_MAX columns at most: wider ones'
 * sums together overflow L1, and are read one chunk after the other.  Each chunk keeps its own
 * sums in its own order, so the results are those of the chunks read one by one. */
static void FN(rows_stats_task)(void *vctx, int64_t pair)
{
    const FN(rows_ctx) *k = (const FN(rows_ctx) *)vctx;
    const int64_t nt = k->p.n_ctiles, q = pair / nt, t = pair % nt;
    FN(rows_acc) acc[2];
    const int two = 2 * q + 1 < k->p.n_rchunks;
    FN(rows_acc_start)(k, &acc[0], 2 * q * nt + t);
    if (two) FN(rows_acc_start)(k, &acc[1], (2 * q + 1) * nt + t);
    int done0 = 0, done1 = !two;
    if (acc[0].w > FB_PAIR_COLS_MAX)   /* wide tiles: both chunks' sums would not fit in L1 */
        while (!done0) done0 = FN(rows_acc_step)(k, &acc[0]);
    while (!done0 || !done1) {
        if (!done0) done0 = FN(rows_acc_step)(k, &acc[0]);
        if (!done1) done1 = FN(rows_acc_step)(k, &acc[1]);
    }
    FN(rows_acc_end)(k, &acc[0]);
    if (two) FN(rows_acc_end)(k, &acc[1]);
}

/* Add rows i.. of columns [v0, v0 + w) into a chunk's backward sums: the next FB_ROWS_AT_ONCE
 * rows, or the next single row once fewer are left before r1; the rows taken. */
static FB_INLINE int64_t FN(rows_grad_step_fz)(const FN(rows_ctx) *k, int64_t i, int64_t r1,
                                               int64_t v0, int64_t w, double *FB_RESTRICT sdy,
                                               double *FB_RESTRICT sdyx, const int has_y)
{
    const int64_t V = k->p.V;
    const double *FB_RESTRICT vm = k->vm + v0;
    /* dy, masked by the fused forward's y where has_y (relu_grad1) */
#define FB_GVD(p, at) (has_y ? fb_vd_relu_grad(FB_VD_LOAD_T((p) + (at)), FB_VD_LOAD_T(ya + (at))) \
                             : FB_VD_LOAD_T((p) + (at)))
#define FB_G1D(p, at) \
    (double)(has_y ? FN(relu_grad1)(FB_LD((p)[at]), FB_LD(ya[at])) : FB_LD((p)[at]))
    /* has_y 2: y's mask also written as bits, a byte per 8 values (w and v0 multiples of 8) */
#ifdef FB_MASK8
#define FB_MASK_PUT(e, p) (k->mbits[(e) >> 3] = (unsigned char)FN(mask8)(p))
#else
#define FB_MASK_PUT(e, p) ((void)0)
#endif
    /* AVX-512 float32: the byte is the mask dy is converted under, stored as it is loaded */
#ifdef FB_VD_LOAD_RGB
#define FB_GVDB(p, at, e) \
    (has_y == 2 ? FB_VD_LOAD_RGB((p) + (at), ya + (at), &k->mbits[(e) >> 3]) : FB_GVD(p, at))
#define FB_PUT_BITS 0
#else
#define FB_GVDB(p, at, e) FB_GVD(p, at)
#define FB_PUT_BITS (has_y == 2)
#endif
    if (i + FB_ROWS_AT_ONCE <= r1) {
        const S *FB_RESTRICT xa = k->x + i * V + v0, *FB_RESTRICT ga = k->dy + i * V + v0;
        const S *FB_RESTRICT ya = has_y ? k->ym + i * V + v0 : NULL;
        /* two or three streams of the same rows, prefetched further than the statistics' one */
        const S *nx = FN(rows_pf_next)(k, xa, i, FB_PF_GRAD_FAR);
        const S *ng = FN(rows_pf_next)(k, ga, i, FB_PF_GRAD_FAR);
        const S *ny = FN(rows_pf_next)(k, ya, i, FB_PF_GRAD_FAR);
        int64_t v = 0;
        for (; v + FB_VD_W <= w; v += FB_VD_W) {
            FB_ROWS_PF(nx, V, v);
            FB_ROWS_PF(ng, V, v);
            FB_ROWS_PF(ny, V, v);
            const fb_vd m = fb_vd_load_f64(vm + v);
            fb_vd g[FB_ROWS_AT_ONCE], e[FB_ROWS_AT_ONCE];
            for (int j = 0; j < FB_ROWS_AT_ONCE; j++) {
                g[j] = FB_GVDB(ga, j * V + v, (i + j) * V + v0 + v);
                e[j] = fb_vd_mul(g[j], fb_vd_sub(FB_VD_LOAD_T(xa + j * V + v), m));
            }
            if (FB_PUT_BITS && (v & 7) == 0)
                for (int j = 0; j < FB_ROWS_AT_ONCE; j++)
                    FB_MASK_PUT((i + j) * V + v0 + v, ya + j * V + v);
            const fb_vd t1 = fb_vd_add(fb_vd_add(g[0], g[1]), fb_vd_add(g[2], g[3]));
            /* the products' sums on the multiply-add unit (fb_vd_add_m), balancing the ports */
            const fb_vd t2 = fb_vd_add_m(fb_vd_add_m(e[0], e[1]), fb_vd_add_m(e[2], e[3]));
            fb_vd_store_f64(sdy + v, fb_vd_add(fb_vd_load_f64(sdy + v), t1));
            fb_vd_store_f64(sdyx + v, fb_vd_add_m(fb_vd_load_f64(sdyx + v), t2));
        }
        for (; v < w; v++) {
            double g[FB_ROWS_AT_ONCE], e[FB_ROWS_AT_ONCE];
            for (int j = 0; j < FB_ROWS_AT_ONCE; j++) {
                g[j] = FB_G1D(ga, j * V + v);
                e[j] = g[j] * ((double)FB_LD(xa[j * V + v]) - vm[v]);
            }
            sdy[v] += (g[0] + g[1]) + (g[2] + g[3]);
            sdyx[v] += (e[0] + e[1]) + (e[2] + e[3]);
        }
        return FB_ROWS_AT_ONCE;
    }
    const S *FB_RESTRICT xr = k->x + i * V + v0;
    const S *FB_RESTRICT gr = k->dy + i * V + v0;
    const S *FB_RESTRICT ya = has_y ? k->ym + i * V + v0 : NULL;
    int64_t v = 0;
    for (; v + FB_VD_W <= w; v += FB_VD_W) {
        if (FB_PUT_BITS && (v & 7) == 0) FB_MASK_PUT(i * V + v0 + v, ya + v);
        const fb_vd g = FB_GVDB(gr, v, i * V + v0 + v);
        const fb_vd d = fb_vd_sub(FB_VD_LOAD_T(xr + v), fb_vd_load_f64(vm + v));
        fb_vd_store_f64(sdy + v, fb_vd_add(fb_vd_load_f64(sdy + v), g));
        fb_vd_store_f64(sdyx + v, fb_vd_add(fb_vd_load_f64(sdyx + v), fb_vd_mul(g, d)));
    }
    for (; v < w; v++) {
        const double g = FB_G1D(gr, v);
        sdy[v] += g;
        sdyx[v] += g * ((double)FB_LD(xr[v]) - vm[v]);
    }
    return 1;
#undef FB_GVD
#undef FB_G1D
#undef FB_MASK_PUT
#undef FB_GVDB
#undef FB_PUT_BITS
}

/* rows_grad_step_fz, with dy masked where the fused forward's y is given (and its mask written
 * as bits where mbits is): one branch per step of up to FB_ROWS_AT_ONCE rows, each case its own
 * instantiation. */
static int64_t FN(rows_grad_step)(const FN(rows_ctx) *k, int64_t i, int64_t r1, int64_t v0,
                                  int64_t w, double *FB_RESTRICT sdy, double *FB_RESTRICT sdyx)
{
#ifdef FB_MASK8
    if (k->mbits) return FN(rows_grad_step_fz)(k, i, r1, v0, w, sdy, sdyx, 2);
#endif
    if (k->ym) return FN(rows_grad_step_fz)(k, i, r1, v0, w, sdy, sdyx, 1);
    return FN(rows_grad_step_fz)(k, i, r1, v0, w, sdy, sdyx, 0);
}

/* The backward sums of row chunks 2q and 2q + 1 of a column tile, read side by side as
 * rows_stats_task reads its pair (x and dy of each: four memory streams) where the tile has at
 * most FB_GRAD_PAIR_COLS_MAX columns (AVX2: 1.1x faster at 32 and 64, slower at 128);
 * each chunk keeps its own sums in its own order, so the results are those of the chunks read
 * one by one. */
static void FN(rows_grad_sums_task)(void *vctx, int64_t pair)
{
    const FN(rows_ctx) *k = (const FN(rows_ctx) *)vctx;
    const fb_rows_plan *p = &k->p;
    const int64_t nt = p->n_ctiles, q = pair / nt, t = pair % nt;
    const int two = 2 * q + 1 < p->n_rchunks;
    int64_t i[2], r1[2], v0, w;
    double *sdy[2], *sdyx[2];
    for (int c = 0; c < 1 + two; c++) {
        fb_rows_task_range(p, (2 * q + c) * nt + t, &i[c], &r1[c], &v0, &w);
        sdy[c] = k->r1 + (2 * q + c) * p->V + v0, sdyx[c] = k->r2 + (2 * q + c) * p->V + v0;
        for (int64_t v = 0; v < w; v++) sdy[c][v] = 0.0, sdyx[c][v] = 0.0;
    }
    if (!two) i[1] = r1[1] = 0;
    if (w > FB_GRAD_PAIR_COLS_MAX)   /* wider tiles: one chunk after the other */
        while (i[0] < r1[0]) i[0] += FN(rows_grad_step)(k, i[0], r1[0], v0, w, sdy[0], sdyx[0]);
    while (i[0] < r1[0] || i[1] < r1[1]) {
        if (i[0] < r1[0]) i[0] += FN(rows_grad_step)(k, i[0], r1[0], v0, w, sdy[0], sdyx[0]);
        if (i[1] < r1[1]) i[1] += FN(rows_grad_step)(k, i[1], r1[1], v0, w, sdy[1], sdyx[1]);
    }
}

static void FN(rows_apply_task)(void *vctx, int64_t task)
{
    const FN(rows_ctx) *k = (const FN(rows_ctx) *)vctx;
    const fb_rows_plan *p = &k->ap;
    int64_t r0, r1, v0, w;
    if (k->reverse) task = p->n_rchunks * p->n_ctiles - 1 - task;
    fb_rows_task_range(p, task, &r0, &r1, &v0, &w);
    /* A tile that spans the rows is one run of (r1 - r0) V elements, applied in calls of `group`
     * rows, the first ending where y's first whole cache line starts: the later calls store
     * whole lines, and load them from x with y's offset and from the coefficient arrays (placed
     * by rows_alloc in step with y); streamed, no line is shared by two calls (both would store
     * it normally, read from memory first).  A call may start within a row: the coefficients
     * are repeated group + 1 times. */
    const int flat = w == p->V;
    const int64_t runs = flat ? 1 : r1 - r0, len = flat ? (r1 - r0) * w : w;
    const int64_t span = flat ? k->group * w : w;
    for (int64_t i = 0; i < runs; i++) {
        const int64_t at0 = (r0 + i) * p->V + v0;   /* of the run's first element */
        const int64_t h = flat ? fb_line_head(k->y + at0, sizeof(S), len) : 0;
        for (int64_t e = 0, n; e < len; e += n) {
            const int64_t q = e % w, at = at0 + e;   /* the call's first column, its offset */
            n = fb_call_len(e, h, span, len);
            const S *xr = k->x + at;   /* yr may be xr or gr (in place) */
            S *yr = k->y + at;
            const S *gr = k->backward ? k->dy + at : NULL;
            const S *res = FB_AT(k->res, at), *ym = FB_AT(k->ym, at);
            S *dres = FB_AT(k->dres, at);
            if (k->exact) {   /* the float64 path, rare: the fused parts tested per element */
                for (int64_t v = 0; v < n; v++) {
                    const FN(coef) *co = &k->coefs[(v0 + (q + v) % w) / p->inner];
                    if (gr) {
                        const T g = ym ? FN(relu_grad1)(FB_LD(gr[v]), FB_LD(ym[v])) : FB_LD(gr[v]);
                        yr[v] = FB_ST(FN(exact_grad1_any)(g, FB_LD(xr[v]), co));
                        if (dres) dres[v] = FB_ST(g);
                    } else {
                        yr[v] = FB_ST(FN(fwd_epi1)(FN(exact_apply1_any)(FB_LD(xr[v]), co), res, v,
                                                   res != NULL, k->relu));
                    }
                }
            } else {
                const FN(row_src) src = {k->coefs, v0, q, w, p->inner, NULL, NULL, NULL, NULL,
                                         res, k->relu, ym, dres, k->mbits, at};
                FN(row_apply)(xr, gr, yr, n, k->tm + v0 + q, k->ts + v0 + q, k->tg + v0 + q,
                              k->tc + v0 + q, k->stream, &src);
            }
        }
    }
    if (k->stream) fb_stream_fence();
}

/* Spread per-channel coefficients over the virtual channels, group + 1 periods (one period
 * written, then copied); 1 if any channel needs the float64 path. */
static int FN(rows_spread)(const FN(rows_ctx) *k, int64_t C, int64_t inner)
{
    int exact = 0;
    const int64_t V = k->p.V;
    for (int64_t c = 0; c < C; c++) {
        const FN(coef) *co = &k->coefs[c];
        exact |= co->exact;
        for (int64_t i = 0; i < inner; i++) {
            const int64_t v = c * inner + i;
            k->tm[v] = co->tm, k->ts[v] = co->ts, k->tc[v] = co->tc;
            if (k->backward) k->tg[v] = co->tg;
        }
    }
    FB_C *const arrays[4] = {k->tm, k->ts, k->tc, k->tg};
    for (int a = 0; a < (k->backward ? 4 : 3); a++)
        for (int64_t r = 1; r <= k->group; r++)
            memcpy(arrays[a] + r * V, arrays[a], (size_t)V * sizeof(FB_C));
    return exact;
}

/* Scratch of the rows path: chunk results (unless `coefs_only`), coefficients, and `mbits`
 * bytes for k->mbits (0: none).  One block: two, freed each call, let glibc's default malloc
 * trim the heap between calls, and each call faulted its pages in again. */
static void *FN(rows_alloc)(FN(rows_ctx) *k, int64_t C, int coefs_only, size_t mbits)
{
    const int64_t V = k->p.V, n_results = coefs_only ? 0 : k->p.n_rchunks * V;
    /* Runs of about FB_RUN values, but no more copies of the coefficients than a quarter of
     * the rows: a small input must not pay for spreading them. */
    k->group = V < FB_RUN ? FB_RUN / V : 1;
    if (k->group > (k->p.R + 3) / 4) k->group = (k->p.R + 3) / 4;
    if (k->group < 1) k->group = 1;
    const int64_t P = (k->group + 1) * V;
    const size_t bytes = sizeof(double) * (size_t)(2 * n_results + V) +
                         sizeof(FN(coef)) * (size_t)C +
                         (sizeof(FB_C) * (size_t)P + 4096 + sizeof(FB_C)) * 4 + mbits;
    char *s = (char *)malloc(bytes);
    if (!s) return NULL;
    k->r1 = (double *)s;
    k->r2 = k->r1 + n_results;
    k->vm = k->r2 + n_results;
    k->coefs = (const FN(coef) *)(k->vm + V);
    /* The elementwise pass loads the coefficient arrays in step with its stores to y: each array
     * starts 128 + 512 a bytes past y modulo 4 KB, so that no load falls 4 KB (or a multiple)
     * after a store still in flight -- 4K aliasing, which made inference on (32,56,56,64) 1.7x
     * slower wherever malloc happened to place them just behind y. */
    char *at = (char *)(k->coefs + C);
    FB_C **arrays[4] = {&k->tm, &k->ts, &k->tg, &k->tc};
    for (int a = 0; a < 4; a++) {
        at = fb_place_past(at, k->y, (size_t)(128 + 512 * a), sizeof(FB_C));
        *arrays[a] = (FB_C *)at;
        at += sizeof(FB_C) * (size_t)P;
    }
    k->mbits = mbits ? (unsigned char *)at : NULL;
    return s;
}

/* Per-channel results and coefficients of the rows path, FB_FINISH_CHANNELS channels a task:
 * each channel merges its virtual channels, then its row chunks, in a fixed order.  Training:
 * mean, var, invstd from the chunks' mean and M2.  Backward: dgamma, dbeta from the chunks'
 * sums, with mean and invstd given. */
typedef struct {
    FN(rows_ctx) *k;
    const T *gamma, *beta;
    double eps;
    double *mean, *var, *invstd;   /* backward: mean, invstd are inputs */
    double *dgamma, *dbeta;        /* sums only: sum dy (x - mean), sum dy */
    double *m2;                    /* moments only: M2 out (and mean) */
    int reduce_only;               /* moments or backward sums: no coefficients, no elementwise pass */
} FN(rows_finish_ctx);

static void FN(rows_finish_task)(void *vctx, int64_t task)
{
    const FN(rows_finish_ctx) *f = (const FN(rows_finish_ctx) *)vctx;
    const FN(rows_ctx) *k = f->k;
    const fb_rows_plan *p = &k->p;
    const int64_t c0 = task * FB_FINISH_CHANNELS;
    const int64_t c1 = c0 + FB_FINISH_CHANNELS < p->C ? c0 + FB_FINISH_CHANNELS : p->C;
    FN(coef) *coefs = (FN(coef) *)k->coefs;
    if (k->backward) {
        for (int64_t c = c0; c < c1; c++) {
            double sdy = 0.0, sdyx = 0.0, coef[7];
            for (int64_t i = 0; i < p->inner; i++)
                for (int64_t ch = 0; ch < p->n_rchunks; ch++) {
                    sdy += k->r1[ch * p->V + c * p->inner + i];
                    sdyx += k->r2[ch * p->V + c * p->inner + i];
                }
            if (f->reduce_only) {
                f->dbeta[c] = fb_nan1(sdy), f->dgamma[c] = fb_nan1(sdyx);
                continue;
            }
            fb_bn_grad_coefs(sdy, sdyx, (double)p->R * (double)p->inner, f->invstd[c],
                          f->gamma ? (double)f->gamma[c] : 1.0, &f->dbeta[c], &f->dgamma[c], coef);
            coefs[c] = FN(make_grad_coef)(f->mean[c], coef);
        }
        return;
    }
    /* Training: Chan's merge of every channel's chunks in the same fixed order; the merge weights
     * depend on the counts alone, so one step serves every channel of the task at once. */
    double mu[FB_FINISH_CHANNELS], m2[FB_FINISH_CHANNELS], n = 0.0;
    const int64_t w = c1 - c0;
    for (int64_t i = 0; i < p->inner; i++)
        for (int64_t ch = 0; ch < p->n_rchunks; ch++) {
            const double nb = (double)fb_rows_chunk_len(p, ch);
            const double *FB_RESTRICT m = k->r1 + ch * p->V + c0 * p->inner + i;
            const double *FB_RESTRICT q = k->r2 + ch * p->V + c0 * p->inner + i;
            if (n == 0.0) {
                for (int64_t j = 0; j < w; j++) mu[j] = m[j * p->inner], m2[j] = q[j * p->inner];
            } else {
                const double nt = n + nb, wm = nb / nt, wq = n * nb / nt;
                for (int64_t j = 0; j < w; j++)
                    fb_chan_step(&mu[j], &m2[j], m[j * p->inner], q[j * p->inner], wm, wq);
            }
            n += nb;
        }
    const int merged = p->inner > 1 || p->n_rchunks > 1;
    for (int64_t c = c0; c < c1; c++) {
        if (merged && FN(needs_refine)(mu[c - c0], m2[c - c0], n))
            FN(refine_stats)(k->x + c * p->inner, p->R, p->V, p->inner, &mu[c - c0], &m2[c - c0]);
        if (f->reduce_only) {
            f->mean[c] = fb_nan1(mu[c - c0]), f->m2[c] = fb_nan1(m2[c - c0]);
            continue;
        }
        f->mean[c] = fb_nan1(mu[c - c0]);
        f->var[c] = fb_nan1(m2[c - c0] / n);
        f->invstd[c] = fb_nan1(1.0 / sqrt(f->var[c] + f->eps));
        coefs[c] = FN(make_fwd_coef)(f->mean[c], f->gamma ? (double)f->gamma[c] : 1.0,
                                     f->invstd[c], f->beta ? (double)f->beta[c] : 0.0);
    }
}

static void FN(rows_spread_then)(void *vctx)
{
    FN(rows_ctx) *k = ((FN(rows_finish_ctx) *)vctx)->k;
    k->exact = FN(rows_spread)(k, k->p.C, k->p.inner);
}

/* The rows path of training and backward, on threads started once: the reductions over
 * (row chunk, column tile) tasks, the per-channel finish, then (unless reduce_only) the
 * elementwise pass. */
static void FN(rows_run)(FN(rows_finish_ctx) *f, int n_threads)
{
    FN(rows_ctx) *k = f->k;
    const int64_t n_tasks = k->ap.n_rchunks * k->ap.n_ctiles;
    k->reverse = 1;
    const fb_phase phases[3] = {
        {(k->p.n_rchunks + 1) / 2 * k->p.n_ctiles,   /* reductions: chunk pairs */
         k->backward ? FN(rows_grad_sums_task) : FN(rows_stats_task), k, NULL},
        {(k->p.C + FB_FINISH_CHANNELS - 1) / FB_FINISH_CHANNELS, FN(rows_finish_task), f,
         f->reduce_only ? NULL : FN(rows_spread_then)},
        {n_tasks, FN(rows_apply_task), k, NULL},
    };
    fb_parallel_phases(phases, f->reduce_only ? 2 : 3, n_threads);
}

/* ---- public kernels ----------------------------------------------------------------------- */

/* Training's statistics and, unless `m2` is given, its elementwise pass; with `m2`, the mean and
 * M2 alone (moments).  outer, C, inner >= 1. */
static fb_status FN(train_run)(const S *x, S *y, int64_t outer, int64_t C, int64_t inner,
                               const T *gamma, const T *beta, double eps, double *mean, double *var,
                               double *invstd, double *m2, const S *res, int relu, int n_threads)
{
    n_threads = fb_threads_for(outer * C * inner, n_threads);
    const int stream = fb_stream_output(outer * C * inner * (int64_t)sizeof(S));
    if (inner >= FB_SLAB_MIN) {
        FN(slab_ctx) k;
        memset(&k, 0, sizeof k);
        k.x = x, k.y = y, k.outer = outer, k.C = C, k.inner = inner;
        k.gamma = gamma, k.beta = beta, k.eps = eps;
        k.mean = mean, k.var = var, k.invstd = invstd, k.m2 = m2, k.stream = stream;
        k.res = res, k.relu = relu, k.pf_first = n_threads == 1;
        fb_parallel_for(C, n_threads, FN(slab_train_task), &k);
        return FB_OK;
    }
    FN(rows_ctx) k;
    memset(&k, 0, sizeof k);
    k.p = fb_rows_plan_make(outer, C, inner);
    k.ap = fb_rows_plan_rows(&k.p);
    k.x = x, k.y = y;
    k.stream = stream;
    k.res = res, k.relu = relu;
    void *scratch = FN(rows_alloc)(&k, C, 0, 0);
    if (!scratch) return FB_ENOMEM;
    FN(rows_finish_ctx) f = {&k, gamma, beta, eps, mean, var, invstd, NULL, NULL, m2, m2 != NULL};
    FN(rows_run)(&f, n_threads);
    free(scratch);
    return FB_OK;
}

static fb_status FN(train)(const S *x, S *y, int64_t outer, int64_t C, int64_t inner,
                           const T *gamma, const T *beta, double eps, double *mean, double *var,
                           double *invstd, const S *residual, int relu, int n_threads)
{
    if (outer < 0 || C < 0 || inner < 0) return FB_EINVAL;
    if (C == 0) return FB_OK;
    if (outer == 0 || inner == 0) return FB_EINVAL;
    return FN(train_run)(x, y, outer, C, inner, gamma, beta, eps, mean, var, invstd, NULL,
                         residual, relu != 0, n_threads);
}

static fb_status FN(moments)(const S *x, int64_t outer, int64_t C, int64_t inner, double *mean,
                             double *m2, int n_threads)
{
    if (outer < 0 || C < 0 || inner < 0) return FB_EINVAL;
    if (C > 0 && (outer == 0 || inner == 0)) {   /* no values: mean 0, M2 0 */
        for (int64_t c = 0; c < C; c++) mean[c] = 0.0, m2[c] = 0.0;
        return FB_OK;
    }
    if (C == 0) return FB_OK;
    return FN(train_run)(x, NULL, outer, C, inner, NULL, NULL, 0.0, mean, NULL, NULL, m2, NULL, 0,
                         n_threads);
}

/* Where the elementwise pass's per-channel coefficients come from: running statistics
 * (inference), mean and invstd (apply), or those and the backward sums (grad_apply). */
typedef struct {
    int kind;                          /* FB_COEF_RUNNING, FB_COEF_STATS or FB_COEF_SUMS */
    const T *rmean, *rvar;             /* running */
    const double *mean, *invstd;       /* stats, sums */
    const T *gamma, *beta;             /* either may be NULL; sums: beta unused */
    double eps;                        /* running */
    const double *sum_dy, *sum_dyx;    /* sums: sum dy and sum dy (x - mean) per channel */
    double count;                      /* sums: the values they were summed over */
} FN(coef_src);

/* The same formulas as the fused kernels' finishing steps, so the same coefficients. */
static void FN(fill_coefs)(const FN(coef_src) *s, FN(coef) *coefs, int64_t C)
{
    for (int64_t c = 0; c < C; c++) {
        if (s->kind == FB_COEF_SUMS) {
            double coef[7], dbeta, dgamma;
            fb_bn_grad_coefs(s->sum_dy[c], s->sum_dyx[c], s->count, s->invstd[c],
                             s->gamma ? (double)s->gamma[c] : 1.0, &dbeta, &dgamma, coef);
            coefs[c] = FN(make_grad_coef)(s->mean[c], coef);
            continue;
        }
        const double invstd = s->kind == FB_COEF_RUNNING ? 1.0 / sqrt((double)s->rvar[c] + s->eps)
                                                         : s->invstd[c];
        const double mean = s->kind == FB_COEF_RUNNING ? (double)s->rmean[c] : s->mean[c];
        coefs[c] = FN(make_fwd_coef)(mean, s->gamma ? (double)s->gamma[c] : 1.0, invstd,
                                     s->beta ? (double)s->beta[c] : 0.0);
    }
}

/* The elementwise pass alone (inference, apply, grad_apply): y = (x - m) * s + c, or with dy
 * dx = dy * g + ((x - m) * s + c), through the fused kernels' own apply tasks -- the slab path's
 * runs or the rows path's -- so the bits of their last pass.  outer, C, inner >= 1. */
static fb_status FN(elementwise)(const S *dy, const S *x, S *y, int64_t outer, int64_t C,
                                 int64_t inner, const FN(coef_src) *src, const S *res, int relu,
                                 const S *ym, S *dres, int n_threads)
{
    n_threads = fb_threads_for(outer * C * inner, n_threads);
    FN(rows_ctx) k;
    memset(&k, 0, sizeof k);
    k.p = fb_rows_plan_make(outer, C, inner < FB_SLAB_MIN ? inner : 1);
    k.ap = fb_rows_plan_rows(&k.p);
    k.x = x, k.dy = dy, k.y = y, k.backward = dy != NULL;
    k.res = res, k.relu = relu, k.ym = ym, k.dres = dres;
    k.stream = fb_stream_output(outer * C * inner * (int64_t)sizeof(S));
    void *scratch = FN(rows_alloc)(&k, C, 1, 0);
    if (!scratch) return FB_ENOMEM;
    FN(fill_coefs)(src, (FN(coef) *)k.coefs, C);
    if (inner >= FB_SLAB_MIN) {
        FN(slab_ctx) s;
        memset(&s, 0, sizeof s);
        s.x = x, s.dy = dy, s.y = y, s.outer = outer, s.C = C, s.inner = inner;
        s.coefs = k.coefs, s.per_task = (FB_CHUNK_ELEMS + inner - 1) / inner, s.stream = k.stream;
        s.res = res, s.relu = relu, s.ym = ym, s.dres = dres;
        fb_parallel_for((outer * C + s.per_task - 1) / s.per_task, n_threads, FN(slab_apply_task), &s);
    } else {
        k.exact = FN(rows_spread)(&k, C, inner);
        fb_parallel_for(k.ap.n_rchunks * k.ap.n_ctiles, n_threads, FN(rows_apply_task), &k);
    }
    free(scratch);
    return FB_OK;
}

static fb_status FN(infer)(const S *x, S *y, int64_t outer, int64_t C, int64_t inner,
                           const T *rmean, const T *rvar, const T *gamma, const T *beta, double eps,
                           const S *residual, int relu, int n_threads)
{
    if (outer < 0 || C < 0 || inner < 0) return FB_EINVAL;
    if (outer == 0 || C == 0 || inner == 0) return FB_OK;
    FN(coef_src) src;
    memset(&src, 0, sizeof src);
    src.kind = FB_COEF_RUNNING, src.rmean = rmean, src.rvar = rvar;
    src.gamma = gamma, src.beta = beta, src.eps = eps;
    return FN(elementwise)(NULL, x, y, outer, C, inner, &src, residual, relu != 0, NULL, NULL,
                           n_threads);
}

static fb_status FN(apply)(const S *x, S *y, int64_t outer, int64_t C, int64_t inner,
                           const double *mean, const double *invstd, const T *gamma, const T *beta,
                           const S *residual, int relu, int n_threads)
{
    if (outer < 0 || C < 0 || inner < 0) return FB_EINVAL;
    if (outer == 0 || C == 0 || inner == 0) return FB_OK;
    FN(coef_src) src;
    memset(&src, 0, sizeof src);
    src.kind = FB_COEF_STATS, src.mean = mean, src.invstd = invstd;
    src.gamma = gamma, src.beta = beta;
    return FN(elementwise)(NULL, x, y, outer, C, inner, &src, residual, relu != 0, NULL, NULL,
                           n_threads);
}

/* Backward's sums and, unless `sums_only`, its elementwise pass; sums only: dbeta receives
 * sum dy and dgamma sum dy (x - mean).  outer, C, inner >= 1. */
static fb_status FN(backward_run)(const S *dy, const S *x, S *dx, int64_t outer, int64_t C,
                                  int64_t inner, const double *mean, const double *invstd,
                                  const T *gamma, double *dgamma, double *dbeta, int sums_only,
                                  const S *ym, S *dres, int n_threads)
{
    n_threads = fb_threads_for(outer * C * inner, n_threads);
    const int stream = fb_stream_output(outer * C * inner * (int64_t)sizeof(S));
    if (inner >= FB_SLAB_MIN) {
        FN(slab_ctx) k;
        memset(&k, 0, sizeof k);
        k.x = x, k.dy = dy, k.y = dx, k.outer = outer, k.C = C, k.inner = inner, k.gamma = gamma;
        k.mean = (double *)mean, k.invstd = (double *)invstd, k.dgamma = dgamma, k.dbeta = dbeta;
        k.sums_only = sums_only, k.stream = stream, k.ym = ym, k.dres = dres;
        k.pf_first = n_threads == 1;
        fb_parallel_for(C, n_threads, FN(slab_backward_task), &k);
        return FB_OK;
    }
    FN(rows_ctx) k;
    memset(&k, 0, sizeof k);
    k.p = fb_rows_plan_make(outer, C, inner);
    k.ap = fb_rows_plan_rows(&k.p);
    k.x = x, k.dy = dy, k.y = dx, k.backward = 1;
    k.stream = stream, k.ym = ym, k.dres = dres;
    size_t mbits = 0;
#ifdef FB_MASK8
    /* The elementwise pass reads y's mask as bits, written by the sums (from memory, float32:
     * 24 bytes an element in all instead of 28).  Byte-aligned rows and tiles only; without the
     * memory the pass reads y, with the same results. */
    if (ym && !sums_only && k.p.V % 8 == 0) mbits = (size_t)(k.p.R * k.p.V / 8) + 4;
#endif
    void *scratch = FN(rows_alloc)(&k, C, 0, mbits);
    if (!scratch && mbits) scratch = FN(rows_alloc)(&k, C, 0, 0);
    if (!scratch) return FB_ENOMEM;
    double *vm = (double *)k.vm;
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < inner; i++) vm[c * inner + i] = mean[c];
    FN(rows_finish_ctx) f = {&k, gamma, NULL, 0.0, (double *)mean, NULL, (double *)invstd,
                             dgamma, dbeta, NULL, sums_only};
    FN(rows_run)(&f, n_threads);
    free(scratch);
    return FB_OK;
}

static fb_status FN(backward)(const S *dy, const S *x, S *dx, int64_t outer, int64_t C,
                              int64_t inner, const double *mean, const double *invstd,
                              const T *gamma, double *dgamma, double *dbeta, const S *y,
                              S *dresidual, int n_threads)
{
    if (outer < 0 || C < 0 || inner < 0) return FB_EINVAL;
    if (C == 0) return FB_OK;
    if (outer == 0 || inner == 0) return FB_EINVAL;
    return FN(backward_run)(dy, x, dx, outer, C, inner, mean, invstd, gamma, dgamma, dbeta, 0,
                            y, dresidual, n_threads);
}

static fb_status FN(grad_sums)(const S *dy, const S *x, int64_t outer, int64_t C, int64_t inner,
                               const double *mean, const double *invstd, double *sum_dy,
                               double *sum_dy_xmu, const S *y, int n_threads)
{
    if (outer < 0 || C < 0 || inner < 0) return FB_EINVAL;
    if (C > 0 && (outer == 0 || inner == 0)) {   /* no values: sums 0 */
        for (int64_t c = 0; c < C; c++) sum_dy[c] = 0.0, sum_dy_xmu[c] = 0.0;
        return FB_OK;
    }
    if (C == 0) return FB_OK;
    return FN(backward_run)(dy, x, NULL, outer, C, inner, mean, invstd, NULL, sum_dy_xmu, sum_dy,
                            1, y, NULL, n_threads);
}

static fb_status FN(grad_apply)(const S *dy, const S *x, S *dx, int64_t outer, int64_t C,
                                int64_t inner, const double *mean, const double *invstd,
                                const T *gamma, const double *sum_dy, const double *sum_dy_xmu,
                                int64_t count, const S *y, S *dresidual, int n_threads)
{
    if (outer < 0 || C < 0 || inner < 0) return FB_EINVAL;
    if (outer == 0 || C == 0 || inner == 0) return count < 0 ? FB_EINVAL : FB_OK;
    if (count < outer * inner) return FB_EINVAL;   /* the sums cover at least these values */
    FN(coef_src) src;
    memset(&src, 0, sizeof src);
    src.kind = FB_COEF_SUMS, src.mean = mean, src.invstd = invstd, src.gamma = gamma;
    src.sum_dy = sum_dy, src.sum_dyx = sum_dy_xmu, src.count = (double)count;
    return FN(elementwise)(dy, x, dx, outer, C, inner, &src, NULL, 0, y, dresidual, n_threads);
}

#undef FN
#undef T
#undef S
