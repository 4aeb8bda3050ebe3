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
#define FB_PHILOX_LANES 64                 /* blocks per call of the lanes function */

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

/* A stream's key schedule: the round keys (key + r * (W0, W1)), zero-extended to 64 bits so the
 * vector paths broadcast them straight from memory (a load, not a shuffle), and the two stream
 * words of the counter. */
typedef struct {
    uint64_t round_key[FB_PHILOX_ROUNDS][2];
    uint32_t stream[2];
    /* Round 0 multiplies the stream word x2, the same for every block: its product is folded
     * into constants, x0' = x1 ^ first_x0, x1' = first_x1, x2' = hi(M0 x0) ^ first_x2. */
    uint64_t first_x0, first_x1, first_x2;
} fb_philox_key;

static inline void fb_philox_schedule(const uint32_t key[2], const uint32_t stream[2],
                                      fb_philox_key *s)
{
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < FB_PHILOX_ROUNDS; r++) {
        s->round_key[r][0] = k0, s->round_key[r][1] = k1;
        k0 += FB_PHILOX_W0, k1 += FB_PHILOX_W1;
    }
    s->stream[0] = stream[0], s->stream[1] = stream[1];
    const uint64_t p1 = (uint64_t)FB_PHILOX_M1 * stream[0];
    s->first_x0 = (uint32_t)(p1 >> 32) ^ key[0];
    s->first_x1 = (uint32_t)p1;
    s->first_x2 = stream[1] ^ key[1];
}

/* Blocks block0 .. block0 + FB_PHILOX_LANES - 1 of the stream s: block b has the counter
 * (lo32(b), hi32(b), stream[0], stream[1]).  Word j of lane l goes to w[j][l].  The same
 * function as fb_philox4x32_10, lane by lane (tests/test_philox.py checks every ISA path against
 * the known-answer vectors).  Integer arithmetic only, so every path gives the same words; the
 * AVX2 / AVX-512 paths use explicit 32x32->64-bit multiplies (vpmuludq) on 64-bit lanes, which
 * compilers do not find on their own.  The state lives in the low halves of 64-bit lanes; the
 * high halves hold garbage that never reaches a low half (only xors, right shifts of full
 * products, and vpmuludq, which reads low halves only).  A round is then three operations per
 * multiply (multiply, shift, three-way xor with the broadcast round key), and two independent
 * groups of lanes are interleaved to hide the multiply latency. */
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

static inline void fb_philox4x32_10_lanes(uint64_t block0, const fb_philox_key *s,
                                          uint32_t w[4][FB_PHILOX_LANES])
{
#if defined(__AVX512F__)
    /* 16 lanes at a time = groups a (blocks h..h+7) and b (h+8..h+15) of 8 64-bit lanes. */
    const __m512i m0 = _mm512_set1_epi64(FB_PHILOX_M0), m1 = _mm512_set1_epi64(FB_PHILOX_M1);
    const __m512i lo = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    for (int h = 0; h < FB_PHILOX_LANES; h += 16) {
        const __m512i ba = _mm512_add_epi64(_mm512_set1_epi64((long long)(block0 + (uint64_t)h)),
                                            _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
        const __m512i bb = _mm512_add_epi64(ba, _mm512_set1_epi64(8));
        /* round 0 (see fb_philox_key) */
        const __m512i pa = _mm512_mul_epu32(ba, m0), pb = _mm512_mul_epu32(bb, m0);
        const __m512i f0 = _mm512_set1_epi64((long long)s->first_x0);
        const __m512i f2 = _mm512_set1_epi64((long long)s->first_x2);
        __m512i a0 = _mm512_xor_si512(_mm512_srli_epi64(ba, 32), f0);
        __m512i b0 = _mm512_xor_si512(_mm512_srli_epi64(bb, 32), f0);
        __m512i a1 = _mm512_set1_epi64((long long)s->first_x1), b1 = a1;
        __m512i a2 = _mm512_xor_si512(_mm512_srli_epi64(pa, 32), f2);
        __m512i b2 = _mm512_xor_si512(_mm512_srli_epi64(pb, 32), f2);
        __m512i a3 = pa, b3 = pb;
        for (int r = 1; r < FB_PHILOX_ROUNDS; r++) {
            const __m512i k0 = _mm512_set1_epi64((long long)s->round_key[r][0]);
            const __m512i k1 = _mm512_set1_epi64((long long)s->round_key[r][1]);
            const __m512i pa0 = _mm512_mul_epu32(a0, m0), pa1 = _mm512_mul_epu32(a2, m1);
            const __m512i pb0 = _mm512_mul_epu32(b0, m0), pb1 = _mm512_mul_epu32(b2, m1);
            a0 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(pa1, 32), a1, k0, 0x96);
            a2 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(pa0, 32), a3, k1, 0x96);
            b0 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(pb1, 32), b1, k0, 0x96);
            b2 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(pb0, 32), b3, k1, 0x96);
            a1 = pa1, a3 = pa0, b1 = pb1, b3 = pb0;
        }
        /* low halves of a then b -> 16 consecutive words, one permute per word row */
        _mm512_storeu_si512((void *)&w[0][h], _mm512_permutex2var_epi32(a0, lo, b0));
        _mm512_storeu_si512((void *)&w[1][h], _mm512_permutex2var_epi32(a1, lo, b1));
        _mm512_storeu_si512((void *)&w[2][h], _mm512_permutex2var_epi32(a2, lo, b2));
        _mm512_storeu_si512((void *)&w[3][h], _mm512_permutex2var_epi32(a3, lo, b3));
    }
