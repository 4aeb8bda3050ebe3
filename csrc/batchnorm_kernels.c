/*
 * batchnorm_kernels.c -- the hot loops, compiled once per instruction set.
 *
 * setup.py compiles this file with -DFB_ISA_SUFFIX=_scalar, _avx2, _avx512 and that set's -m
 * flags; each object exports its kernels as fb_bn_<name>_<dtype><suffix> (dispatch.c's
 * tables).  The loops are plain C that the compiler vectorizes: reductions run over FB_LANES
 * explicit lanes (or over channels, in the rows path), so the order of every floating-point
 * operation -- and so every result bit -- is the same on each path.  The helpers shared with the
 * normalization core are norm_common.h's.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "batchnorm.h"
#include "moments.h"
#include "parallel.h"
#include "simd.h"

#ifndef FB_ISA_SUFFIX
#define FB_ISA_SUFFIX _scalar
#endif

/* Blocking constants.  They depend on nothing but these numbers and the shape, so the work
 * split -- and the merge order -- is the same for every thread count. */
#define FB_SEG 4096             /* slab path: values per shifted-sum segment                 */
#define FB_SEG_STEP 1024        /* slab path: values of one segment read before the other's  */
#define FB_SLAB_MIN 65          /* inner extents below this take the rows path: slabs of 7 x 7 */
                                /* values cost the slab path more a run than they hold         */
#define FB_TILE_COLS 1024       /* rows path: virtual channels per column tile               */
#define FB_PAIR_COLS_MAX 256    /* rows path: widest tile whose statistics read 2 chunks at once */
/* rows path: widest tile whose backward sums read 2 chunks at once (none with 8-double
 * vectors: there pairs were 1.2-1.3x slower from memory at 64 columns) */
#define FB_GRAD_PAIR_COLS_MAX (FB_VD_W >= 8 ? 0 : 64)
/* rows path: rows of at least this many bytes have rows ahead prefetched into L2 (no gain at
 * 128 bytes and below), four rows at least FB_PF_ROWS_AHEAD bytes ahead (4096: NHWC's 256-byte
 * rows were prefetched 1 KB ahead, 1.2-1.4x slower statistics from memory) */
#define FB_PF_ROW_BYTES 256
#define FB_PF_ROWS_AHEAD 4096
#define FB_PF_GRAD_FAR 3         /* rows path: the backward sums prefetch up to 3x as far      */
#define FB_CHUNK_ELEMS 262144   /* elements per task                                          */
#define FB_CHUNK_ROWS_MAX 1024  /* rows path: rows per segment at most                        */
#define FB_RUN 1024             /* rows path: narrow rows are applied in runs of this many    */
#define FB_FINISH_CHANNELS 32   /* rows path: channels per task of the final merge            */

#if FB_SEG % FB_LANES != 0
#error "FB_SEG must hold whole lane rounds"
#endif

/* Batch norm's backward coefficients of one channel (moments.h's fb_grad_coefs and four more)
 * from sdy = sum(dy), sdyx = sum(dy * (x - mean)):
 * dbeta, dgamma, and dx = dy * g + ((x - mean) * s + c) as coef = {s, g, c}; also q, mdy and
 * invstd of the same dx in factored form, g * ((dy - mdy) - ((x - mean) * invstd) * q), whose
 * factors stay finite where s or c overflow float64 (float64 dy near DBL_MAX, invstd > 1), and
 * gamma, g's factor with invstd where g itself overflows. */
static inline void fb_bn_grad_coefs(double sdy, double sdyx, double count, double invstd,
                                    double gamma, double *dbeta, double *dgamma, double coef[7])
{
    const double g = gamma * invstd;
    *dbeta = fb_nan1(sdy);
    *dgamma = fb_nan1(sdyx * invstd);
    const double w = -g * invstd * invstd;
    coef[0] = fb_times_mean(w, sdyx, count);
    /* w below the normal range (invstd < ~1e-103: float64 data of scale 1e103 and up) lost the
     * xhat term's digits, or all of it; w beyond it (invstd > ~1e102) made s inf, or NaN for a
     * zero sum: the other order (moments.h's) keeps them, and a zero sum gives s = 0 */
    if ((fabs(w) < DBL_MIN || isinf(w)) && g != 0.0)
        coef[0] = sdyx == 0.0 ? copysign(0.0, -g) * (sdyx / count)
                              : fb_grad_scale(g, invstd, sdyx, count);
    coef[1] = g;
    coef[2] = -fb_times_mean(g, sdy, count);
    coef[3] = fb_times_mean(invstd, sdyx, count);
    coef[4] = sdy / count;
    coef[5] = invstd;
    coef[6] = gamma;
}

