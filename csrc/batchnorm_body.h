/*
 * batchnorm_body.h -- the batch-norm kernels for one element type.
 *
 * Included by batchnorm_kernels.c once per dtype with FB_T (float or double) and FB_DT (f32 or
 * f64) defined.  See batchnorm.h for the layout, the algorithms and the guarantees; the helpers it
 * uses (plans, Chan's merge, constants) are defined once in batchnorm_kernels.c.
 */
#define FN(name) FB_CAT3(name, _, FB_DT)
#define T FB_T

/* ---- reductions over contiguous runs, FB_LANES virtual lanes ----------------------------- */

/* Two-pass mean and sum of squared deviations of p[0..n), n >= 1. */
static void FN(run_stats)(const T *FB_RESTRICT p, int64_t n, double *mean, double *m2)
{
    double acc[FB_LANES] = {0};
    int64_t i = 0;
    for (; i + FB_LANES <= n; i += FB_LANES)
        for (int l = 0; l < FB_LANES; l++) acc[l] += (double)p[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += (double)p[i];
    const double mu = fb_lanes_total(acc) / (double)n;

    double sq[FB_LANES] = {0};
    for (i = 0; i + FB_LANES <= n; i += FB_LANES)
        for (int l = 0; l < FB_LANES; l++) {
            const double d = (double)p[i + l] - mu;
            sq[l] += d * d;
        }
    for (int l = 0; i < n; i++, l++) {
        const double d = (double)p[i] - mu;
        sq[l] += d * d;
    }
    *mean = mu;
    *m2 = fb_lanes_total(sq);
}

/* acc_dy += dy, acc_dyx += dy * (x - mu) over a run, lane by lane. */
static void FN(run_grad_sums)(const T *FB_RESTRICT dy, const T *FB_RESTRICT x, int64_t n, double mu,
                              double *FB_RESTRICT acc_dy, double *FB_RESTRICT acc_dyx)
{
    int64_t i = 0;
    for (; i + FB_LANES <= n; i += FB_LANES)
        for (int l = 0; l < FB_LANES; l++) {
            const double g = (double)dy[i + l];
            acc_dy[l] += g;
            acc_dyx[l] += g * ((double)x[i + l] - mu);
        }
    for (int l = 0; i < n; i++, l++) {
        const double g = (double)dy[i];
        acc_dy[l] += g;
        acc_dyx[l] += g * ((double)x[i] - mu);
    }
}

/* y = (x - mu) * s + b over a run. */
static void FN(run_apply)(const T *FB_RESTRICT x, T *FB_RESTRICT y, int64_t n, double mu, double s,
                          double b)
{
    for (int64_t i = 0; i < n; i++) y[i] = (T)(((double)x[i] - mu) * s + b);
}

/* dx = a * dy + k * (x - mu) + c over a run. */
static void FN(run_grad_apply)(const T *FB_RESTRICT dy, const T *FB_RESTRICT x, T *FB_RESTRICT dx,
                               int64_t n, double mu, double a, double k, double c)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] = (T)((double)dy[i] * a + ((double)x[i] - mu) * k + c);
}

/* ---- slab path: one task per channel, its data cache-resident between passes ------------- */

typedef struct {
    const T *x, *dy;
    T *y;
    int64_t outer, C, inner;
    const T *gamma, *beta;
    double eps;
    double *mean, *var, *invstd;  /* train: outputs; backward: mean, invstd are inputs */
    double *dgamma, *dbeta;
} FN(slab_ctx);

