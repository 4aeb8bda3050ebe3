/*
 * norm.h -- the normalization core: statistics per group of an (outer, mid, G, Cg, inner) view
 * and an affine step per channel.
 *
 * Layout: x is C-contiguous with shape (outer, mid, C, inner), C = G * Cg channels in G groups of
 * Cg consecutive channels.  Group (o, g) holds the mid * Cg * inner values x[o, :, g*Cg:(g+1)*Cg, :]
 * (mid runs of Cg * inner contiguous values).  Every normalization is one such view:
 *   layer / RMS norm on (R, D):  (R, 1, 1, D, 1)          groups are rows, channels the D columns
 *   group norm NCHW:             (N, 1, G, C/G, H*W)
 *   group norm NHWC:             (N, H*W, G, C/G, 1)
 *   instance norm:               group norm with Cg = 1
 *   batch norm (N, C, L):        (1, N, C, 1, L)         groups are channels
 *
 * Forward: per group mean and invstd = 1/sqrt(var + eps) (centered), or mean = 0 and
 * invstd = 1/sqrt(mean(x^2) + eps) (RMS, not centered), in float64; then
 * y = (x - mean) * invstd * gamma[ch] + beta[ch] (gamma, beta per channel, may be NULL).
 * centered | FB_NORM_VAR: the same, but the invstd array receives var (running statistics need
 * the variance itself, which 1/invstd^2 - eps does not give exactly where var << eps).
 * Backward: dx through the group statistics, and dgamma[ch] = sum(dy * xhat),
 * dbeta[ch] = sum(dy) over every group (float64; dbeta may be NULL).
 *
 * Numerics are batch norm's (csrc/batchnorm_body.h): shifted float64 sums per segment of about
 * 4096 values (or, channels-last, per column over 1024-row segments) merged by Chan's update in a
 * fixed order; the elementwise pass in T with the mean split as mh + mlo.  Layer and RMS norm
 * (gamma, beta per element of a run) use the group's coefficients and gamma, beta as given, so
 * that no per-element coefficient is formed: y = fma(fma(x - mh, (T)invstd, c'), gamma, beta),
 * dx = fma(dy * gamma, (T)invstd, fma(x - mh, s, c')) (fma correctly rounded on every
 * instruction set).  With u the unit roundoff of FB_C (T; float64 for half storage) and s, c, g the element's coefficients
 * (forward: s = invstd * gamma, c = beta), every output obeys
 *     forward:  |y - y*|   <= 4u |(x - mean) s| + 2u |c| + 4u^2 |mean s|
 *     backward: |dx - dx*| <= 8u (|dy g| + |(x - mean) s| + |c|) + 4u^2 |mean s|
 * (tests/norm_helpers.py checks exactly this; dx* at the mean and invstd passed in).  float64 sums of squares overflow for
 * |x| > ~1e154 in float64 data (as batch norm's).  float16 / bfloat16 tensors (_f16, _bf16;
 * parameters float): the float64 kernel's arithmetic (FB_C = double, u = 2^-53), each output
 * rounded to float and then to the half type, so |y - y*| <= ulp_h(|y*| + b)/2 +
 * ulp_32(|y*| + b)/2 + b with b the bound above: one ulp_h (tests/test_half_norms.py).
 * Fused (issue 17, batch norm's definition, norm_common.h's fwd_epi1 / relu_grad1): with
 * residual (or NULL) and relu, y = relu(t + residual) with t the plain output as stored (half:
 * rounded to the half type), added and relu'd in T, rounded once; residual shares no memory with
 * y.  Backward with y (the fused output, or NULL) and dresidual (or NULL): dy is replaced by
 * threshold_backward(dy, y, 0) (+0 where y <= 0, dy elsewhere, NaN y included) before its first
 * read, per group while it is in cache, so every result is bitwise the plain backward of the
 * masked dy; dresidual (no memory shared with anything) receives that masked dy (without a
 * dresidual, x-sized scratch holds it).
 * In place: y may be x, dx may be dy (exactly).  Results are bitwise identical for any n_threads
 * and instruction-set path: tasks are fixed by the shape, partial sums merged in task order.
 */
#ifndef FASTBN_NORM_H
#define FASTBN_NORM_H

/* The kernels fb_norm_forward_{f32,f64,f16,bf16} and fb_norm_backward_* (and fb_norm_view) are
 * declared from the one kernel list, kernels.def; the instruction set is chosen for the whole
 * family by fb_kernels_set_isa. */
#include "kernels.h"

#define FB_NORM_VAR 2   /* a forward's `centered` bit: store var in invstd's place */

#endif /* FASTBN_NORM_H */