/* The rows path's tiling of an (R, V) matrix into (row chunk, column tile) tasks. */
typedef struct {
    int64_t R, C, inner, V, CT, CH, n_rchunks, n_ctiles;
} fb_rows_plan;

/* An (R, C x inner) matrix in tiles of CT columns (at most V) and as many rows as make about
 * FB_CHUNK_ELEMS values, FB_CHUNK_ROWS_MAX at most. */
static fb_rows_plan fb_rows_plan_tiles(int64_t R, int64_t C, int64_t inner, int64_t CT)
{
    fb_rows_plan p;
    p.R = R, p.C = C, p.inner = inner, p.V = C * inner;
    p.CT = CT < p.V ? CT : p.V;
    if (p.CT < 1) p.CT = 1;
    p.CH = FB_CHUNK_ELEMS / p.CT;
    if (p.CH > FB_CHUNK_ROWS_MAX) p.CH = FB_CHUNK_ROWS_MAX;
    if (p.CH < 1) p.CH = 1;
    p.n_rchunks = (R + p.CH - 1) / p.CH;
    p.n_ctiles = (p.V + p.CT - 1) / p.CT;
    return p;
}

/* The reductions' tiling: FB_TILE_COLS columns, whose float64 sums stay in L1. */
static fb_rows_plan fb_rows_plan_make(int64_t R, int64_t C, int64_t inner)
{
    return fb_rows_plan_tiles(R, C, inner, FB_TILE_COLS);
}

/* The elementwise pass's tiling of the same matrix: whole rows (its results do not depend on the
 * tiling, and pieces of rows read from memory were slower). */
static fb_rows_plan fb_rows_plan_rows(const fb_rows_plan *tiled)
{
    return fb_rows_plan_tiles(tiled->R, tiled->C, tiled->inner, tiled->V);
}

static inline int64_t fb_rows_chunk_len(const fb_rows_plan *p, int64_t ch)
{
    const int64_t r0 = ch * p->CH;
    return p->R - r0 < p->CH ? p->R - r0 : p->CH;
}

static inline void fb_rows_task_range(const fb_rows_plan *p, int64_t task, int64_t *r0, int64_t *r1,
                                      int64_t *v0, int64_t *w)
{
    const int64_t ch = task / p->n_ctiles, t = task % p->n_ctiles;
    *r0 = ch * p->CH;
    *r1 = *r0 + fb_rows_chunk_len(p, ch);
    *v0 = t * p->CT;
    *w = p->V - *v0 < p->CT ? p->V - *v0 : p->CT;
}

/* Where the elementwise pass alone takes its coefficients from (batchnorm_body.h's coef_src). */
enum { FB_COEF_RUNNING, FB_COEF_STATS, FB_COEF_SUMS };

/* Each dtype: its element type, and the vector of that type for the elementwise passes. */
#include "dtype_f32.h"
#include "norm_common.h"
#include "batchnorm_body.h"
#include "dtype_end.h"

#include "dtype_f64.h"
#include "norm_common.h"
#include "batchnorm_body.h"
#include "dtype_end.h"

#include "dtype_f16.h"
#include "norm_common.h"
#include "batchnorm_body.h"
#include "dtype_end.h"

#include "dtype_bf16.h"
#include "norm_common.h"
#include "batchnorm_body.h"
#include "dtype_end.h"

/* This instruction set's batch-norm kernels under their exported names (kernels.def's fb_bn
 * rows), gathered into the tables by dispatch.c. */
#define FB_KERNEL(prefix, name, params, args) \
    FB_CAT(FB_FAMILY_, prefix)(prefix, name, params, args, FB_KDT)
#define FB_FAMILY_fb_bn FB_KERNEL_EXPORT
#define FB_FAMILY_fb_norm FB_KERNEL_SKIP
#include "kernels_dtypes.h"
