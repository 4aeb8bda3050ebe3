/*
 * moments.h -- float64 statistics helpers shared by the normalization kernels.
 *
 * Shifted sums and Chan et al.'s pairwise merge (the statistics), and the backward coefficients
 * of one group.  The normalization core (norm_body.h) and batch norm (batchnorm_kernels.c, whose
 * backward coefficients add a factored form: fb_bn_grad_coefs) use these.
 */
#ifndef FASTBN_MOMENTS_H
#define FASTBN_MOMENTS_H

#include <float.h>
#include <math.h>

#include "fastbn.h"
#include "parallel.h"
#include "simd.h"

/* A per-channel result as stored: a NaN is the positive quiet NaN, whatever NaNs (in an order each
 * build's compiler picks for commutative operations) made it. */
static inline double fb_nan1(double v) { return isnan(v) ? NAN : v; }

/* FB_LANES accumulators set to +0 by vector stores: an initializer compiles to a string store
 * whose start-up costs as much as a short row's sums. */
static inline void fb_lanes_zero(double *p)
{
    for (int l = 0; l < FB_LANES; l += FB_VD_W) fb_vd_store_f64(p + l, fb_vd_set1(0.0));
}

/* Mean and M2 of n values from their shifted sums S1 = sum(x - k), S2 = sum((x - k)^2). */
static inline void fb_shifted_result(double k, double n, double s1, double s2, double *mean, double *m2)
{
    *mean = k + s1 / n;
    double q = s2 - s1 * (s1 / n);
    *m2 = q < 0.0 ? 0.0 : q;   /* rounding only; NaN stays NaN */
}

/* One step of Chan, Golub & LeVeque's update with weights wm = nb / (n + nb) and
 * wq = n * nb / (n + nb), which depend on the counts alone. */
static inline void fb_chan_step(double *mean, double *m2, double mb, double m2b, double wm, double wq)
{
    const double delta = mb - *mean;
    *mean += delta * wm;
    *m2 += m2b + delta * delta * wq;
}

/* Chan, Golub & LeVeque's update: fold (nb, mb, m2b) into (n, mean, m2). */
static inline void fb_chan_merge(double *n, double *mean, double *m2, double nb, double mb, double m2b)
{
    if (nb == 0.0) return;
    if (*n == 0.0) {
        *n = nb, *mean = mb, *m2 = m2b;
        return;
    }
    const double nt = *n + nb;
    fb_chan_step(mean, m2, mb, m2b, nb / nt, *n * nb / nt);
    *n = nt;
}

/* The mean and variance (centered), or 0 and the mean square, of a group of one segment of
 * count > 0 values from its shifted totals: the operations of group_moments' (fb_shifted_result,
 * then fb_chan_merge into nothing), without its branches, so that loops of it vectorize. */
static inline void fb_seg_moments(int centered, double k, double count, double t1, double t2,
                                  double *mean, double *var)
{
    double smu, sm2;
    fb_shifted_result(k, count, t1, t2, &smu, &sm2);
    *mean = centered ? smu : 0.0;
    *var = (centered ? sm2 : 0.0 + t2) / count;
}

/* -(a b c d / n) for finite, non-zero factors and n >= 1, with the exponents added apart from
 * the mantissas': no intermediate underflow or overflow (for invstd far beyond 1e-103 or 1e102,
 * or d / n below the normal range). */
static inline double fb_neg_prod4(double a, double b, double c, double d, double n)
{
    int ea, eb, ec, ed, en;
    const double m =
        (((frexp(a, &ea) * frexp(b, &eb)) * frexp(c, &ec)) * frexp(d, &ed)) / frexp(n, &en);
    return -ldexp(m, ea + eb + ec + ed - en);
}

/* Whether the scale gamma r overflows float64 from finite factors: the norms' float64 formulas
 * then apply the two factors apart (0 for a zero operand, not 0 * inf = NaN). */
static inline int fb_split_overflows(double gamma, double r)
{
    return isinf(gamma * r) && isfinite(gamma) && isfinite(r);
}

/* a (gamma r), as gamma (r a) where fb_split_overflows */
static inline double fb_times_split(double a, double gamma, double r)
{
    return fb_split_overflows(gamma, r) ? gamma * (r * a) : a * (gamma * r);
}

/* a * (sum / count); where that mean is below the normal range for a non-zero sum (its digits
 * lost to underflow), (a * sum) / count if finite.  The same bits everywhere else. */
static inline double fb_times_mean(double a, double sum, double count)
{
    const double m = sum / count;
    if (fabs(m) < DBL_MIN && sum != 0.0) {
        const double t = a * sum;
        if (isfinite(t)) return t / count;
    }
    return a * m;
}

/* s = -g invstd^2 sdyx / count as moments.h orders it, and where that product or sdyx / count
 * leaves the normal range with finite non-zero factors (an intermediate under- or overflowed),
 * fb_neg_prod4's; a zero sdyx gives a zero s however large g invstd^2 (batch norm's rule). */
static inline double fb_grad_scale(double g, double invstd, double sdyx, double count)
{
    const double q = sdyx / count, s = -(g * invstd) * (invstd * q);
    const int factors_ok = g != 0.0 && invstd != 0.0 && sdyx != 0.0 && isfinite(g) &&
                           isfinite(invstd) && isfinite(sdyx);
    if (factors_ok && !(fabs(s) >= DBL_MIN && fabs(s) <= DBL_MAX && fabs(q) >= DBL_MIN))
        return fb_neg_prod4(g, invstd, invstd, sdyx, count);
    if (isnan(s) && sdyx == 0.0 && isfinite(g) && isfinite(invstd))   /* inf * 0: s is 0 */
        return copysign(0.0, -g) * (sdyx / count);
    return s;
}

/* Backward coefficients of one group from sdy = sum(gamma dy), sdyx = sum(gamma dy (x - mean)):
 * dbeta, dgamma (for a group of one channel), and dx = dy * g + ((x - mean) * s + c) as
 * coef = {s, g, c}. */
static inline void fb_grad_coefs(double sdy, double sdyx, double count, double invstd, double gamma,
                                 double *dbeta, double *dgamma, double coef[3])
{
    const double g = gamma * invstd;
    *dbeta = sdy;
    *dgamma = sdyx * invstd;
    coef[0] = fb_grad_scale(g, invstd, sdyx, count);   /* not g*invstd*invstd: subnormal for
                                                          invstd < ~1e-103 */
    coef[1] = g;
    coef[2] = -fb_times_mean(g, sdy, count);
}

/* Threads for a call on n_elems elements: one below the pool's threshold (parallel.h). */
static inline int fb_threads_for(int64_t n_elems, int n_threads)
{
    return (n_elems < FB_PAR_MIN_ELEMS || n_threads < 1) ? 1 : n_threads;
}

#endif /* FASTBN_MOMENTS_H */
