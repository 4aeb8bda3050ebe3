/*
 * norm_kernels.c -- the normalization core's loops, compiled once per instruction set.
 *
 * setup.py compiles this file with -DFB_ISA_SUFFIX=_scalar, _avx2, _avx512 and that set's flags;
 * each object exports its kernels as fb_norm_<name>_<dtype><suffix> (dispatch.c's tables).  Reductions run over
 * FB_LANES explicit lanes and nothing is contracted into FMAs, so every path gives the same bits.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "moments.h"
#include "norm.h"
#include "parallel.h"
#include "simd.h"

#ifndef FB_ISA_SUFFIX
#define FB_ISA_SUFFIX _scalar
#endif

/* Blocking constants: the work split depends on these and the shape alone. */
#define FB_SEG 4096             /* values per shifted-sum segment (as batch norm's slab path)   */
#define FB_SLAB_MIN 32          /* inner extents from this take whole-channel runs              */
#define FB_CHUNK_ELEMS 262144   /* elements of a task's samples (outer indices) at least        */
#define FB_EBLK 512             /* per-element coefficients computed this many at a time        */
#define FB_COLS_MIN_MID 16      /* elementwise groups of this many runs take the columns layout */
#define FB_COLS_ROWS 1024       /* columns layout: rows per shifted-sum segment of a column      */
#define FB_STREAM_MIN_BYTES (4 << 20) /* outputs this large bypass the cache (non-temporal)     */

static inline int fb_stream_output(int64_t bytes) { return FB_HAVE_STREAM && bytes >= FB_STREAM_MIN_BYTES; }

#define FB_NVG 4
#define FB_LG (FB_NVG * FB_VD_W < FB_LANES ? FB_NVG * FB_VD_W : FB_LANES)
#if FB_LANES % (FB_NVG * 2) != 0 || FB_SEG % FB_LANES != 0
#error "FB_LANES must split into vector groups and FB_SEG into whole lane rounds"
#endif

/* The task split of a view: tasks are (chunk of OC outer indices, group g). */
typedef struct {
    fb_norm_view v;
    int64_t C, L, stride, per_outer, OC, n_chunks, n_tasks, n;
    int elementwise;   /* inner < FB_SLAB_MIN: coefficients per element of a run */
    int columns;       /* elementwise with many short runs (channels-last): a task takes whole
                        * samples as rows of V = C * inner columns, every group at once */
    int64_t P;         /* partial sums per chunk: C * inner (elementwise) or C */
} fb_norm_plan;

static fb_norm_plan fb_norm_plan_make(const fb_norm_view *v)
{
    fb_norm_plan p;
    p.v = *v;
    p.C = v->G * v->Cg;
    p.L = v->Cg * v->inner;              /* a run: one group's values in one mid index */
    p.stride = p.C * v->inner;           /* from one run of a group to its next */
    p.per_outer = v->mid * p.stride;
    p.OC = p.per_outer > 0 ? FB_CHUNK_ELEMS / p.per_outer : 1;
    if (p.OC < 1) p.OC = 1;
    p.n_chunks = (v->outer + p.OC - 1) / p.OC;
    p.n_tasks = p.n_chunks * v->G;
    p.n = v->mid * p.L;                  /* values per group */
    p.elementwise = v->inner < FB_SLAB_MIN;
    p.columns = p.elementwise && v->mid >= FB_COLS_MIN_MID;
    if (p.columns) p.n_tasks = p.n_chunks;
    p.P = p.elementwise ? p.C * v->inner : p.C;
    return p;
}

/* What the final merge of a backward needs (the first member of either layout's context):
 * per-chunk partial sums of dy xhat and dy, P each, and where dgamma, dbeta go. */
typedef struct {
    const fb_norm_plan *p;
    double *pdg, *pdb, *dgamma, *dbeta;
} fb_norm_merge;

static int fb_norm_view_ok(const fb_norm_view *v)
{
    return v->outer >= 0 && v->mid >= 0 && v->G >= 0 && v->Cg >= 0 && v->inner >= 0;
}

/* Two vectors of doubles rounded to one of floats (in registers: a store of each half and a
 * load of the whole would stall store forwarding). */
static inline fb_vf fb_vf_from_vd(fb_vd a, fb_vd b)
{
#if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX512F__)
    return (fb_vf)_mm512_insertf64x4(_mm512_castpd256_pd512((__m256d)_mm512_cvtpd_ps((__m512d)a)),
                                     (__m256d)_mm512_cvtpd_ps((__m512d)b), 1);
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__AVX__)
    return (fb_vf)_mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps((__m256d)a)),
                                       _mm256_cvtpd_ps((__m256d)b), 1);
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__SSE2__)
    return (fb_vf)_mm_movelh_ps(_mm_cvtpd_ps((__m128d)a), _mm_cvtpd_ps((__m128d)b));
#else
    fb_vf r;
    float t[FB_VF_W];
    fb_vd_store_f32(t, a), fb_vd_store_f32(t + FB_VD_W, b);
    memcpy(&r, t, sizeof r);
    return r;
#endif
}

#define FB_T float
#define FB_DT f32
#define FB_TV fb_vf
#define FB_TV_W FB_VF_W
#define FB_TV_SET1 fb_vf_set1
#define FB_TV_LOAD fb_vf_load
#define FB_TV_STORE fb_vf_store
#define FB_TV_STREAM fb_vf_stream
#define FB_TV_ADD fb_vf_add
#define FB_TV_SUB fb_vf_sub
#define FB_TV_MUL fb_vf_mul
#define FB_VD_LOAD_T fb_vd_load_f32
#define FB_VD_STORE_T fb_vd_store_f32
#define FB_TV_FROM_VD fb_vf_from_vd
#include "norm_body.h"

#define FB_T double
#define FB_DT f64
#define FB_TV fb_vd
#define FB_TV_W FB_VD_W
#define FB_TV_SET1 fb_vd_set1
#define FB_TV_LOAD fb_vd_load_f64
#define FB_TV_STORE fb_vd_store_f64
#define FB_TV_STREAM fb_vd_stream
#define FB_TV_ADD fb_vd_add
#define FB_TV_SUB fb_vd_sub
#define FB_TV_MUL fb_vd_mul
#define FB_VD_LOAD_T fb_vd_load_f64
#define FB_VD_STORE_T fb_vd_store_f64
#define FB_TV_FROM_VD(a, b) (a)   /* one vector of doubles: b is a */
#include "norm_body.h"

/* This instruction set's core kernels under their exported names (kernels.def's fb_norm rows),
 * gathered into the tables by dispatch.c. */
#define FB_KERNEL(prefix, name, params, args) FB_CAT(FB_FAMILY_, prefix)(prefix, name, params, args, FB_DT)
#define FB_FAMILY_fb_bn FB_KERNEL_SKIP
#define FB_FAMILY_fb_norm FB_KERNEL_EXPORT
#define T float
#define FB_DT f32
#include "kernels.def"
#undef T
#undef FB_DT
#define T double
#define FB_DT f64
#include "kernels.def"
#undef T
#undef FB_DT
