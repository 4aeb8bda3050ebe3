/*
 * philox.h -- the Philox4x32-10 counter-based generator (Salmon, Moraes, Dror & Shaw, "Parallel
 * random numbers: as easy as 1, 2, 3", SC'11), as static inline functions usable from any file.
 *
 * One call maps a 128-bit counter and a 64-bit key to 128 random bits.  A stream is a key plus
 * the two high counter words; the two low counter words number the blocks of the stream, so any
 * block can be computed on its own, in any order, on any thread.  The constants and the round
 * function are Random123's; tests/test_philox.py checks the published known-answer vectors.
 *
 * fb_philox4x32_10_lanes computes FB_PHILOX_LANES blocks at once in structure-of-arrays form:
 * plain integer C (32x32->64-bit products, xors), which every ISA path computes exactly alike
 * and which the compiler vectorizes.
 */
#ifndef FASTBN_PHILOX_H
#define FASTBN_PHILOX_H

#include <stdint.h>

#define FB_PHILOX_M0 UINT32_C(0xD2511F53)
#define FB_PHILOX_M1 UINT32_C(0xCD9E8D57)
#define FB_PHILOX_W0 UINT32_C(0x9E3779B9)  /* golden ratio */
#define FB_PHILOX_W1 UINT32_C(0xBB67AE85)  /* sqrt(3) - 1 */
#define FB_PHILOX_ROUNDS 10
#define FB_PHILOX_LANES 16                 /* blocks per call of the lanes function */

/* One Philox round on (x0, x1, x2, x3) with round key (k0, k1). */
#define FB_PHILOX_ROUND(x0, x1, x2, x3, k0, k1)                                 \
    do {                                                                        \
        const uint64_t p0_ = (uint64_t)FB_PHILOX_M0 * (uint64_t)(x0);           \
        const uint64_t p1_ = (uint64_t)FB_PHILOX_M1 * (uint64_t)(x2);           \
        (x0) = (uint32_t)(p1_ >> 32) ^ (x1) ^ (k0);                             \
        (x1) = (uint32_t)p1_;                                                   \
        (x2) = (uint32_t)(p0_ >> 32) ^ (x3) ^ (k1);                             \
        (x3) = (uint32_t)p0_;                                                   \
    } while (0)

/* Philox4x32-10 of counter ctr under key key: 10 rounds, the key bumped by (W0, W1) between
 * rounds. */
static inline void fb_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t x0 = ctr[0], x1 = ctr[1], x2 = ctr[2], x3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < FB_PHILOX_ROUNDS; r++) {
        FB_PHILOX_ROUND(x0, x1, x2, x3, k0, k1);
        k0 += FB_PHILOX_W0;
        k1 += FB_PHILOX_W1;
    }
    out[0] = x0, out[1] = x1, out[2] = x2, out[3] = x3;
}

/* Blocks block0 .. block0 + FB_PHILOX_LANES - 1 of the stream (key, stream): block b has the
 * counter (lo32(b), hi32(b), stream[0], stream[1]).  Word j of lane l goes to w[j][l].  The same
 * function as fb_philox4x32_10, lane by lane (tests/test_philox.py checks every ISA path against
 * the known-answer vectors).  Integer arithmetic only, so every path gives the same words; the
 * AVX2 / AVX-512 paths use explicit 32x32->64-bit multiplies (vpmuludq) on 64-bit lanes, which
 * compilers do not find on their own. */
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

