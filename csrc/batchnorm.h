/*
 * batchnorm.h -- batch-normalization kernels (Ioffe & Szegedy 2015, Algorithm 1) and their backward.
 *
 * Layout: x is C-contiguous and viewed as (outer, C, inner): C channels, `inner` contiguous
 * elements per (outer, channel) slab.  NCHW is (N, C, H*W); channels-last and (N, C) are
 * (rows, C, 1).  Every channel holds count = outer * inner values.
 *
 * Statistics are exact to float64 rounding: each cache-resident segment is reduced by the
 * two-pass algorithm (mean, then the sum of squared deviations from it) in float64, and segments
 * are combined with Chan et al.'s pairwise update in a fixed order.  No E[x^2] - E[x]^2.
 * Per-channel quantities (mean, var, invstd, dgamma, dbeta) are returned in float64.
 *
 * In place: y may be x (train, infer) and dx may be dy (backward) -- exactly the same array; the
 * output is written elementwise after every reduction has read the input.  Any other overlap of
 * an output with an input is undefined.
 *
 * Results are bitwise identical for any n_threads and any instruction-set path: work is split
 * into blocks fixed by the shape alone, partial results are merged in block order, and every
 * reduction uses FB_LANES virtual lanes with no FMA contraction.
 */
#ifndef FASTBN_BATCHNORM_H
#define FASTBN_BATCHNORM_H

#include "fastbn.h"

#define FB_BN_DECLARE(T, DT)                                                                       \
    /* Training forward: per-channel mean, biased var and invstd = 1/sqrt(var + eps) (float64),  \
     * and y = (x - mean) * invstd * gamma + beta.  gamma/beta may be NULL (no affine part).    */ \
    fb_status fb_bn_train_##DT(const T *x, T *y, int64_t outer, int64_t C, int64_t inner,        \
                               const T *gamma, const T *beta, double eps, double *mean,          \
                               double *var, double *invstd, int n_threads);                      \
    /* Inference: y = (x - rmean) / sqrt(rvar + eps) * gamma + beta. */                          \
    fb_status fb_bn_infer_##DT(const T *x, T *y, int64_t outer, int64_t C, int64_t inner,        \
                               const T *rmean, const T *rvar, const T *gamma, const T *beta,     \
                               double eps, int n_threads);                                       \
    /* Backward through the batch statistics: dbeta = sum(dy), dgamma = sum(dy * xhat),          \
     * dx = gamma * invstd * (dy - dbeta/count - xhat * dgamma/count), xhat = (x-mean)*invstd.  */ \
    fb_status fb_bn_backward_##DT(const T *dy, const T *x, T *dx, int64_t outer, int64_t C,      \
                                  int64_t inner, const double *mean, const double *invstd,       \
                                  const T *gamma, double *dgamma, double *dbeta, int n_threads); \
    /* The parts of train and backward, for statistics reduced elsewhere (e.g. across          \
     * processes).  moments: per-channel mean and m2 = sum (x - mean)^2 -- train's mean, and     \
     * m2 / count its var; no values (outer or inner 0): mean 0, m2 0.                          \
     * apply: train's elementwise pass from given mean and invstd (y may be x).                  \
     * grad_sums: sum_dy = sum(dy) (backward's dbeta) and sum_dy_xmu = sum(dy * (x - mean)),     \
     * whose product with invstd is backward's dgamma; no values: 0.                             \
     * grad_apply: backward's elementwise pass from given sums over `count` values (count >=    \
     * outer * inner, else FB_EINVAL); dx may be dy.  With the local sums and count, backward's  \
     * dx bit for bit.                                                                           */ \
    fb_status fb_bn_moments_##DT(const T *x, int64_t outer, int64_t C, int64_t inner,           \
                                 double *mean, double *m2, int n_threads);                       \
    fb_status fb_bn_apply_##DT(const T *x, T *y, int64_t outer, int64_t C, int64_t inner,        \
                               const double *mean, const double *invstd, const T *gamma,         \
                               const T *beta, int n_threads);                                    \
    fb_status fb_bn_grad_sums_##DT(const T *dy, const T *x, int64_t outer, int64_t C,            \
                                   int64_t inner, const double *mean, const double *invstd,      \
                                   double *sum_dy, double *sum_dy_xmu, int n_threads);           \
    fb_status fb_bn_grad_apply_##DT(const T *dy, const T *x, T *dx, int64_t outer, int64_t C,    \
                                    int64_t inner, const double *mean, const double *invstd,     \
                                    const T *gamma, const double *sum_dy,                        \
                                    const double *sum_dy_xmu, int64_t count, int n_threads);     \
    /* r = (1 - momentum) * r + momentum * batch, with the unbiased variance for rvar; channels  \
     * whose batch statistics are not finite are left as they are.  Byte strides; either buffer \
     * may be NULL.  Returns the number of channels left as they were.                          */ \
    int64_t fb_bn_update_running_##DT(T *rmean, int64_t rmean_stride, T *rvar,                   \
                                      int64_t rvar_stride, const double *mean, const double *var, \
                                      int64_t C, int64_t count, double momentum);

FB_BN_DECLARE(float, f32)
FB_BN_DECLARE(double, f64)

/* Choose the instruction-set path (FB_ISA_*); returns 0, or -1 if it cannot run here. */
int fb_bn_set_isa(int isa);
int fb_bn_get_isa(void);

/* One instruction set's kernels (the running-statistics update is not a hot loop). */
typedef struct {
    fb_status (*train_f32)(const float *, float *, int64_t, int64_t, int64_t, const float *,
                           const float *, double, double *, double *, double *, int);
    fb_status (*train_f64)(const double *, double *, int64_t, int64_t, int64_t, const double *,
                           const double *, double, double *, double *, double *, int);
    fb_status (*infer_f32)(const float *, float *, int64_t, int64_t, int64_t, const float *,
                           const float *, const float *, const float *, double, int);
    fb_status (*infer_f64)(const double *, double *, int64_t, int64_t, int64_t, const double *,
                           const double *, const double *, const double *, double, int);
    fb_status (*backward_f32)(const float *, const float *, float *, int64_t, int64_t, int64_t,
                              const double *, const double *, const float *, double *, double *, int);
    fb_status (*backward_f64)(const double *, const double *, double *, int64_t, int64_t, int64_t,
                              const double *, const double *, const double *, double *, double *, int);
#define FB_BN_PARTS(T, DT)                                                                         \
    fb_status (*moments_##DT)(const T *, int64_t, int64_t, int64_t, double *, double *, int);     \
    fb_status (*apply_##DT)(const T *, T *, int64_t, int64_t, int64_t, const double *,            \
                            const double *, const T *, const T *, int);                           \
    fb_status (*grad_sums_##DT)(const T *, const T *, int64_t, int64_t, int64_t, const double *,  \
                                const double *, double *, double *, int);                         \
    fb_status (*grad_apply_##DT)(const T *, const T *, T *, int64_t, int64_t, int64_t,            \
                                 const double *, const double *, const T *, const double *,       \
                                 const double *, int64_t, int);
    FB_BN_PARTS(float, f32)
    FB_BN_PARTS(double, f64)
#undef FB_BN_PARTS
} fb_bn_table;

extern const fb_bn_table fb_bn_table_scalar;
#if defined(FB_X86_ISAS)
extern const fb_bn_table fb_bn_table_avx2;
extern const fb_bn_table fb_bn_table_avx512;
#endif

#endif /* FASTBN_BATCHNORM_H */
