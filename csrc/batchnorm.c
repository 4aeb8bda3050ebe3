/* batchnorm.c -- the running-statistics update (C values per call; not a hot loop, so compiled
 * once).  The kernels' entry points are dispatch.c's. */
#include <math.h>

#include "batchnorm.h"

#define FB_BN_DEFINE(T, DT)                                                                        \
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
