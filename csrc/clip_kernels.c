/*
 * clip_kernels.c -- the clipping loops, compiled once per instruction set.
 *
 * setup.py compiles this file with -DFB_ISA_SUFFIX=_scalar, _avx2, _avx512 and that set's -m
 * flags; each object exports one fb_clip_table.  One task is one block of the plan (see clip.h):
 * it reads its array's dtype and calls that dtype's loop from clip_body.h.  A task writes only its
 * own partial or its own block's elements, so the thread that runs it never changes a result.
 */
#include <float.h>
#include <math.h>

#include "clip.h"
#include "half.h"
#include "parallel.h"
#include "simd.h"   /* fb_lanes_total */

#ifndef FB_ISA_SUFFIX
#define FB_ISA_SUFFIX _scalar
#endif

#define FB_CLIP_ADD(a, b) ((a) + (b))
#define FB_CLIP_ACC (2 * FB_LANES)   /* accumulators per reduction, see clip_body.h */
/* Prefetch distance of the reductions, in elements (a hint only: it changes no result). */
#define FB_CLIP_AHEAD 1024
#if defined(__GNUC__) || defined(__clang__)
#define FB_CLIP_PREFETCH(addr) __builtin_prefetch((addr), 0, 3)
#else
#define FB_CLIP_PREFETCH(addr) ((void)0)
#endif

static inline double fb_clip_lanes_max(const double *acc)
{
    double m = acc[0];
    for (int l = 1; l < FB_LANES; l++) m = fb_clip_max(m, acc[l]);
    return m;
}

static inline int64_t fb_clip_block_len(const fb_clip_plan *plan, int64_t b)
{
    const int64_t rest = plan->size[plan->arr[b]] - plan->start[b];
    return rest < FB_CLIP_BLOCK ? rest : FB_CLIP_BLOCK;
}

/* The dtype rows: one instantiation of clip_body.h each (see there for the macros). */
#define FB_T float
#define FB_DT f32
#define FB_SQ_EXACT 1   /* x * x exact in a double */
#define FB_CT float
#define FB_TO_CT(v) (v)
#define FB_FROM_CT(x) (x)
#define FB_FROM_D(d) ((float)(d))
#include "clip_body.h"

#define FB_T double
#define FB_DT f64
#define FB_SQ_EXACT 0   /* x * x rounds */
#define FB_CT double
#define FB_TO_CT(v) (v)
#define FB_FROM_CT(x) (x)
#define FB_FROM_D(d) (d)
#include "clip_body.h"

#define FB_T uint16_t
#define FB_DT f16
#define FB_SQ_EXACT 1   /* x * x exact in a double */
#define FB_CT float
#define FB_TO_CT(v) fb_f16_to_f32(v)
#define FB_FROM_CT(x) fb_f32_to_f16(x)
#define FB_FROM_D(d) fb_f64_to_f16(d)
#include "clip_body.h"

#define FB_T uint16_t
#define FB_DT bf16
#define FB_SQ_EXACT 1   /* x * x exact in a double */
#define FB_CT double
#define FB_TO_CT(v) ((double)fb_bf16_to_f32(v))
#define FB_FROM_CT(x) fb_f64_to_bf16(x)
#define FB_FROM_D(d) fb_f64_to_bf16(d)
#include "clip_body.h"

/* Each dtype's task entry points, indexed by the FB_CLIP_* code (the list of clip.h). */
static const struct {
    double (*partial)(const fb_clip_plan *, int64_t, int, double);
    void (*scale)(const fb_clip_plan *, int64_t, double);
    void (*clamp)(const fb_clip_plan *, int64_t, double);
} rows[FB_CLIP_NDTYPES] = {
#define FB_CLIP_ROW(CODE, DT) {task_partial_##DT, task_scale_##DT, task_clamp_##DT},
    FB_CLIP_DTYPES(FB_CLIP_ROW)
#undef FB_CLIP_ROW
};

typedef struct {
    const fb_clip_plan *plan;
    int kind;
    double pw, coef, clip_value;
    double *part;
} fb_clip_ctx;

static void partial_task(void *vctx, int64_t b)
{
    const fb_clip_ctx *k = (const fb_clip_ctx *)vctx;
    const int dt = k->plan->dtype[k->plan->arr[b]];
    k->part[b] = rows[dt].partial(k->plan, b, k->kind, k->pw);
}

static void scale_task(void *vctx, int64_t b)
{
    const fb_clip_ctx *k = (const fb_clip_ctx *)vctx;
    rows[k->plan->dtype[k->plan->arr[b]]].scale(k->plan, b, k->coef);
}

static void clamp_task(void *vctx, int64_t b)
{
    const fb_clip_ctx *k = (const fb_clip_ctx *)vctx;
    const int dt = k->plan->dtype[k->plan->arr[b]];
    /* float32 keeps its rule: a bound beyond FLT_MAX is infinite; the other types round the
     * bound once (overflowing to infinity), as their NumPy scalar type does */
    const double c = dt == FB_CLIP_F32 && k->clip_value > (double)FLT_MAX ? (double)INFINITY
                                                                          : k->clip_value;
    rows[dt].clamp(k->plan, b, c);
}

static void partials(const fb_clip_plan *plan, int kind, double p, double *part, int n_threads)
{
    fb_clip_ctx k = {plan, kind, p, 0.0, 0.0, part};
    fb_parallel_for(plan->n_blocks, n_threads, partial_task, &k);
}

static void scale(const fb_clip_plan *plan, double coef, int n_threads)
{
    fb_clip_ctx k = {plan, 0, 0.0, coef, 0.0, NULL};
    fb_parallel_for(plan->n_blocks, n_threads, scale_task, &k);
}

static void clamp(const fb_clip_plan *plan, double clip_value, int n_threads)
{
    fb_clip_ctx k = {plan, 0, 0.0, 0.0, clip_value, NULL};
    fb_parallel_for(plan->n_blocks, n_threads, clamp_task, &k);
}

const fb_clip_table FB_CAT(fb_clip_table, FB_ISA_SUFFIX) = {partials, scale, clamp};
