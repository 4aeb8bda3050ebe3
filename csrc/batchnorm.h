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

/* The kernels (declared from the one kernel list, kernels.def; the instruction set is chosen
 * for the whole family by fb_kernels_set_isa).  _f32: tensors (x, y, dy, dx) and parameters
 * (gamma, beta, rmean, rvar) float; _f64: both double; _f16 / _bf16: tensors float16 / bfloat16
 * (uint16_t bits), parameters float, the elementwise arithmetic in float64 and each output
 * rounded to float and then to the half type (to nearest even; beyond its range +-inf, as a
 * cast), so with b the float64 bound of batchnorm_body.h, |y - y*| <= ulp_h(|y*| + b)/2 +
 * ulp_32(|y*| + b)/2 + b: one ulp_h of the exact value.  Statistics are float64 for every dtype.
 *
 * fb_bn_train_*(x, y, outer, C, inner, gamma, beta, eps, mean, var, invstd, residual, relu,
 *               n_threads)
 *     Training forward: per-channel mean, biased var and invstd = 1/sqrt(var + eps) (float64),
 *     and y = (x - mean) * invstd * gamma + beta.  gamma/beta may be NULL (no affine part).
 *     Fused (the forward kernels: train, infer, apply): with `residual` (NULL: none) and/or
 *     `relu`, y = relu(t + residual) where t is the unfused y in T, t + residual is rounded once
 *     in T, and relu is torch.relu's (+0 where negative; NaN and -0.0 kept).  _f16 / _bf16: t is
 *     the unfused y as stored (rounded to the half type), t and residual are widened to float,
 *     added and relu'd in float, and the result rounded once to the half type -- the half
 *     composition as NumPy and PyTorch compute it (correctly rounded: float has more than twice
 *     the half types' digits).  residual has x's dtype and shape and must not overlap y.
 * fb_bn_infer_*(x, y, outer, C, inner, rmean, rvar, gamma, beta, eps, residual, relu, n_threads)
 *     Inference: y = (x - rmean) / sqrt(rvar + eps) * gamma + beta.
 * fb_bn_backward_*(dy, x, dx, outer, C, inner, mean, invstd, gamma, dgamma, dbeta, y, dresidual,
 *                  n_threads)
 *     Backward through the batch statistics: dbeta = sum(dy), dgamma = sum(dy * xhat),
 *     dx = gamma * invstd * (dy - dbeta/count - xhat * dgamma/count), xhat = (x-mean)*invstd.
 *     Fused (the backward kernels: backward, grad_sums, grad_apply): with y (the fused forward's
 *     output, x's dtype; NULL: none) every read of dy is g = 0 where y <= 0, dy elsewhere (NaN y
 *     included: PyTorch's threshold_backward(dy, y, 0)), and the result is the above for g (the
 *     half types: y and dy widened, so g is dy exactly or 0); dresidual
 *     (NULL: none; backward, grad_apply) receives g.  Neither may overlap another array.
 *
 * The parts of train and backward, for statistics reduced elsewhere (e.g. across processes):
 * fb_bn_moments_*(x, outer, C, inner, mean, m2, n_threads)
 *     Per-channel mean and m2 = sum (x - mean)^2: train's mean, and m2 / count its var.  No
 *     values (outer or inner 0): mean 0, m2 0.
 * fb_bn_apply_*(x, y, outer, C, inner, mean, invstd, gamma, beta, residual, relu, n_threads)
 *     train's elementwise pass from given float64 mean and invstd (y may be x).
 * fb_bn_grad_sums_*(dy, x, outer, C, inner, mean, invstd, sum_dy, sum_dy_xmu, y, n_threads)
 *     sum_dy = sum(dy) (backward's dbeta) and sum_dy_xmu = sum(dy * (x - mean)), whose product
 *     with invstd is backward's dgamma.  No values: 0.
 * fb_bn_grad_apply_*(dy, x, dx, outer, C, inner, mean, invstd, gamma, sum_dy, sum_dy_xmu,
 *                    count, y, dresidual, n_threads)
 *     backward's elementwise pass from given sums over `count` values (count >= outer * inner,
 *     else FB_EINVAL); dx may be dy.  With the local sums and count, backward's dx bit for bit.
 */
#include "kernels.h"

/* r = (1 - momentum) * r + momentum * batch, with the unbiased variance for rvar; channels whose
 * batch statistics are not finite are left as they are.  Byte strides; either buffer may be
 * NULL.  Returns the number of channels left as they were.  (Not a hot loop: compiled once.) */
#define FB_BN_DECLARE_RUNNING(T, DT)                                                               \
    int64_t fb_bn_update_running_##DT(T *rmean, int64_t rmean_stride, T *rvar,                   \
                                      int64_t rvar_stride, const double *mean, const double *var, \
                                      int64_t C, int64_t count, double momentum);

FB_BN_DECLARE_RUNNING(float, f32)
FB_BN_DECLARE_RUNNING(double, f64)
#undef FB_BN_DECLARE_RUNNING

#endif /* FASTBN_BATCHNORM_H */