static inline void fb_philox4x32_10_lanes(uint64_t block0, const uint32_t key[2],
                                          const uint32_t stream[2],
                                          uint32_t w[4][FB_PHILOX_LANES])
{
#if defined(__AVX512F__)
    /* 2 vectors of 8 lanes; the state in the low halves of 64-bit lanes (the high halves hold
     * garbage that never reaches a low half: only xors and vpmuludq, which ignores them). */
    const __m512i mask = _mm512_set1_epi64(0xFFFFFFFF);
    const __m512i m0 = _mm512_set1_epi64(FB_PHILOX_M0), m1 = _mm512_set1_epi64(FB_PHILOX_M1);
    for (int h = 0; h < FB_PHILOX_LANES; h += 8) {
        const __m512i b = _mm512_add_epi64(_mm512_set1_epi64((long long)(block0 + (uint64_t)h)),
                                           _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
        __m512i x0 = _mm512_and_si512(b, mask), x1 = _mm512_srli_epi64(b, 32);
        __m512i x2 = _mm512_set1_epi64(stream[0]), x3 = _mm512_set1_epi64(stream[1]);
        uint32_t k0 = key[0], k1 = key[1];
        for (int r = 0; r < FB_PHILOX_ROUNDS; r++) {
            const __m512i p0 = _mm512_mul_epu32(x0, m0), p1 = _mm512_mul_epu32(x2, m1);
            x0 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), x1, _mm512_set1_epi64(k0), 0x96);
            x2 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), x3, _mm512_set1_epi64(k1), 0x96);
            x1 = p1, x3 = p0;
            k0 += FB_PHILOX_W0, k1 += FB_PHILOX_W1;
        }
        _mm256_storeu_si256((__m256i *)&w[0][h], _mm512_cvtepi64_epi32(x0));
        _mm256_storeu_si256((__m256i *)&w[1][h], _mm512_cvtepi64_epi32(x1));
        _mm256_storeu_si256((__m256i *)&w[2][h], _mm512_cvtepi64_epi32(x2));
        _mm256_storeu_si256((__m256i *)&w[3][h], _mm512_cvtepi64_epi32(x3));
    }
#elif defined(__AVX2__)
    const __m256i m0 = _mm256_set1_epi64x(FB_PHILOX_M0), m1 = _mm256_set1_epi64x(FB_PHILOX_M1);
    const __m256i mask = _mm256_set1_epi64x(0xFFFFFFFF);
    for (int h = 0; h < FB_PHILOX_LANES; h += 4) {
        const __m256i b = _mm256_add_epi64(_mm256_set1_epi64x((long long)(block0 + (uint64_t)h)),
                                           _mm256_set_epi64x(3, 2, 1, 0));
        __m256i x0 = _mm256_and_si256(b, mask), x1 = _mm256_srli_epi64(b, 32);
        __m256i x2 = _mm256_set1_epi64x(stream[0]), x3 = _mm256_set1_epi64x(stream[1]);
        uint32_t k0 = key[0], k1 = key[1];
        for (int r = 0; r < FB_PHILOX_ROUNDS; r++) {
            const __m256i p0 = _mm256_mul_epu32(x0, m0), p1 = _mm256_mul_epu32(x2, m1);
            x0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), x1),
                                  _mm256_set1_epi64x(k0));
            x2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), x3),
                                  _mm256_set1_epi64x(k1));
            x1 = p1, x3 = p0;
            k0 += FB_PHILOX_W0, k1 += FB_PHILOX_W1;
        }
        /* low halves of the 4 lanes -> 4 consecutive words */
        const __m256i pick = _mm256_set_epi32(7, 7, 7, 7, 6, 4, 2, 0);
        __m256i v[4] = {x0, x1, x2, x3};
        for (int j = 0; j < 4; j++)
            _mm_storeu_si128((__m128i *)&w[j][h],
                             _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(v[j], pick)));
    }
#else
    const uint32_t k0 = key[0], k1 = key[1], s0 = stream[0], s1 = stream[1];
    for (int l = 0; l < FB_PHILOX_LANES; l++) {
        const uint64_t b = block0 + (uint64_t)l;
        const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), s0, s1}, k[2] = {k0, k1};
        uint32_t o[4];
        fb_philox4x32_10(ctr, k, o);
        w[0][l] = o[0], w[1][l] = o[1], w[2][l] = o[2], w[3][l] = o[3];
    }
#endif
}

#endif /* FASTBN_PHILOX_H */
