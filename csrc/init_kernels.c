/*
 * init_kernels.c -- the initializer hot loops, compiled once per instruction set.
 *
 * setup.py compiles this file with -DFB_ISA_SUFFIX=_scalar, _avx2, _avx512 and that set's -m
 * flags; each object exports one fb_init_table.  The per-dtype pieces (how random words become
 * uniforms, how a float splits into exponent and mantissa, how many series terms reach the
 * dtype's precision) are defined here; init_body.h holds everything else, once for both dtypes.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "init.h"
#include "parallel.h"
#include "philox.h"

#ifndef FB_ISA_SUFFIX
#define FB_ISA_SUFFIX _scalar
#endif

/* Blocking: fixed numbers, so the split into tasks never depends on the thread count (and does
 * not matter anyway: a value depends only on its index). */
#define FB_INIT_TASK 4096        /* values per task (a multiple of every chunk size) */
#define FB_INIT_PAR_MIN (FB_PAR_MIN_ELEMS / 2) /* one thread below (a value costs about 2 elements) */

/* ---- series and rational coefficients, float64, rounded to T at compile time -------------- */

/* The in-house log, sin and cos evaluate these polynomials (init_body.h):
 *   log: log1p(f) = f + f^2 (-1/2 + f P(f)),  f in [sqrt(1/2) - 1, sqrt(2) - 1]
 *   sin: sin(x) = x + x z P(z),               z = x^2 in [0, (pi/4)^2]
 *   cos: cos(x) = 1 + z (-1/2 + z Q(z)),      z = x^2 in [0, (pi/4)^2]
 * Each interpolates its function at the Chebyshev nodes of the interval, computed in 60-digit
 * arithmetic by tools/fit_polynomials.py, which printed these arrays (coefficients in increasing
 * powers; the error is relative to the function's value). */
/* interpolation error 0.051 x 2^-24 */
static const double fb_log_coef_f32[9] = {
    0.33333331180030048052, -0.249999969579508820448, 0.200007157488921017427,
    -0.166678023195012540738, 0.142490576456974804036, -0.124256873314511061134,
    0.116854199234867393078, -0.114797338466376355559, 0.0697161147145117783167,
};
/* interpolation error 0.055 x 2^-53 */
static const double fb_log_coef_f64[20] = {
    0.333333333333333373918, -0.249999999999999300288, 0.199999999999932239471,
    -0.1666666666669730466, 0.142857142875917380451, -0.124999999971092666347,
    0.111111109098410724722, -0.0999999999631727024476, 0.0909091987599820152724,
    -0.0833334505641320359824, 0.0769198812013374958269, -0.0714223204915847047378,
    0.066719855552712918166, -0.0626503186951806371304, 0.0583701835146499913608,
    -0.0536828038805054841635, 0.0537187789066478009123, -0.0612956198072790589315,
    0.0566642324205217994305, -0.0250612280952824642165,
};
/* interpolation error 0.23 x 2^-24 */
static const double fb_sin_coef_f32[3] = {
    -0.1666666466231437862, 0.00833274827062974948488, -1.95878908804123857859e-4,
};
/* interpolation error 0.12 x 2^-53 */
static const double fb_sin_coef_f64[6] = {
    -0.166666666666666646235, 0.00833333333333094848555, -1.9841269836758574323e-4,
    2.75573161025524401188e-6, -2.50511318450036244168e-8, 1.59181292948666086668e-10,
};
/* interpolation error 0.018 x 2^-24 */
static const double fb_cos_coef_f32[3] = {
    0.0416666646595022067724, -0.00138883030358948660366, 2.45479420850715725125e-5,
};
/* interpolation error 0.0061 x 2^-53 */
static const double fb_cos_coef_f64[6] = {
    0.0416666666666666653887, -0.00138888888888873972367, 2.48015872987656879273e-5,
    -2.7557317271729792882e-7, 2.08761462684031978934e-9, -1.13826324255217180054e-11,
};

