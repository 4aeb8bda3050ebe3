/*
 * batchnorm_kernels.c -- the hot loops, compiled once per instruction set.
 *
 * setup.py compiles this file with -DFB_ISA_SUFFIX=_scalar, _avx2, _avx512 and that set's -m
 * flags; each object exports one fb_bn_table.  The loops are plain C that the compiler vectorizes:
 * reductions run over FB_LANES explicit lanes (or over channels, in the rows path), so the
 * order of every floating-point operation -- and so every result bit -- is the same on each path.
 */
#include <math.h>
#include <stdlib.h>

#include "batchnorm.h"
#include "parallel.h"

#ifndef FB_ISA_SUFFIX
#define FB_ISA_SUFFIX _scalar
#endif

/* Blocking constants.  They depend on nothing but these numbers and the shape, so the work
 * split -- and the merge order -- is the same for every thread count. */
#define FB_SEG 4096             /* slab path: elements per two-pass segment (L1-resident)   */
#define FB_SLAB_MIN 32          /* inner extents below this take the rows path               */
#define FB_TILE_COLS 1024       /* rows path: virtual channels per column tile               */
#define FB_BLOCK_ELEMS 4096     /* rows path: elements per two-pass row block (L1-resident)  */
#define FB_CHUNK_ELEMS 65536    /* elements per task                                          */
#define FB_PAR_MIN 65536        /* below this many elements, one thread                      */

static inline int fb_threads_for(int64_t n_elems, int n_threads)
{
    return (n_elems < FB_PAR_MIN || n_threads < 1) ? 1 : n_threads;
}

/* Chan, Golub & LeVeque's update: fold (nb, mb, m2b) into (n, mean, m2). */
static inline void fb_chan_merge(double *n, double *mean, double *m2, double nb, double mb, double m2b)
{
    if (nb == 0.0) return;
    if (*n == 0.0) {
        *n = nb, *mean = mb, *m2 = m2b;
        return;
    }
    const double nt = *n + nb, delta = mb - *mean;
    *mean += delta * (nb / nt);
    *m2 += m2b + delta * delta * (*n * nb / nt);
    *n = nt;
}

/* The rows path's tiling of an (R, V) matrix into (row chunk, column tile) tasks. */
typedef struct {
    int64_t R, V, CT, B, CH, n_rchunks, n_ctiles;
} fb_rows_plan;

static fb_rows_plan fb_rows_plan_make(int64_t R, int64_t V)
{
    fb_rows_plan p;
    p.R = R, p.V = V;
    p.CT = V < FB_TILE_COLS ? V : FB_TILE_COLS;
    if (p.CT < 1) p.CT = 1;
    p.B = FB_BLOCK_ELEMS / p.CT;
    if (p.B < 1) p.B = 1;
    p.CH = (FB_CHUNK_ELEMS / p.CT) / p.B * p.B;
    if (p.CH < p.B) p.CH = p.B;
    p.n_rchunks = (R + p.CH - 1) / p.CH;
    p.n_ctiles = (V + p.CT - 1) / p.CT;
    return p;
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

#define FB_T float
#define FB_DT f32
#include "batchnorm_body.h"
#undef FB_T
#undef FB_DT

#define FB_T double
#define FB_DT f64
#include "batchnorm_body.h"
#undef FB_T
#undef FB_DT

const fb_bn_table FB_CAT(fb_bn_table, FB_ISA_SUFFIX) = {
    train_f32, train_f64, infer_f32, infer_f64, backward_f32, backward_f64,
};
