/* batchnorm.c -- the public batch-norm entry points: instruction-set dispatch and the
 * running-statistics update (C values per call; not a hot loop, so compiled once). */
#include <math.h>

#include "batchnorm.h"
#include "cpu.h"

FB_ISA_DISPATCH(fb_bn, fb_bn_table)

#define FB_BN_DEFINE(T, DT)                                                                        \
    fb_status fb_bn_train_##DT(const T *x, T *y, int64_t outer, int64_t C, int64_t inner,        \
                               const T *gamma, const T *beta, double eps, double *mean,          \
                               double *var, double *invstd, int n_threads)                       \
    {                                                                                            \
        return fb_bn->train_##DT(x, y, outer, C, inner, gamma, beta, eps, mean, var, invstd,     \
                                 n_threads);                                                     \
    }                                                                                            \
    fb_status fb_bn_infer_##DT(const T *x, T *y, int64_t outer, int64_t C, int64_t inner,        \
                               const T *rmean, const T *rvar, const T *gamma, const T *beta,     \
                               double eps, int n_threads)                                        \
    {                                                                                            \
        return fb_bn->infer_##DT(x, y, outer, C, inner, rmean, rvar, gamma, beta, eps, n_threads); \
    }                                                                                            \
    fb_status fb_bn_backward_##DT(const T *dy, const T *x, T *dx, int64_t outer, int64_t C,      \
                                  int64_t inner, const double *mean, const double *invstd,       \
                                  const T *gamma, double *dgamma, double *dbeta, int n_threads)  \
    {                                                                                            \
        return fb_bn->backward_##DT(dy, x, dx, outer, C, inner, mean, invstd, gamma, dgamma,     \
                                    dbeta, n_threads);                                           \
    }                                                                                            \
    fb_status fb_bn_moments_##DT(const T *x, int64_t outer, int64_t C, int64_t inner,           \
                                 double *mean, double *m2, int n_threads)                        \
    {                                                                                            \
        return fb_bn->moments_##DT(x, outer, C, inner, mean, m2, n_threads);                     \
    }                                                                                            \
    fb_status fb_bn_apply_##DT(const T *x, T *y, int64_t outer, int64_t C, int64_t inner,        \
                               const double *mean, const double *invstd, const T *gamma,         \
                               const T *beta, int n_threads)                                     \
    {                                                                                            \
        return fb_bn->apply_##DT(x, y, outer, C, inner, mean, invstd, gamma, beta, n_threads);   \
    }                                                                                            \
    fb_status fb_bn_grad_sums_##DT(const T *dy, const T *x, int64_t outer, int64_t C,            \
                                   int64_t inner, const double *mean, const double *invstd,      \
                                   double *sum_dy, double *sum_dy_xmu, int n_threads)            \
    {                                                                                            \
        return fb_bn->grad_sums_##DT(dy, x, outer, C, inner, mean, invstd, sum_dy, sum_dy_xmu,   \
                                     n_threads);                                                 \
    }                                                                                            \
    fb_status fb_bn_grad_apply_##DT(const T *dy, const T *x, T *dx, int64_t outer, int64_t C,    \
                                    int64_t inner, const double *mean, const double *invstd,     \
                                    const T *gamma, const double *sum_dy,                        \
                                    const double *sum_dy_xmu, int64_t count, int n_threads)      \
    {                                                                                            \
        return fb_bn->grad_apply_##DT(dy, x, dx, outer, C, inner, mean, invstd, gamma, sum_dy,   \
                                      sum_dy_xmu, count, n_threads);                             \
    }                                                                                            \
    int64_t fb_bn_update_running_##DT(T *rmean, int64_t rmean_stride, T *rvar,                   \
                                      int64_t rvar_stride, const double *mean, const double *var, \
                                      int64_t C, int64_t count, double momentum)                 \
    {                                                                                            \
        const double unbias = count > 1 ? (double)count / (double)(count - 1) : 1.0;             \
        int64_t skipped = 0;                                                                     \
        for (int64_t c = 0; c < C; c++) {                                                        \
            if (!isfinite(mean[c]) || !isfinite(var[c])) {                                       \
                skipped++;                                                                       \
                continue;                                                                        \
            }                                                                                    \
            if (rmean) {                                                                         \
                T *r = (T *)((char *)rmean + c * rmean_stride);                                  \
                *r = (T)((1.0 - momentum) * (double)*r + momentum * mean[c]);                    \
            }                                                                                    \
            if (rvar) {                                                                          \
                T *r = (T *)((char *)rvar + c * rvar_stride);                                    \
                *r = (T)((1.0 - momentum) * (double)*r + momentum * var[c] * unbias);            \
            }                                                                                    \
        }                                                                                        \
        return skipped;                                                                          \
    }

FB_BN_DEFINE(float, f32)
FB_BN_DEFINE(double, f64)
