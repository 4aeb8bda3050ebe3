/*
 * half.h -- float16 (IEEE binary16) and bfloat16 storage: conversions to and from float/double.
 *
 * Both are stored as uint16_t bits.  Widening (to float) is exact.  Narrowing rounds to nearest,
 * ties to even, with overflow to infinity, subnormals kept (never flushed) and NaN kept NaN
 * (quiet, sign kept): the rounding of numpy.float16 and ml_dtypes.bfloat16 conversions.
 *
 * float16 uses the F16C instructions where the translation unit is compiled for them (the AVX2
 * and AVX-512 paths, which run only on CPUs that report F16C: cpu.c), and the portable integer
 * code below elsewhere (the scalar path, e.g. a Nehalem CPU).  Both round the same way, so
 * every path gives the same bits.  bfloat16 is the top half of a float32: integer code only.
 */
#ifndef FASTBN_HALF_H
#define FASTBN_HALF_H

#include <stdint.h>
#include <string.h>

#if defined(__F16C__)
#include <immintrin.h>
#endif

static inline uint32_t fb_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float fb_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* bfloat16 -> float: exact (its bits are a float32's top 16). */
static inline float fb_bf16_to_f32(uint16_t h) { return fb_bits_f32((uint32_t)h << 16); }

/* float -> bfloat16, round to nearest even: add 0x7FFF plus the lowest kept bit, truncate (a
 * carry into the exponent is the correct rounding up, to infinity past the largest value). */
static inline uint16_t fb_f32_to_bf16(float f)
{
    const uint32_t u = fb_f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

/* float16 -> float: exact. */
static inline float fb_f16_to_f32(uint16_t h)
{
#if defined(__F16C__)
    return _cvtsh_ss(h);
#else
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0x1F) return fb_bits_f32(sign | 0x7F800000u | (m << 13)); /* inf, NaN */
    if (e != 0) return fb_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
    /* zero or subnormal: m 2^-24, exact in float */
    return fb_bits_f32(sign | fb_f32_bits((float)m * 0x1p-24f));
#endif
}

/* float -> float16, round to nearest even. */
static inline uint16_t fb_f32_to_f16(float f)
{
#if defined(__F16C__)
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
    const uint32_t u = fb_f32_bits(f), a = u & 0x7FFFFFFFu;
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x3FFu)); /* NaN */
    if (a >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* >= 65520: rounds to inf */
    if (a >= 0x38800000u) {                                  /* >= 2^-14: a normal float16 */
        /* rebias the exponent (127 -> 15), then round away 13 mantissa bits, ties to even */
        const uint32_t r = a - (112u << 23);
        return (uint16_t)(sign | ((r + 0x0FFFu + ((r >> 13) & 1u)) >> 13));
    }
    /* A subnormal float16 k 2^-24 (or 0): a = m 2^(e - 150) with the 24-bit significand m, so
     * k = m >> (126 - e) rounded to nearest even; shifts beyond 24 leave less than half. */
    const uint32_t e = a >> 23, shift = 126u - e;
    if (shift > 24u) return sign;
    const uint32_t m = (a & 0x7FFFFFu) | 0x800000u, k = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    return (uint16_t)(sign | (k + (rem > half || (rem == half && (k & 1u)))));
#endif
}

/* double -> float rounded to odd: truncate, then set the last bit if anything was cut off.
 * Rounding that float again to a format with at most 22 significant bits (both half types) is
 * then the correct rounding of the double (round-to-odd keeps the sticky information). */
static inline float fb_f64_to_f32_odd(double d)
{
    float f = (float)d;
    if ((double)f != d && d == d) {
        uint32_t u = fb_f32_bits(f);
        if ((f < 0 ? -(double)f : (double)f) > (d < 0 ? -d : d)) u -= 1u; /* towards zero */
        f = fb_bits_f32(u | 1u);
    }
    return f;
}

/* double -> float16 / bfloat16, rounded once (to nearest even). */
static inline uint16_t fb_f64_to_f16(double d) { return fb_f32_to_f16(fb_f64_to_f32_odd(d)); }
static inline uint16_t fb_f64_to_bf16(double d) { return fb_f32_to_bf16(fb_f64_to_f32_odd(d)); }

#endif /* FASTBN_HALF_H */
