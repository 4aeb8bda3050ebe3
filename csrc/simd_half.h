/*
 * simd_half.h -- float16 and bfloat16 tensors as simd.h's float vectors: fb_vf_load_<h> (FB_VF_W
 * values widened to float), fb_vf_store_<h> (rounded to nearest even, as half.h's scalars: the
 * same bits), fb_vd_load_<h> (FB_VD_W values widened to double).  Widening is exact.
 *
 * float16 uses F16C where the translation unit has it (the AVX2 and AVX-512 paths, which run only
 * where cpu.c finds F16C) and half.h's portable integer code elsewhere (the SSE2 baseline: a
 * Nehalem CPU has no F16C).  bfloat16 is integer code everywhere: a shift to widen, and on store
 * the round-to-nearest-even carry of half.h's fb_f32_to_bf16, NaN kept a quiet NaN, packed to 16
 * bits with each instruction set's own integer instructions.
 */
#ifndef FASTBN_SIMD_HALF_H
#define FASTBN_SIMD_HALF_H

#include "half.h"
#include "simd.h"

/* ---- float16 --------------------------------------------------------------------------------- */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX512F__)
static inline fb_vf fb_vf_load_f16(const uint16_t *p)
{
    return (fb_vf)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i_u *)p));
}
static inline void fb_vf_store_f16(uint16_t *p, fb_vf v)
{
    _mm256_storeu_si256((__m256i_u *)p, _mm512_cvtps_ph((__m512)v, _MM_FROUND_TO_NEAREST_INT));
}
static inline fb_vd fb_vd_load_f16(const uint16_t *p)
{
    return (fb_vd)_mm512_cvtps_pd(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i_u *)p)));
}
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__F16C__) && FB_VBYTES == 32
static inline fb_vf fb_vf_load_f16(const uint16_t *p)
{
    return (fb_vf)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i_u *)p));
}
static inline void fb_vf_store_f16(uint16_t *p, fb_vf v)
{
    _mm_storeu_si128((__m128i_u *)p, _mm256_cvtps_ph((__m256)v, _MM_FROUND_TO_NEAREST_INT));
}
static inline fb_vd fb_vd_load_f16(const uint16_t *p)
{
    return (fb_vd)_mm256_cvtps_pd(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i_u *)p)));
}
#else   /* element by element through half.h's portable conversions */
static inline fb_vf fb_vf_load_f16(const uint16_t *p)
{
    float t[FB_VF_W];
    for (int i = 0; i < FB_VF_W; i++) t[i] = fb_f16_to_f32(p[i]);
    return fb_vf_load(t);
}
static inline void fb_vf_store_f16(uint16_t *p, fb_vf v)
{
    float t[FB_VF_W];
    fb_vf_store(t, v);
    for (int i = 0; i < FB_VF_W; i++) p[i] = fb_f32_to_f16(t[i]);
}
static inline fb_vd fb_vd_load_f16(const uint16_t *p)
{
    float t[FB_VD_W];
    for (int i = 0; i < FB_VD_W; i++) t[i] = fb_f16_to_f32(p[i]);
    return fb_vd_load_f32(t);
}
#endif

/* ---- bfloat16 -------------------------------------------------------------------------------- */
#if defined(__GNUC__) || defined(__clang__)
typedef uint16_t fb_vbf __attribute__((vector_size(FB_VBYTES / 2)));   /* FB_VF_W bfloat16 */
typedef uint32_t fb_vu __attribute__((vector_size(FB_VBYTES)));        /* FB_VF_W uint32 */

/* The bits of each float rounded to bfloat16 (in the low 16 bits of its lane): fb_f32_to_bf16. */
static inline fb_vu fb_vu_round_bf16(fb_vf v)
{
    const fb_vu u = (fb_vu)v, t = u >> 16;
    const fb_vu nan = (fb_vu)(v != v);   /* all ones where NaN */
    return (((u + 0x7FFFu + (t & 1u)) >> 16) & ~nan) | ((t | 0x40u) & nan);
}
#endif

#if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX512F__) && defined(__AVX512DQ__) && \
    defined(__AVX512BW__) && defined(__AVX512VL__)   /* the AVX-512 path's flags (setup.py) */
