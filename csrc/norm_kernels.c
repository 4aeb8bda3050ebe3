/*
 * norm_kernels.c -- the normalization core's loops, compiled once per instruction set.
 *
 * setup.py compiles this file with -DFB_ISA_SUFFIX=_scalar, _avx2, _avx512 and that set's flags;
 * each object exports its kernels as fb_norm_<name>_<dtype><suffix> (dispatch.c's tables).
 * Reductions run over FB_LANES explicit lanes and nothing is contracted into FMAs, so every path
 * gives the same bits.  The helpers shared with batch norm are norm_common.h's.
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
/* Contiguous groups (mid == 1) of channel runs of FB_BLOCK_MIN_RUN values or more are taken in
 * blocks of at most FB_GROUP_BLOCK values and FB_BLOCK_GROUPS groups: groups of at most
 * FB_BLOCK_SMALL values in both passes, and where the runs have FB_SLAB_MIN values or more, up to
 * FB_BLOCK_GROUP values (forward) and FB_BWD_BLOCK_GROUP (backward).  Elsewhere a group's runs
 * under FB_SHORT_RUN values are applied together (short_runs: one aligned stream for a group's
 * several channels). */
#define FB_BLOCK_MIN_RUN 8
#define FB_SHORT_RUN 256
#define FB_BLOCK_SMALL 128
#define FB_BLOCK_GROUP 1024
#define FB_BWD_BLOCK_GROUP 512
#define FB_GROUP_BLOCK 16384
#define FB_BLOCK_GROUPS 256
#define FB_BLOCK_RUN 64         /* a block's runs of this many values or more: applied run by run */
#define FB_TOTALS_RUN 256       /* runs shorter than this: run_pair_totals                      */
#define FB_EBLK 512             /* per-element coefficients computed this many at a time        */
#define FB_COLS_MIN_MID 16      /* elementwise groups of this many runs take the columns layout */
#define FB_COLS_ROWS 1024       /* columns layout: rows per shifted-sum segment of a column      */
#define FB_COLS_SPAN 1024       /* columns layout: elements per apply call (whole rows, >= one)  */
/* layer / RMS norm backward: samples whose gradient sums share one pass (two with AVX-512 and
 * AVX2, whose 16 registers do not hold both samples' lanes but the pairs measured faster) */
#define FB_GRAD_ROWS (FB_VD_W >= 4 ? 2 : 1)
/* layer / RMS norm backward, rows taken in pairs: the sums prefetch FB_GRAD_AHEAD bytes ahead,
 * rows of FB_PF_L2_ROW bytes or more twice that, or the next pair where it is further but at
 * most FB_GRAD_PAIR_AHEAD bytes on; their apply the next pair's rows; into L2 */
#define FB_GRAD_AHEAD 4096
#define FB_GRAD_PAIR_AHEAD 32768
/* layer / RMS norm forward: a row's apply prefetches the row this many on into L2 (the next
 * one left memory idle while a row computed) */
#define FB_FWD_ROWS_AHEAD 4
/* layer / RMS norm forward: rows of at most this many bytes are taken in pairs (4 KB rows lost) */
#define FB_PAIR_ROW_BYTES 3584
#define FB_PF_L2_ROW 2048
/* layer / RMS norm forward: a row's unaligned ends in masked vectors, not element by element:
 * with AVX-512 (AVX2's masked stores measured mixed) */
#define FB_ROW_ENDS (FB_VBYTES == 64)

#if FB_SEG % FB_LANES != 0
#error "FB_SEG must hold whole lane rounds"
#endif
#if FB_BLOCK_GROUP > FB_SEG || FB_BLOCK_SMALL > FB_SEG
#error "a block's group must be one shifted-sum segment (forward_block, backward_block)"
#endif

/* The task split of a view: tasks are (chunk of OC outer indices, block of GB groups). */
typedef struct {
    fb_norm_view v;
    int64_t C, L, stride, per_outer, OC, n_chunks, n_tasks, n;
    int blocked;       /* contiguous groups of short channel runs: GB of a sample at once */
    int64_t GB, n_blocks;
    int64_t n_fwd_tasks;   /* forward, blocked: a task per (sample, block), in memory order */
    int bwd_blocked;   /* the backward's: its tasks (chunk, block), or else (chunk, group) */
    int elementwise;   /* inner < FB_SLAB_MIN: coefficients per element of a run */
    int columns;       /* elementwise with many short runs (channels-last): a task takes whole
                        * samples as rows of V = C * inner columns, every group at once */
    int64_t P;         /* partial sums per chunk: C * inner (elementwise) or C */
    int64_t R;         /* columns layout: rows per apply call, the coefficients repeated R times */
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
    p.n = v->mid * p.L;                  /* values per group */
    p.blocked = v->mid == 1 && v->inner >= FB_BLOCK_MIN_RUN && p.L > 0 &&
                p.L <= (v->inner < FB_SLAB_MIN ? FB_BLOCK_SMALL : FB_BLOCK_GROUP);
    p.elementwise = v->inner < FB_SLAB_MIN && !p.blocked;
    p.bwd_blocked = p.blocked && p.L <= FB_BWD_BLOCK_GROUP;
    p.GB = p.blocked ? FB_GROUP_BLOCK / p.L : 1;
    if (p.GB > FB_BLOCK_GROUPS) p.GB = FB_BLOCK_GROUPS;
    if (p.GB > v->G) p.GB = v->G > 0 ? v->G : 1;
    p.n_blocks = (v->G + p.GB - 1) / p.GB;
    p.n_fwd_tasks = p.blocked ? v->outer * p.n_blocks : p.n_chunks * p.n_blocks;
    p.n_tasks = p.n_chunks * (p.bwd_blocked ? p.n_blocks : v->G);
    p.columns = p.elementwise && v->mid >= FB_COLS_MIN_MID;
    if (p.columns) p.n_tasks = p.n_chunks;
    p.P = p.elementwise ? p.C * v->inner : p.C;
    p.R = p.columns && p.P < FB_COLS_SPAN ? FB_COLS_SPAN / p.P : 1;
    if (p.R > v->mid) p.R = v->mid > 0 ? v->mid : 1;
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

#include "dtype_f32.h"
#include "norm_common.h"
#include "norm_body.h"
#include "dtype_end.h"

#include "dtype_f64.h"
#include "norm_common.h"
#include "norm_body.h"
#include "dtype_end.h"

#include "dtype_f16.h"
#include "norm_common.h"
#include "norm_body.h"
#include "dtype_end.h"

#include "dtype_bf16.h"
#include "norm_common.h"
#include "norm_body.h"
#include "dtype_end.h"

/* This instruction set's core kernels under their exported names (kernels.def's fb_norm rows),
 * gathered into the tables by dispatch.c. */
#define FB_KERNEL(prefix, name, params, args) \
    FB_CAT(FB_FAMILY_, prefix)(prefix, name, params, args, FB_KDT)
#define FB_FAMILY_fb_bn FB_KERNEL_SKIP
#define FB_FAMILY_fb_norm FB_KERNEL_EXPORT
#include "kernels_dtypes.h"