static void FN(slab_train_task)(void *vctx, int64_t c)
{
    const FN(slab_ctx) *k = (const FN(slab_ctx) *)vctx;
    const int64_t inner = k->inner, stride = k->C * inner;
    double n = 0.0, mu = 0.0, m2 = 0.0;
    for (int64_t o = 0; o < k->outer; o++) {
        const T *slab = k->x + o * stride + c * inner;
        for (int64_t s = 0; s < inner; s += FB_SEG) {
            const int64_t len = inner - s < FB_SEG ? inner - s : FB_SEG;
            double smu, sm2;
            FN(run_stats)(slab + s, len, &smu, &sm2);
            fb_chan_merge(&n, &mu, &m2, (double)len, smu, sm2);
        }
    }
    const double var = m2 / n, invstd = 1.0 / sqrt(var + k->eps);
    k->mean[c] = mu;
    k->var[c] = var;
    k->invstd[c] = invstd;
    const double scale = k->gamma ? (double)k->gamma[c] * invstd : invstd;
    const double shift = k->beta ? (double)k->beta[c] : 0.0;
    for (int64_t o = 0; o < k->outer; o++)
        FN(run_apply)(k->x + o * stride + c * inner, k->y + o * stride + c * inner, inner, mu, scale,
                      shift);
}

static void FN(slab_backward_task)(void *vctx, int64_t c)
{
    const FN(slab_ctx) *k = (const FN(slab_ctx) *)vctx;
    const int64_t inner = k->inner, stride = k->C * inner;
    const double mu = k->mean[c], invstd = k->invstd[c];
    double acc_dy[FB_LANES] = {0}, acc_dyx[FB_LANES] = {0};
    for (int64_t o = 0; o < k->outer; o++)
        FN(run_grad_sums)(k->dy + o * stride + c * inner, k->x + o * stride + c * inner, inner, mu,
                          acc_dy, acc_dyx);
    const double sdy = fb_lanes_total(acc_dy), sdyx = fb_lanes_total(acc_dyx);
    const double count = (double)k->outer * (double)inner;
    k->dbeta[c] = sdy;
    k->dgamma[c] = sdyx * invstd;
    const double g = k->gamma ? (double)k->gamma[c] : 1.0;
    const double a = g * invstd;
    const double kx = -a * invstd * invstd * (sdyx / count);
    const double c0 = -a * (sdy / count);
    for (int64_t o = 0; o < k->outer; o++)
        FN(run_grad_apply)(k->dy + o * stride + c * inner, k->x + o * stride + c * inner,
                           k->y + o * stride + c * inner, inner, mu, a, kx, c0);
}

/* ---- rows path: (rows, V) with V = C * inner virtual channels, tiled (row chunk, column tile) */

typedef struct {
    fb_rows_plan p;
    const T *x, *dy;
    T *y;
    double *r1, *r2;           /* per row chunk and virtual channel: mean & m2, or sdy & sdyx */
    double *tmp;               /* per task: 2 * CT doubles */
    const double *vm, *va, *vk, *vc; /* per virtual channel: mean, and apply coefficients */
} FN(rows_ctx);

static void FN(rows_stats_task)(void *vctx, int64_t task)
{
    const FN(rows_ctx) *k = (const FN(rows_ctx) *)vctx;
    const fb_rows_plan *p = &k->p;
    int64_t r0, r1, v0, w;
    fb_rows_task_range(p, task, &r0, &r1, &v0, &w);
    const int64_t ch = task / p->n_ctiles;
    double *FB_RESTRICT cm = k->r1 + ch * p->V + v0, *FB_RESTRICT cm2 = k->r2 + ch * p->V + v0;
    double *FB_RESTRICT bm = k->tmp + task * 2 * p->CT, *FB_RESTRICT bm2 = bm + p->CT;
    double n = 0.0;
    for (int64_t r = r0; r < r1; r += p->B) {
        const int64_t re = r + p->B < r1 ? r + p->B : r1;
        const double nb = (double)(re - r);
        for (int64_t v = 0; v < w; v++) bm[v] = 0.0, bm2[v] = 0.0;
        for (int64_t i = r; i < re; i++) {
            const T *FB_RESTRICT row = k->x + i * p->V + v0;
            for (int64_t v = 0; v < w; v++) bm[v] += (double)row[v];
        }
        for (int64_t v = 0; v < w; v++) bm[v] /= nb;
        for (int64_t i = r; i < re; i++) {
            const T *FB_RESTRICT row = k->x + i * p->V + v0;
            for (int64_t v = 0; v < w; v++) {
                const double d = (double)row[v] - bm[v];
                bm2[v] += d * d;
            }
        }
        if (n == 0.0) {
            for (int64_t v = 0; v < w; v++) cm[v] = bm[v], cm2[v] = bm2[v];
        } else {
            const double f = nb / (n + nb), g = n * nb / (n + nb);
            for (int64_t v = 0; v < w; v++) {
                const double delta = bm[v] - cm[v];
                cm[v] += delta * f;
                cm2[v] += bm2[v] + delta * delta * g;
            }
        }
        n += nb;
    }
}

