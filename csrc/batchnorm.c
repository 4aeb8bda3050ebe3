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