/* Widening: each value permuted into the high half of its lane, the low half zeroed by mask. */
static inline fb_vf fb_vf_load_bf16(const uint16_t *p)
{
    const __m512i idx = _mm512_set_epi16(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8,
                                         7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    return (fb_vf)_mm512_maskz_permutexvar_epi16(
        0xAAAAAAAAu, idx, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i_u *)p)));
}
static inline fb_vd fb_vd_load_bf16(const uint16_t *p)
{
    const __m256i idx = _mm256_set_epi16(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    return (fb_vd)_mm512_cvtps_pd(_mm256_castsi256_ps(_mm256_maskz_permutexvar_epi16(
        0xAAAA, idx, _mm256_castsi128_si256(_mm_loadu_si128((const __m128i_u *)p)))));
}
/* fb_vu_round_bf16's carry with the result left in each lane's high half (a NaN: its bits with
 * the quiet bit set, by mask), and those halves gathered by one permute: the same bits. */
static inline void fb_vf_store_bf16(uint16_t *p, fb_vf v)
{
    const __m512i u = _mm512_castps_si512((__m512)v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb);
    r = _mm512_mask_or_epi32(r, _mm512_fpclass_ps_mask((__m512)v, 0x81), u,   /* 0x81: NaN */
                             _mm512_set1_epi32(0x00400000));
    const __m512i high = _mm512_set_epi16(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1,
                                          31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    _mm256_storeu_si256((__m256i_u *)p, _mm512_castsi512_si256(_mm512_permutexvar_epi16(high, r)));
}
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__AVX2__) && FB_VBYTES == 32
static inline fb_vf fb_vf_load_bf16(const uint16_t *p)
{
    return (fb_vf)_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i_u *)p)), 16);
}
static inline void fb_vf_store_bf16(uint16_t *p, fb_vf v)
{
    const __m256i r = (__m256i)fb_vu_round_bf16(v);   /* lanes <= 0xFFFF: packus keeps them */
    _mm_storeu_si128((__m128i_u *)p,
                     _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
}
static inline fb_vd fb_vd_load_bf16(const uint16_t *p)
{
    const __m128i w = _mm_slli_epi32(_mm_cvtepu16_epi32(_mm_loadl_epi64((const __m128i_u *)p)), 16);
    return (fb_vd)_mm256_cvtps_pd(_mm_castsi128_ps(w));
}
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__SSE2__) && FB_VBYTES == 16
static inline fb_vf fb_vf_load_bf16(const uint16_t *p)
{
    return (fb_vf)_mm_unpacklo_epi16(_mm_setzero_si128(), _mm_loadl_epi64((const __m128i_u *)p));
}
static inline void fb_vf_store_bf16(uint16_t *p, fb_vf v)
{
    /* lanes <= 0xFFFF, sign-extended from 16 bits: packs_epi32 then keeps their bits */
    const __m128i r = _mm_srai_epi32(_mm_slli_epi32((__m128i)fb_vu_round_bf16(v), 16), 16);
    _mm_storel_epi64((__m128i_u *)p, _mm_packs_epi32(r, r));
}
static inline fb_vd fb_vd_load_bf16(const uint16_t *p)
{
    int32_t two;
    memcpy(&two, p, sizeof two);
    return (fb_vd)_mm_cvtps_pd(_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(),
                                                                    _mm_cvtsi32_si128(two))));
}
#else   /* element by element through half.h */
static inline fb_vf fb_vf_load_bf16(const uint16_t *p)
{
    float t[FB_VF_W];
    for (int i = 0; i < FB_VF_W; i++) t[i] = fb_bf16_to_f32(p[i]);
    return fb_vf_load(t);
}
static inline void fb_vf_store_bf16(uint16_t *p, fb_vf v)
{
    float t[FB_VF_W];
    fb_vf_store(t, v);
    for (int i = 0; i < FB_VF_W; i++) p[i] = fb_f32_to_bf16(t[i]);
}
static inline fb_vd fb_vd_load_bf16(const uint16_t *p)
{
    float t[FB_VD_W];
    for (int i = 0; i < FB_VD_W; i++) t[i] = fb_bf16_to_f32(p[i]);
    return fb_vd_load_f32(t);
}
#endif

/* A float vector rounded to the half type and widened back (batch norm's fused epilogue adds the
 * residual to the output as stored, so the output is rounded first; see batchnorm_body.h). */
static inline fb_vf fb_vf_round_f16(fb_vf v)
{
    uint16_t h[FB_VF_W];
    fb_vf_store_f16(h, v);
    return fb_vf_load_f16(h);
}
static inline fb_vf fb_vf_round_bf16(fb_vf v)
{
    uint16_t h[FB_VF_W];
    fb_vf_store_bf16(h, v);
    return fb_vf_load_bf16(h);
}

#endif /* FASTBN_SIMD_HALF_H */