static void FN(rows_grad_sums_task)(void *vctx, int64_t task)
{
    const FN(rows_ctx) *k = (const FN(rows_ctx) *)vctx;
    const fb_rows_plan *p = &k->p;
    int64_t r0, r1, v0, w;
    fb_rows_task_range(p, task, &r0, &r1, &v0, &w);
    const int64_t ch = task / p->n_ctiles;
    double *FB_RESTRICT sdy = k->r1 + ch * p->V + v0, *FB_RESTRICT sdyx = k->r2 + ch * p->V + v0;
    const double *FB_RESTRICT vm = k->vm + v0;
    for (int64_t v = 0; v < w; v++) sdy[v] = 0.0, sdyx[v] = 0.0;
    for (int64_t i = r0; i < r1; i++) {
        const T *FB_RESTRICT xr = k->x + i * p->V + v0;
        const T *FB_RESTRICT gr = k->dy + i * p->V + v0;
        for (int64_t v = 0; v < w; v++) {
            const double g = (double)gr[v];
            sdy[v] += g;
            sdyx[v] += g * ((double)xr[v] - vm[v]);
        }
    }
}

/* y = (x - vm) * va + vc; with dy: y = dy * va + (x - vm) * vk + vc. */
static void FN(rows_apply_task)(void *vctx, int64_t task)
{
    const FN(rows_ctx) *k = (const FN(rows_ctx) *)vctx;
    const fb_rows_plan *p = &k->p;
    int64_t r0, r1, v0, w;
    fb_rows_task_range(p, task, &r0, &r1, &v0, &w);
    const double *FB_RESTRICT vm = k->vm + v0, *FB_RESTRICT va = k->va + v0;
    const double *FB_RESTRICT vk = k->vk ? k->vk + v0 : NULL, *FB_RESTRICT vc = k->vc + v0;
    for (int64_t i = r0; i < r1; i++) {
        const T *FB_RESTRICT xr = k->x + i * p->V + v0;
        T *FB_RESTRICT yr = k->y + i * p->V + v0;
        if (k->dy) {
            const T *FB_RESTRICT gr = k->dy + i * p->V + v0;
            for (int64_t v = 0; v < w; v++)
                yr[v] = (T)((double)gr[v] * va[v] + ((double)xr[v] - vm[v]) * vk[v] + vc[v]);
        } else {
            for (int64_t v = 0; v < w; v++) yr[v] = (T)(((double)xr[v] - vm[v]) * va[v] + vc[v]);
        }
    }
}

/* Per-channel (n, mean, m2) from the row-chunk results: virtual channel, then chunk order. */
static void FN(rows_merge_stats)(const fb_rows_plan *p, const double *cm, const double *cm2,
                                 int64_t C, int64_t inner, double *mean, double *m2)
{
    for (int64_t c = 0; c < C; c++) {
        double n = 0.0, mu = 0.0, s = 0.0;
        for (int64_t i = 0; i < inner; i++)
            for (int64_t ch = 0; ch < p->n_rchunks; ch++) {
                const int64_t v = c * inner + i;
                fb_chan_merge(&n, &mu, &s, (double)fb_rows_chunk_len(p, ch), cm[ch * p->V + v],
                              cm2[ch * p->V + v]);
            }
        mean[c] = mu;
        m2[c] = s;
    }
}