/* Wichura (1988), Algorithm AS 241, PPND16: coefficients in increasing powers. */
static const double fb_as241_a[8] = {
    3.3871328727963666080e+0, 1.3314166789178437745e+2, 1.9715909503065514427e+3,
    1.3731693765509461125e+4, 4.5921953931549871457e+4, 6.7265770927008700853e+4,
    3.3430575583588128105e+4, 2.5090809287301226727e+3,
};
static const double fb_as241_b[8] = {
    1.0, 4.2313330701600911252e+1, 6.8718700749205790830e+2, 5.3941960214247511077e+3,
    2.1213794301586595867e+4, 3.9307895800092710610e+4, 2.8729085735721942674e+4,
    5.2264952788528545610e+3,
};
static const double fb_as241_c[8] = {
    1.42343711074968357734e+0, 4.63033784615654529590e+0, 5.76949722146069140550e+0,
    3.64784832476320460504e+0, 1.27045825245236838258e+0, 2.41780725177450611770e-1,
    2.27238449892691845833e-2, 7.74545014278341407640e-4,
};
static const double fb_as241_d[8] = {
    1.0, 2.05319162663775882187e+0, 1.67638483018380384940e+0, 6.89767334985100004550e-1,
    1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
    1.05075007164441684324e-9,
};
static const double fb_as241_e[8] = {
    6.65790464350110377720e+0, 5.46378491116411436990e+0, 1.78482653991729133580e+0,
    2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
    2.71155556874348757815e-5, 2.01033439929228813265e-7,
};
static const double fb_as241_f[8] = {
    1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
    7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
    2.04426310338993978564e-15,
};

/* ---- float32: one 32-bit word per uniform ----------------------------------------------- */

/* u in [0, 1): 24 random bits, k * 2^-24 (int32 -> float conversions are exact here). */
static inline float fb_u01_f32(uint32_t a, uint32_t b)
{
    (void)b;
    return (float)(int32_t)(a >> 8) * 0x1p-24f;
}
/* u1 in [2^-32, 1] for Box-Muller's radius: 31 bits, (k + 1/2) 2^-31 by one fused multiply-add
 * (exact below 2^-8, where the tail of the radius lives). */
static inline float fb_u1_f32(uint32_t a, uint32_t b)
{
    (void)b;
    return fmaf((float)(int32_t)(a >> 1), 0x1p-31f, 0x1p-32f);
}
/* The angle's offset from its quadrant's centre, in (-pi/4, pi/4): (2k + 1) 2^-24 pi/2 - pi/4 for
 * the 23 bits k = bits 7..29 (bits 30..31 are the quadrant), by one fused multiply-add. */
static inline float fb_angle_f32(uint32_t a, uint32_t b)
{
    (void)b;
    const float c1 = (float)(1.57079632679489661923 * 0x1p-23);
    const float c0 = (float)(1.57079632679489661923 * 0x1p-24 - 0.785398163397448309616);
    return fmaf((float)(int32_t)((a >> 7) & 0x7FFFFFu), c1, c0);
}
/* x = 2^k m with m in [sqrt(1/2), sqrt(2)) for positive normal x (musl's logf split). */
static inline float fb_split_f32(float x, int32_t *k)
{
    uint32_t ix;
    memcpy(&ix, &x, sizeof ix);
    ix -= 0x3f3504f3u;
    *k = (int32_t)ix >> 23;
    ix = (ix & 0x007fffffu) + 0x3f3504f3u;
    float m;
    memcpy(&m, &ix, sizeof m);
    return m;
}

/* ---- float64: two 32-bit words per uniform ---------------------------------------------- */

/* u in [0, 1): 53 random bits (22 of a, 31 of b), k * 2^-53, exact. */
static inline double fb_u01_f64(uint32_t a, uint32_t b)
{
    return (double)(int32_t)(a >> 10) * 0x1p-22 + (double)(int32_t)(b >> 1) * 0x1p-53;
}
/* u1 in (0, 1]: (k + 1) 2^-53, exact. */
static inline double fb_u1_f64(uint32_t a, uint32_t b) { return fb_u01_f64(a, b) + 0x1p-53; }
/* The same from 52 bits: k1 = bits 0..29 of a, k2 = bits 10..31 of b, the angle's offset
 * (2 (k1 2^22 + k2) + 1) 2^-53 pi/2 - pi/4 by two fused multiply-adds. */