#elif defined(__AVX2__)
    /* 8 lanes at a time = groups a, b of 4 64-bit lanes (16 ymm registers). */
    const __m256i m0 = _mm256_set1_epi64x(FB_PHILOX_M0), m1 = _mm256_set1_epi64x(FB_PHILOX_M1);
    for (int h = 0; h < FB_PHILOX_LANES; h += 8) {
        const __m256i ba = _mm256_add_epi64(_mm256_set1_epi64x((long long)(block0 + (uint64_t)h)),
                                            _mm256_set_epi64x(3, 2, 1, 0));
        const __m256i bb = _mm256_add_epi64(ba, _mm256_set1_epi64x(4));
        /* round 0 (see fb_philox_key) */
        const __m256i pa = _mm256_mul_epu32(ba, m0), pb = _mm256_mul_epu32(bb, m0);
        const __m256i f0 = _mm256_set1_epi64x((long long)s->first_x0);
        const __m256i f2 = _mm256_set1_epi64x((long long)s->first_x2);
        __m256i a0 = _mm256_xor_si256(_mm256_srli_epi64(ba, 32), f0);
        __m256i b0 = _mm256_xor_si256(_mm256_srli_epi64(bb, 32), f0);
        __m256i a1 = _mm256_set1_epi64x((long long)s->first_x1), b1 = a1;
        __m256i a2 = _mm256_xor_si256(_mm256_srli_epi64(pa, 32), f2);
        __m256i b2 = _mm256_xor_si256(_mm256_srli_epi64(pb, 32), f2);
        __m256i a3 = pa, b3 = pb;
        for (int r = 1; r < FB_PHILOX_ROUNDS; r++) {
            const __m256i k0 = _mm256_set1_epi64x((long long)s->round_key[r][0]);
            const __m256i k1 = _mm256_set1_epi64x((long long)s->round_key[r][1]);
            const __m256i pa0 = _mm256_mul_epu32(a0, m0), pa1 = _mm256_mul_epu32(a2, m1);
            const __m256i pb0 = _mm256_mul_epu32(b0, m0), pb1 = _mm256_mul_epu32(b2, m1);
            a0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pa1, 32), a1), k0);
            a2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pa0, 32), a3), k1);
            b0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pb1, 32), b1), k0);
            b2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pb0, 32), b3), k1);
            a1 = pa1, a3 = pa0, b1 = pb1, b3 = pb0;
        }
        /* low halves of a then b -> 8 consecutive words: [a0 a1 b0 b1 | a2 a3 b2 b3] by
         * shuffle, then the middle 64-bit quarters swapped */
        const __m256i a[4] = {a0, a1, a2, a3}, b[4] = {b0, b1, b2, b3};
        for (int j = 0; j < 4; j++) {
            const __m256 v = _mm256_shuffle_ps(_mm256_castsi256_ps(a[j]), _mm256_castsi256_ps(b[j]),
                                               _MM_SHUFFLE(2, 0, 2, 0));
            _mm256_storeu_si256((__m256i *)&w[j][h],
                                _mm256_permute4x64_epi64(_mm256_castps_si256(v),
                                                         _MM_SHUFFLE(3, 1, 2, 0)));
        }
    }
#else
    const uint32_t key[2] = {(uint32_t)s->round_key[0][0], (uint32_t)s->round_key[0][1]};
    for (int l = 0; l < FB_PHILOX_LANES; l++) {
        const uint64_t b = block0 + (uint64_t)l;
        const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), s->stream[0], s->stream[1]};
        uint32_t o[4];
        fb_philox4x32_10(ctr, key, o);
        w[0][l] = o[0], w[1][l] = o[1], w[2][l] = o[2], w[3][l] = o[3];
    }
#endif
}

#endif /* FASTBN_PHILOX_H */