/* ---- public kernels ----------------------------------------------------------------------- */

static fb_status FN(train)(const T *x, T *y, int64_t outer, int64_t C, int64_t inner,
                           const T *gamma, const T *beta, double eps, double *mean, double *var,
                           double *invstd, int n_threads)
{
    if (outer < 0 || C < 0 || inner < 0) return FB_EINVAL;
    if (C == 0) return FB_OK;
    if (outer == 0 || inner == 0) return FB_EINVAL;
    n_threads = fb_threads_for(outer * C * inner, n_threads);
    if (inner >= FB_SLAB_MIN) {
        FN(slab_ctx) k = {x, NULL, y, outer, C, inner, gamma, beta, eps, mean, var, invstd, NULL, NULL};
        fb_parallel_for(C, n_threads, FN(slab_train_task), &k);
        return FB_OK;
    }
    const fb_rows_plan p = fb_rows_plan_make(outer, C * inner);
    const int64_t V = p.V, n_tasks = p.n_rchunks * p.n_ctiles;
    double *scratch = (double *)malloc(sizeof(double) * (size_t)(2 * p.n_rchunks * V + 2 * n_tasks * p.CT + 3 * V));
    if (!scratch) return FB_ENOMEM;
    FN(rows_ctx) k = {p, x, NULL, y, scratch, scratch + p.n_rchunks * V,
                      scratch + 2 * p.n_rchunks * V, NULL, NULL, NULL, NULL};
    fb_parallel_for(n_tasks, n_threads, FN(rows_stats_task), &k);
    FN(rows_merge_stats)(&p, k.r1, k.r2, C, inner, mean, var);
    double *vm = k.tmp + 2 * n_tasks * p.CT, *va = vm + V, *vc = va + V;
    for (int64_t c = 0; c < C; c++) {
        var[c] /= (double)(outer * inner);
        invstd[c] = 1.0 / sqrt(var[c] + eps);
        const double a = gamma ? (double)gamma[c] * invstd[c] : invstd[c];
        const double b = beta ? (double)beta[c] : 0.0;
        for (int64_t i = 0; i < inner; i++)
            vm[c * inner + i] = mean[c], va[c * inner + i] = a, vc[c * inner + i] = b;
    }
    k.vm = vm, k.va = va, k.vc = vc;
    fb_parallel_for(n_tasks, n_threads, FN(rows_apply_task), &k);
    free(scratch);
    return FB_OK;
}

typedef struct {
    const T *x;
    T *y;
    int64_t C, inner, per_task, n_slabs;
    const double *m, *a, *b;
} FN(apply_ctx);

static void FN(apply_slabs_task)(void *vctx, int64_t task)
{
    const FN(apply_ctx) *k = (const FN(apply_ctx) *)vctx;
    const int64_t j0 = task * k->per_task;
    const int64_t j1 = j0 + k->per_task < k->n_slabs ? j0 + k->per_task : k->n_slabs;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t c = j % k->C;
        FN(run_apply)(k->x + j * k->inner, k->y + j * k->inner, k->inner, k->m[c], k->a[c], k->b[c]);
    }
}