static inline double fb_angle_f64(uint32_t a, uint32_t b)
{
    const double hp = 1.57079632679489661923, c0 = hp * 0x1p-53 - 0.785398163397448309616;
    return fma((double)(int32_t)(a & 0x3FFFFFFFu), hp * 0x1p-30,
               fma((double)(int32_t)(b >> 10), hp * 0x1p-52, c0));
}
static inline double fb_split_f64(double x, int32_t *k)
{
    uint64_t ix;
    memcpy(&ix, &x, sizeof ix);
    ix -= UINT64_C(0x3fe6a09e00000000);
    *k = (int32_t)((int64_t)ix >> 52);
    ix = (ix & UINT64_C(0x000fffffffffffff)) + UINT64_C(0x3fe6a09e00000000);
    double m;
    memcpy(&m, &ix, sizeof m);
    return m;
}

/* FB_FMA(a, b, c) = a * b + c rounded once: the fused instruction on the AVX2 / AVX-512 paths
 * (compiled with -mfma, where the compiler inlines it), libm's correctly rounded fma on the
 * scalar path: the same bits either way.  Every other operation is separately rounded
 * (-ffp-contract=off), so no path fuses on its own. */
#define FB_T float
#define FB_DT f32
#define FB_FMA fmaf
#define FB_V 4
#define FB_WPU 1
#define FB_LOG_COEF fb_log_coef_f32
#define FB_LOG_TERMS 9
#define FB_SIN_COEF fb_sin_coef_f32
#define FB_SIN_TERMS 3
#define FB_COS_COEF fb_cos_coef_f32
#define FB_COS_TERMS 3
#define FB_LN2_HI 6.93359375e-01 /* 9 significant bits: k * FB_LN2_HI is exact */
#define FB_LN2_LO -2.12194440054690582e-04
#define FB_SQRT sqrtf
#define FB_UINT uint32_t
#define FB_TINY FLT_MIN
#include "init_body.h"

#define FB_T double
#define FB_DT f64
#define FB_FMA fma
#define FB_V 2
#define FB_WPU 2
#define FB_LOG_COEF fb_log_coef_f64
#define FB_LOG_TERMS 20
#define FB_SIN_COEF fb_sin_coef_f64
#define FB_SIN_TERMS 6
#define FB_COS_COEF fb_cos_coef_f64
#define FB_COS_TERMS 6
#define FB_LN2_HI 6.93147180369123816490e-01 /* fdlibm: 32 trailing zero bits */
#define FB_LN2_LO 1.90821492927058770002e-10
#define FB_SQRT sqrt
#define FB_UINT uint64_t
#define FB_TINY DBL_MIN
#include "init_body.h"

/* float16 and bfloat16: the float32 stream's values, each rounded once to the half type (to
 * nearest even, half.h).  The same random bits and arithmetic as float32 output. */
#define FB_INIT_HALF(DT, NARROW)                                                                   \
    static void store_##DT(void *out, int64_t at, const float *src, int64_t n)                   \
    {                                                                                            \
        uint16_t *dst = (uint16_t *)out + at;                                                    \
        for (int64_t j = 0; j < n; j++) dst[j] = NARROW(src[j]);                                 \
    }                                                                                            \
    static fb_status fill_##DT(uint16_t *out, int64_t n, int law, const uint32_t seed[4],        \
                               const double *params, int n_threads)                              \
    {                                                                                            \
        return fill_into_f32(out, n, law, seed, params, n_threads, store_##DT);                  \
    }
FB_INIT_HALF(f16, fb_f32_to_f16)
FB_INIT_HALF(bf16, fb_f32_to_bf16)

static fb_status words(uint32_t *out, int64_t n_blocks, uint64_t block0, const uint32_t seed[4])
{
    if (n_blocks < 0) return FB_EINVAL;
    fb_philox_key key;
    fb_philox_schedule(seed, seed + 2, &key);
    for (int64_t g = 0; g < n_blocks; g += FB_PHILOX_LANES) {
        uint32_t w[4][FB_PHILOX_LANES];
        fb_philox4x32_10_lanes(block0 + (uint64_t)g, &key, w);
        for (int l = 0; l < FB_PHILOX_LANES && g + l < n_blocks; l++)
            for (int j = 0; j < 4; j++) out[4 * (g + l) + j] = w[j][l];
    }
    return FB_OK;
}

#include "qr_body.h"

const fb_init_table FB_CAT(fb_init_table, FB_ISA_SUFFIX) = {
    fill_f32, fill_f64, fill_f16, fill_bf16, eval_f32, eval_f64, words, qr_orthogonal,
};
