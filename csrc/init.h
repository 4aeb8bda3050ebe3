/*
 * init.h -- weight-initializer kernels: uniform, normal and truncated-normal streams from a
 * Philox4x32-10 counter-based generator (philox.h).
 *
 * Reproducibility.  A stream is named by seed[4] = (key0, key1, stream0, stream1).  The output is
 * a contiguous buffer of n values; value i depends only on (seed, i, dtype, law, parameters):
 * never on the thread count, the ISA path, or how the caller splits or places the buffer.
 *
 * Mapping of random bits to values.  Values are made in chunks of L = FB_PHILOX_LANES = 64 blocks
 * of 128 bits (chunks this wide keep enough independent work in flight to fill the core).  Each
 * block carries V = 16 / sizeof(T) values: 4 for float32, 2 for float64, for every law.  Chunk c
 * holds values [L*V*c, L*V*(c+1)); its value L*j + l comes from block L*c + l: word j (float32
 * uniform / truncated normal), words 2j, 2j+1 (float64 uniform / truncated normal), or the
 * Box-Muller pair made of the block's words (normals).
 *
 * Laws (T = the output type; every operation below is done in T, no float64 detour for float32):
 *   uniform    : low + (high - low) * u, u on [0, 1) with 24 (float32) or 53 (float64) random bits,
 *                clamped to [low, high] (only rounding can reach high).
 *   normal     : mean + std * z, z by Box-Muller: r = sqrt(-2 log u1), u1 in (0, 1] with 31 / 53
 *                bits; the angle from 25 / 54 bits (2 quadrant bits + a uniform point of the
 *                quadrant); z0 = r cos(angle), z1 = r sin(angle).
 *   truncnorm  : inverse CDF without rejection: U uniform on [0, 1) (24 / 53 bits),
 *                p = pa + w*U, q = qb + w*(1 - U), where pa = Phi(a), qb = 1 - Phi(b),
 *                w = Phi(b) - Phi(a) (computed by the caller, in float64, from erfc); the smaller
 *                of p, q goes through the lower-tail quantile (so both tails keep full relative
 *                precision), x = +-ndtri(min(p, q)); y = mean + std * x clamped to [lo, hi] (the
 *                interval's ends in T, which rounding alone can cross).
 * log, sin, cos and ndtri are the in-house polynomial/rational functions of init_body.h, evaluated
 * with explicit fused multiply-adds (the instruction on the AVX2 / AVX-512 paths, libm's correctly
 * rounded fma on the scalar path) and otherwise separately rounded operations: no other libm
 * function is called per element, so bits are the same on every ISA path and every machine.
 */
#ifndef FASTBN_INIT_H
#define FASTBN_INIT_H

#include "fastbn.h"

enum { FB_LAW_UNIFORM = 0, FB_LAW_NORMAL = 1, FB_LAW_TRUNCNORM = 2, FB_LAW_COUNT = 3 };

/* Law parameters, float64 (converted to T once per call):
 *   uniform  : p[0] = low, p[1] = high
 *   normal   : p[0] = mean, p[1] = std
 *   truncnorm: p[0] = mean, p[1] = std, p[2] = pa, p[3] = qb, p[4] = w, p[5] = lo, p[6] = hi */
#define FB_INIT_NPARAMS 8

/* Math functions exposed for testing their accuracy (fb_init_eval_*). */
enum { FB_FN_LOG = 0, FB_FN_SIN = 1, FB_FN_COS = 2, FB_FN_NDTRI_LOWER = 3, FB_FN_COUNT = 4 };

#define FB_INIT_DECLARE(T, DT)                                                                     \
    /* Fill out[0..n) with the law's values of stream seed.  Returns FB_EINVAL for an unknown    \
     * law or n < 0, with nothing written.                                                      */ \
    fb_status fb_init_fill_##DT(T *out, int64_t n, int law, const uint32_t seed[4],              \
                                const double *params, int n_threads);                            \
    /* y[i] = fn(x[i]) with the in-house functions the kernels use (for accuracy tests).         \
     * log: x in (0, 1] normal; sin, cos: |x| <= pi/4; ndtri_lower: x in (0, 0.5]               */ \
    fb_status fb_init_eval_##DT(int fn, const T *x, T *y, int64_t n);

FB_INIT_DECLARE(float, f32)
FB_INIT_DECLARE(double, f64)

/* float16 / bfloat16 output (uint16_t bits): the float32 values of the same stream, law and
 * parameters, each rounded once to the half type (to nearest even). */
#define FB_INIT_DECLARE_HALF(DT)                                                                   \
    fb_status fb_init_fill_##DT(uint16_t *out, int64_t n, int law, const uint32_t seed[4],       \
                                const double *params, int n_threads);
FB_INIT_DECLARE_HALF(f16)
FB_INIT_DECLARE_HALF(bf16)

/* The raw Philox words of blocks block0 .. block0 + n_blocks - 1 of stream seed (through the
 * vectorized lanes function of the current ISA path): out[4*b + j] = word j of block block0 + b. */
fb_status fb_init_words(uint32_t *out, int64_t n_blocks, uint64_t block0, const uint32_t seed[4]);

/* The orthogonal initializer's matrix: a (m x n, m >= n >= 1, by rows) is replaced by the Q of
 * its QR, each column k multiplied by the sign of R's diagonal entry k (+1 where it is 0), from
 * a blocked Householder QR in float64 with every operation in a fixed order (qr_body.h): the same
 * bits for any thread count and ISA path.  FB_EINVAL (m < n or n < 1) or FB_ENOMEM: a untouched. */
fb_status fb_init_orthogonal_f64(double *a, int64_t m, int64_t n, int n_threads);

/* Choose the instruction-set path (FB_ISA_*); returns 0, or -1 if it cannot run here. */
int fb_init_set_isa(int isa);
int fb_init_get_isa(void);

typedef struct {
    fb_status (*fill_f32)(float *, int64_t, int, const uint32_t *, const double *, int);
    fb_status (*fill_f64)(double *, int64_t, int, const uint32_t *, const double *, int);
    fb_status (*fill_f16)(uint16_t *, int64_t, int, const uint32_t *, const double *, int);
    fb_status (*fill_bf16)(uint16_t *, int64_t, int, const uint32_t *, const double *, int);
    fb_status (*eval_f32)(int, const float *, float *, int64_t);
    fb_status (*eval_f64)(int, const double *, double *, int64_t);
    fb_status (*words)(uint32_t *, int64_t, uint64_t, const uint32_t *);
    fb_status (*orthogonal_f64)(double *, int64_t, int64_t, int);
} fb_init_table;

extern const fb_init_table fb_init_table_scalar;
#if defined(FB_X86_ISAS)
extern const fb_init_table fb_init_table_avx2;
extern const fb_init_table fb_init_table_avx512;
#endif

#endif /* FASTBN_INIT_H */