static fb_status FN(infer)(const T *x, T *y, int64_t outer, int64_t C, int64_t inner,
                           const T *rmean, const T *rvar, const T *gamma, const T *beta, double eps,
                           int n_threads)
{
    if (outer < 0 || C < 0 || inner < 0) return FB_EINVAL;
    if (outer == 0 || C == 0 || inner == 0) return FB_OK;
    n_threads = fb_threads_for(outer * C * inner, n_threads);
    const int slabs = inner >= FB_SLAB_MIN;
    const fb_rows_plan p = fb_rows_plan_make(outer, C * inner);
    const int64_t V = slabs ? C : p.V;
    double *coef = (double *)malloc(sizeof(double) * (size_t)(3 * V));
    if (!coef) return FB_ENOMEM;
    double *vm = coef, *va = coef + V, *vc = coef + 2 * V;
    for (int64_t c = 0; c < C; c++) {
        const double invstd = 1.0 / sqrt((double)rvar[c] + eps);
        const double a = gamma ? (double)gamma[c] * invstd : invstd;
        const double b = beta ? (double)beta[c] : 0.0;
        const int64_t rep = slabs ? 1 : inner;
        for (int64_t i = 0; i < rep; i++)
            vm[c * rep + i] = (double)rmean[c], va[c * rep + i] = a, vc[c * rep + i] = b;
    }
    if (slabs) {
        const int64_t n_slabs = outer * C;
        int64_t per_task = (FB_CHUNK_ELEMS + inner - 1) / inner;
        const int64_t n_tasks = (n_slabs + per_task - 1) / per_task;
        FN(apply_ctx) k = {x, y, C, inner, per_task, n_slabs, vm, va, vc};
        fb_parallel_for(n_tasks, n_threads, FN(apply_slabs_task), &k);
    } else {
        FN(rows_ctx) k = {p, x, NULL, y, NULL, NULL, NULL, vm, va, NULL, vc};
        fb_parallel_for(p.n_rchunks * p.n_ctiles, n_threads, FN(rows_apply_task), &k);
    }
    free(coef);
    return FB_OK;
}

static fb_status FN(backward)(const T *dy, const T *x, T *dx, int64_t outer, int64_t C,
                              int64_t inner, const double *mean, const double *invstd,
                              const T *gamma, double *dgamma, double *dbeta, int n_threads)
{
    if (outer < 0 || C < 0 || inner < 0) return FB_EINVAL;
    if (C == 0) return FB_OK;
    if (outer == 0 || inner == 0) return FB_EINVAL;
    n_threads = fb_threads_for(outer * C * inner, n_threads);
    if (inner >= FB_SLAB_MIN) {
        FN(slab_ctx) k = {x, dy, dx, outer, C, inner, gamma, NULL, 0.0,
                          (double *)mean, NULL, (double *)invstd, dgamma, dbeta};
        fb_parallel_for(C, n_threads, FN(slab_backward_task), &k);
        return FB_OK;
    }
    const fb_rows_plan p = fb_rows_plan_make(outer, C * inner);
    const int64_t V = p.V, n_tasks = p.n_rchunks * p.n_ctiles;
    double *scratch = (double *)malloc(sizeof(double) * (size_t)(2 * p.n_rchunks * V + 4 * V));
    if (!scratch) return FB_ENOMEM;
    double *vm = scratch + 2 * p.n_rchunks * V, *va = vm + V, *vk = va + V, *vc = vk + V;
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < inner; i++) vm[c * inner + i] = mean[c];
    FN(rows_ctx) k = {p, x, dy, dx, scratch, scratch + p.n_rchunks * V, NULL, vm, va, vk, vc};
    fb_parallel_for(n_tasks, n_threads, FN(rows_grad_sums_task), &k);
    const double count = (double)outer * (double)inner;
    for (int64_t c = 0; c < C; c++) {
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t i = 0; i < inner; i++)
            for (int64_t ch = 0; ch < p.n_rchunks; ch++) {
                sdy += k.r1[ch * V + c * inner + i];
                sdyx += k.r2[ch * V + c * inner + i];
            }
        dbeta[c] = sdy;
        dgamma[c] = sdyx * invstd[c];
        const double g = gamma ? (double)gamma[c] : 1.0, a = g * invstd[c];
        const double kx = -a * invstd[c] * invstd[c] * (sdyx / count), c0 = -a * (sdy / count);
        for (int64_t i = 0; i < inner; i++)
            va[c * inner + i] = a, vk[c * inner + i] = kx, vc[c * inner + i] = c0;
    }
    fb_parallel_for(n_tasks, n_threads, FN(rows_apply_task), &k);
    free(scratch);
    return FB_OK;
}

#undef FN
#undef T
