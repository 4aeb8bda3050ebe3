/* clip.c -- the public clipping entry points: instruction-set dispatch, the block plan, the
 * merge of block partials in block order, and PyTorch's clipping coefficient.  See clip.h. */
#include <math.h>
#include <stdlib.h>

#include "clip.h"
#include "cpu.h"
#include "parallel.h"


FB_ISA_DISPATCH(fb_clip, fb_clip_table)

/* Build the plan; *scratch owns arr/start (free it).  Returns FB_EINVAL / FB_ENOMEM / FB_OK. */
static fb_status plan_make(int64_t n, void *const *data, const int64_t *size, const int64_t *stride,
                           const int *dtype, fb_clip_plan *plan, int64_t **scratch,
                           int64_t *n_elems)
{
    int64_t n_blocks = 0, total = 0;
    *scratch = NULL;
    if (n < 0) return FB_EINVAL;
    for (int64_t k = 0; k < n; k++) {
        if (size[k] < 0 || dtype[k] < 0 || dtype[k] >= FB_CLIP_NDTYPES) return FB_EINVAL;
        if (size[k] > 0 && !data[k]) return FB_EINVAL;
        n_blocks += (size[k] + FB_CLIP_BLOCK - 1) / FB_CLIP_BLOCK;
        total += size[k];
    }
    int64_t *buf = NULL;
    if (n_blocks > 0) {
        buf = (int64_t *)malloc(sizeof(int64_t) * (size_t)(2 * n_blocks));
        if (!buf) return FB_ENOMEM;
    }
    int64_t b = 0;
    for (int64_t k = 0; k < n; k++)
        for (int64_t s = 0; s < size[k]; s += FB_CLIP_BLOCK, b++) buf[b] = k, buf[n_blocks + b] = s;
    plan->data = data, plan->size = size, plan->stride = stride, plan->dtype = dtype;
    plan->n_blocks = n_blocks;
    plan->arr = buf, plan->start = buf ? buf + n_blocks : NULL;
    *scratch = buf;
    *n_elems = total;
    return FB_OK;
}

static int threads_for(int64_t n_elems, int n_threads)
{
    return (n_elems < FB_PAR_MIN_ELEMS || n_threads < 1) ? 1 : n_threads;
}

fb_status fb_clip_norm(int64_t n, void *const *data, const int64_t *size, const int64_t *stride,
                       const int *dtype, double norm_type, int clip, double max_norm,
                       double *acc, double *total, int *scaled, int n_threads)
{
    if (scaled) *scaled = 0;
    if (!(norm_type > 0.0)) return FB_EINVAL;   /* also NaN */
    const int kind = isinf(norm_type) ? FB_NORM_MAXABS
                     : norm_type == 2.0 ? FB_NORM_SUMSQ
                     : norm_type == 1.0 ? FB_NORM_SUMABS
                     : FB_NORM_SUMPOW;
    fb_clip_plan plan;
    int64_t *scratch, n_elems;
    fb_status st = plan_make(n, data, size, stride, dtype, &plan, &scratch, &n_elems);
    if (st != FB_OK) return st;
    double *part = NULL;
    if (plan.n_blocks > 0) {
        part = (double *)malloc(sizeof(double) * (size_t)plan.n_blocks);
        if (!part) {
            free(scratch);
            return FB_ENOMEM;
        }
    }
    n_threads = threads_for(n_elems, n_threads);
    fb_clip->partials(&plan, kind, norm_type, part, n_threads);

    /* Merge: blocks in order into their array, arrays in order into the total. */
    double sum = 0.0, arr = 0.0;
    int64_t b = 0;
    for (int64_t k = 0; k < n; k++) {
        arr = 0.0;
        for (; b < plan.n_blocks && plan.arr[b] == k; b++)
            arr = kind == FB_NORM_MAXABS ? fb_clip_max(arr, part[b]) : arr + part[b];
        if (acc) acc[k] = arr;
        sum = kind == FB_NORM_MAXABS ? fb_clip_max(sum, arr) : sum + arr;
    }
    const double t = kind == FB_NORM_SUMSQ ? sqrt(sum)
                     : kind == FB_NORM_SUMPOW ? pow(sum, 1.0 / norm_type)
                     : sum;
    *total = t;

    if (clip) {
        const double coef = max_norm / (t + 1e-6);
        const int refuse = clip == 2 && !isfinite(t);
        if (!(coef >= 1.0) && !refuse && plan.n_blocks > 0) {
            fb_clip->scale(&plan, coef, n_threads);
            if (scaled) *scaled = 1;
        }
    }
    free(part);
    free(scratch);
    return FB_OK;
}

fb_status fb_clip_scale(int64_t n, void *const *data, const int64_t *size, const int64_t *stride,
                        const int *dtype, double coef, int n_threads)
{
    fb_clip_plan plan;
    int64_t *scratch, n_elems;
    fb_status st = plan_make(n, data, size, stride, dtype, &plan, &scratch, &n_elems);
    if (st != FB_OK) return st;
    if (plan.n_blocks > 0) fb_clip->scale(&plan, coef, threads_for(n_elems, n_threads));
    free(scratch);
    return FB_OK;
}

fb_status fb_clip_value(int64_t n, void *const *data, const int64_t *size, const int64_t *stride,
                        const int *dtype, double clip_value, int n_threads)
{
    if (!(clip_value >= 0.0)) return FB_EINVAL;
    fb_clip_plan plan;
    int64_t *scratch, n_elems;
    fb_status st = plan_make(n, data, size, stride, dtype, &plan, &scratch, &n_elems);
    if (st != FB_OK) return st;
    fb_clip->clamp(&plan, clip_value, threads_for(n_elems, n_threads));
    free(scratch);
    return FB_OK;
}
