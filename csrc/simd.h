/*
 * simd.h -- native-width vectors for the kernels: fb_vd (FB_VD_W doubles), fb_vf (FB_VF_W floats).
 *
 * With GCC or Clang these are vector extensions of the translation unit's native width (zmm on
 * AVX-512, ymm on AVX2, xmm on the SSE2 baseline).  Elsewhere (MSVC) they are small structs with
 * loops.  Operations are element-wise IEEE add/sub/mul and conversions, so the width never
 * changes a result: reductions keep FB_LANES virtual lanes (FB_LANES / FB_VD_W vectors), and with
 * -ffp-contract=off no multiply-add is fused.
 */
#ifndef FASTBN_SIMD_H
#define FASTBN_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu.h"

#if defined(__GNUC__) || defined(__clang__)

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

/* The native width of the translation unit's instruction set. */
#if defined(__AVX512F__)
#define FB_VBYTES 64
#elif defined(__AVX__)
#define FB_VBYTES 32
#else
#define FB_VBYTES 16
#endif
#define FB_VD_W (FB_VBYTES / 8)
#define FB_VF_W (FB_VBYTES / 4)

typedef double fb_vd __attribute__((vector_size(FB_VBYTES)));
typedef float fb_vhf __attribute__((vector_size(FB_VBYTES / 2)));  /* FB_VD_W floats */
typedef float fb_vf __attribute__((vector_size(FB_VBYTES)));

static inline fb_vd fb_vd_set1(double a) { return a - (fb_vd){0}; }
static inline fb_vd fb_vd_add(fb_vd a, fb_vd b) { return a + b; }
static inline fb_vd fb_vd_sub(fb_vd a, fb_vd b) { return a - b; }
static inline fb_vd fb_vd_mul(fb_vd a, fb_vd b) { return a * b; }
static inline fb_vd fb_vd_load_f64(const double *p) { fb_vd v; memcpy(&v, p, sizeof v); return v; }
/* a + b on the multiply-add unit where there is one: a * 1 + b rounds once, so the bits are those
 * of a + b, but it leaves the adders free -- the reductions' bottleneck on Zen 3 (~1.3x faster). */
static inline fb_vd fb_vd_add_m(fb_vd a, fb_vd b)
{
#if defined(__AVX512F__)
    return (fb_vd)_mm512_fmadd_pd((__m512d)a, _mm512_set1_pd(1.0), (__m512d)b);
#elif defined(__FMA__)
    return (fb_vd)_mm256_fmadd_pd((__m256d)a, _mm256_set1_pd(1.0), (__m256d)b);
#else
    return a + b;
#endif
}
/* float -> double of FB_VD_W values: exact.  On x86 one conversion instruction, written out
 * because GCC splits __builtin_convertvector into half-width conversions and inserts, which
 * doubled the cost of every statistics pass. */
static inline fb_vd fb_vd_load_f32(const float *p)
{
#if defined(__AVX512F__)
    return (fb_vd)_mm512_cvtps_pd(_mm256_loadu_ps(p));
#elif defined(__AVX__)
    return (fb_vd)_mm256_cvtps_pd(_mm_loadu_ps(p));
#elif defined(__SSE2__)
    /* movq of the two floats: _mm_load_sd through a double pointer would claim an alignment a
     * float array need not have (undefined behaviour, which UBSan reports) */
    return (fb_vd)_mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i_u *)p)));
#else
    fb_vhf v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, fb_vd);
#endif
}
static inline void fb_vd_store_f64(double *p, fb_vd v) { memcpy(p, &v, sizeof v); }
static inline void fb_vd_store_f32(float *p, fb_vd v)
{
    fb_vhf f = __builtin_convertvector(v, fb_vhf);
    memcpy(p, &f, sizeof f);
}
/* Half-width vectors of doubles in AVX-512 builds (FB_VN_W = 4): the statistics' sums where
 * fb_narrow_sums (cpu.h) says the CPU runs them faster so.  Same operations, same bits. */
#if defined(__AVX512F__)
#define FB_VN_W 4
typedef double fb_vn __attribute__((vector_size(32)));
static inline fb_vn fb_vn_set1(double a) { return a - (fb_vn){0}; }
static inline fb_vn fb_vn_add(fb_vn a, fb_vn b) { return a + b; }
static inline fb_vn fb_vn_sub(fb_vn a, fb_vn b) { return a - b; }
static inline fb_vn fb_vn_mul(fb_vn a, fb_vn b) { return a * b; }
static inline fb_vn fb_vn_add_m(fb_vn a, fb_vn b)   /* fb_vd_add_m's */
{
    return (fb_vn)_mm256_fmadd_pd((__m256d)a, _mm256_set1_pd(1.0), (__m256d)b);
}
static inline fb_vn fb_vn_load_f64(const double *p) { fb_vn v; memcpy(&v, p, sizeof v); return v; }
static inline void fb_vn_store_f64(double *p, fb_vn v) { memcpy(p, &v, sizeof v); }
static inline fb_vn fb_vn_load_f32(const float *p) { return (fb_vn)_mm256_cvtps_pd(_mm_loadu_ps(p)); }
/* fb_vd_total's levels within a half-width vector: (lane 0 + 2) + (lane 1 + 3) */
static inline double fb_vn_total(fb_vn v) { return (v[0] + v[2]) + (v[1] + v[3]); }
#endif
/* 1 if every element is finite (v - v is 0 there, NaN at +-inf and NaN): the elementwise passes
 * redo the rare vectors whose float result overflowed inside (csrc/batchnorm_body.h). */
#if defined(__AVX512F__)
/* AVX-512 DQ: one class test (NaN, +-inf) instead of a subtraction and a comparison */
static inline int fb_vf_finite(fb_vf v) { return _mm512_fpclass_ps_mask((__m512)v, 0x99) == 0; }
static inline int fb_vd_finite(fb_vd v) { return _mm512_fpclass_pd_mask((__m512d)v, 0x99) == 0; }
#elif defined(__AVX__)
static inline int fb_vf_finite(fb_vf v) { return _mm256_movemask_ps(_mm256_cmp_ps((__m256)(v - v), (__m256)(v - v), _CMP_UNORD_Q)) == 0; }
static inline int fb_vd_finite(fb_vd v) { return _mm256_movemask_pd(_mm256_cmp_pd((__m256d)(v - v), (__m256d)(v - v), _CMP_UNORD_Q)) == 0; }
#elif defined(__SSE2__)
static inline int fb_vf_finite(fb_vf v) { return _mm_movemask_ps(_mm_cmpunord_ps((__m128)(v - v), (__m128)(v - v))) == 0; }
static inline int fb_vd_finite(fb_vd v) { return _mm_movemask_pd(_mm_cmpunord_pd((__m128d)(v - v), (__m128d)(v - v))) == 0; }
#else
static inline int fb_vf_finite(fb_vf v)
{
    const fb_vf z = v - v;
    int ok = 1;
    for (int i = 0; i < FB_VF_W; i++) ok &= z[i] == 0.0f;
    return ok;
}
static inline int fb_vd_finite(fb_vd v)
{
    const fb_vd z = v - v;
    int ok = 1;
    for (int i = 0; i < FB_VD_W; i++) ok &= z[i] == 0.0;
    return ok;
}
#endif
static inline fb_vf fb_vf_set1(float a) { return a - (fb_vf){0}; }
static inline fb_vf fb_vf_add(fb_vf a, fb_vf b) { return a + b; }
static inline fb_vf fb_vf_sub(fb_vf a, fb_vf b) { return a - b; }
static inline fb_vf fb_vf_mul(fb_vf a, fb_vf b) { return a * b; }
/* a * b + c rounded once, lane by lane: the instruction where the build has one, else C99's
 * fmaf / fma (correctly rounded too), so every instruction set gives the same bits. */
static inline fb_vf fb_vf_fma(fb_vf a, fb_vf b, fb_vf c)
{
#if defined(__AVX512F__)
    return (fb_vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__)
    return (fb_vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    for (int i = 0; i < FB_VF_W; i++) a[i] = fmaf(a[i], b[i], c[i]);
    return a;
#endif
}
static inline fb_vd fb_vd_fma(fb_vd a, fb_vd b, fb_vd c)
{
#if defined(__AVX512F__)
    return (fb_vd)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(__FMA__)
    return (fb_vd)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
    for (int i = 0; i < FB_VD_W; i++) a[i] = fma(a[i], b[i], c[i]);
    return a;
#endif
}
static inline fb_vf fb_vf_load(const float *p) { fb_vf v; memcpy(&v, p, sizeof v); return v; }
static inline void fb_vf_store(float *p, fb_vf v) { memcpy(p, &v, sizeof v); }
/* Batch norm's fused ReLU, element by element as PyTorch's CPU kernels: relu(v) is +0 where
 * v < 0 and v itself elsewhere (NaN and -0.0 kept: torch.relu(-0.0) is -0.0); relu_grad(dy, y) is
 * threshold_backward(dy, y, 0): +0 where y <= 0, dy elsewhere (also where y is NaN). */
typedef int32_t fb_vfi __attribute__((vector_size(FB_VBYTES)));
typedef int64_t fb_vdi __attribute__((vector_size(FB_VBYTES)));
static inline fb_vf fb_vf_relu(fb_vf v) { return (fb_vf)((fb_vfi)v & ~(fb_vfi)(v < (fb_vf){0})); }
static inline fb_vd fb_vd_relu(fb_vd v) { return (fb_vd)((fb_vdi)v & ~(fb_vdi)(v < (fb_vd){0})); }
/* dy loaded whole into a register: the compiler would otherwise fold the masks below into a
 * masked load of dy, and Zen 5's hardware prefetcher did not follow masked loads (measured) */
#if defined(__x86_64__) || defined(__i386__)
#define FB_IN_REG(v) __asm__("" : "+v"(v))
#else
#define FB_IN_REG(v) ((void)0)
#endif
static inline fb_vf fb_vf_relu_grad(fb_vf dy, fb_vf y)
{
    FB_IN_REG(dy);
    return (fb_vf)((fb_vfi)dy & ~(fb_vfi)(y <= (fb_vf){0}));
}
static inline fb_vd fb_vd_relu_grad(fb_vd dy, fb_vd y)
{
    FB_IN_REG(dy);
    return (fb_vd)((fb_vdi)dy & ~(fb_vdi)(y <= (fb_vd){0}));
}
/* fb_vd_relu_grad of FB_VD_W floats, widened.  AVX-512: y compared as float (the same answer)
 * and dy converted under the mask, the others +0 (as the AND): no conversion of y, no AND */
static inline fb_vd fb_vd_load_f32_rg(const float *dy, const float *y)
{
#if defined(__AVX512F__)
    __m256 d = _mm256_loadu_ps(dy);
    FB_IN_REG(d);
    const __mmask8 k = _mm256_cmp_ps_mask(_mm256_loadu_ps(y), _mm256_setzero_ps(), _CMP_NLE_UQ);
    return (fb_vd)_mm512_maskz_cvtps_pd(k, d);
#else
    return fb_vd_relu_grad(fb_vd_load_f32(dy), fb_vd_load_f32(y));
#endif
}
#if defined(__AVX512F__)
/* fb_vd_load_f32_rg, also storing y's mask as the byte *bits (fb_mask8_f32's): the compare's
 * mask itself, where the unfused loads took a second compare and a movemask */
static inline fb_vd fb_vd_load_f32_rgb(const float *dy, const float *y, unsigned char *bits)
{
    __m256 d = _mm256_loadu_ps(dy);
    FB_IN_REG(d);
    const __mmask8 k = _mm256_cmp_ps_mask(_mm256_loadu_ps(y), _mm256_setzero_ps(), _CMP_NLE_UQ);
    *bits = (unsigned char)k;
    return (fb_vd)_mm512_maskz_cvtps_pd(k, d);
}
#endif
/* a in lanes [0, n), b in the others (n >= 1): the coefficients of a vector that runs from one
 * channel into the next */
static inline fb_vf fb_vf_split(float a, float b, int64_t n)
{
#if defined(__AVX512F__)
    const __mmask16 m = n >= FB_VF_W ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    return (fb_vf)_mm512_mask_blend_ps(m, _mm512_set1_ps(b), _mm512_set1_ps(a));
#else
    fb_vfi lane;
    for (int i = 0; i < FB_VF_W; i++) lane[i] = i;
    const fb_vfi m = (fb_vfi)(lane < (fb_vfi){0} + (int32_t)(n < FB_VF_W ? n : FB_VF_W));
    return (fb_vf)(((fb_vfi)fb_vf_set1(a) & m) | ((fb_vfi)fb_vf_set1(b) & ~m));
#endif
}
static inline fb_vd fb_vd_split(double a, double b, int64_t n)
{
#if defined(__AVX512F__)
    const __mmask8 m = n >= FB_VD_W ? (__mmask8)0xFF : (__mmask8)((1u << n) - 1);
    return (fb_vd)_mm512_mask_blend_pd(m, _mm512_set1_pd(b), _mm512_set1_pd(a));
#else
    fb_vdi lane;
    for (int i = 0; i < FB_VD_W; i++) lane[i] = i;
    const fb_vdi m = (fb_vdi)(lane < (fb_vdi){0} + (n < FB_VD_W ? n : FB_VD_W));
    return (fb_vd)(((fb_vdi)fb_vd_set1(a) & m) | ((fb_vdi)fb_vd_set1(b) & ~m));
#endif
}
/* The first n values (0 < n <= FB_VD_W) as doubles, the other lanes 0, nothing past them read;
 * a + b in lanes [0, n) and a elsewhere, exactly: a run's last lane round in vectors, whose lanes
 * scalar adds left in memory for a wide load to stall on (store forwarding). */
static inline fb_vd fb_vd_load_f32_head(const float *p, int n)
{
#if defined(__AVX512F__)
    return (fb_vd)_mm512_cvtps_pd(_mm256_maskz_loadu_ps((__mmask8)((1u << n) - 1), p));
#elif defined(__AVX2__)
    const __m128i m = _mm_cmpgt_epi32(_mm_set1_epi32(n), _mm_setr_epi32(0, 1, 2, 3));
    return (fb_vd)_mm256_cvtps_pd(_mm_maskload_ps(p, m));
#else
    fb_vd r = {0};
    for (int i = 0; i < n; i++) r[i] = p[i];
    return r;
#endif
}
/* v's lanes added pairwise as fb_lanes_total's levels within a vector (lane i + h to lane i,
 * h = FB_VD_W / 2 down to 1), in registers. */
static inline double fb_vd_total(fb_vd v)
{
#if FB_VD_W == 8
    const double a0 = v[0] + v[4], a1 = v[1] + v[5], a2 = v[2] + v[6], a3 = v[3] + v[7];
    return (a0 + a2) + (a1 + a3);
#elif FB_VD_W == 4
    return (v[0] + v[2]) + (v[1] + v[3]);
#else
    return v[0] + v[1];
#endif
}
#if defined(__clang__)
#define FB_VD_SHUF(a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
#define FB_VD_SHUF(a, b, ...) __builtin_shuffle((a), (b), (fb_vdi){__VA_ARGS__})
#endif
/* fb_vd_total of FB_VD_W vectors at once, lane j that of v[j]: each level's additions as
 * fb_vd_total's, the vectors' lanes paired by shuffles instead of extracted one by one. */
static inline fb_vd fb_vd_totals(const fb_vd v[FB_VD_W])
{
#if FB_VD_W == 8
    /* pairs of vectors a lane i + 4 to i, pairs of those i + 2 to i, then i + 1 to i: vectors
     * p0..p7 come out in lanes p0 p2 p1 p3 p4 p6 p5 p7, so they go in in that order */
    fb_vd u[4], w[2];
    static const int in[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    for (int j = 0; j < 4; j++)
        u[j] = FB_VD_SHUF(v[in[2 * j]], v[in[2 * j + 1]], 0, 1, 2, 3, 8, 9, 10, 11) +
               FB_VD_SHUF(v[in[2 * j]], v[in[2 * j + 1]], 4, 5, 6, 7, 12, 13, 14, 15);
    for (int j = 0; j < 2; j++)
        w[j] = FB_VD_SHUF(u[2 * j], u[2 * j + 1], 0, 1, 8, 9, 4, 5, 12, 13) +
               FB_VD_SHUF(u[2 * j], u[2 * j + 1], 2, 3, 10, 11, 6, 7, 14, 15);
    return FB_VD_SHUF(w[0], w[1], 0, 2, 4, 6, 8, 10, 12, 14) +
           FB_VD_SHUF(w[0], w[1], 1, 3, 5, 7, 9, 11, 13, 15);
#elif FB_VD_W == 4
    const fb_vd u0 = FB_VD_SHUF(v[0], v[1], 0, 1, 4, 5) + FB_VD_SHUF(v[0], v[1], 2, 3, 6, 7);
    const fb_vd u1 = FB_VD_SHUF(v[2], v[3], 0, 1, 4, 5) + FB_VD_SHUF(v[2], v[3], 2, 3, 6, 7);
    return FB_VD_SHUF(u0, u1, 0, 2, 4, 6) + FB_VD_SHUF(u0, u1, 1, 3, 5, 7);
#else
    return FB_VD_SHUF(v[0], v[1], 0, 2) + FB_VD_SHUF(v[0], v[1], 1, 3);
#endif
}
static inline fb_vd fb_vd_add_head(fb_vd a, fb_vd b, int n)
{
#if defined(__AVX512F__)
    return (fb_vd)_mm512_mask_add_pd((__m512d)a, (__mmask8)((1u << n) - 1), (__m512d)a, (__m512d)b);
#else
    fb_vdi lane;
    for (int i = 0; i < FB_VD_W; i++) lane[i] = i;
    const fb_vdi m = (fb_vdi)(lane < (fb_vdi){0} + n);
    return (fb_vd)(((fb_vdi)(a + b) & m) | ((fb_vdi)a & ~m));
#endif
}
/* Lanes [sh, sh + k) of a vector (0 <= sh, 0 < k, sh + k <= the width) loaded from p[0..k), the
 * other lanes 0, and stored to p[0..k): nothing else read or written, so that a run's ends take
 * one vector, placed on the lanes a cache line gives them (a masked move that spills into the
 * next line, one being streamed, was 2-3x slower on Zen 5). */
#define FB_PART_BASE(p, sh) ((void *)((uintptr_t)(p) - (uintptr_t)(sh) * sizeof *(p)))
#if defined(__AVX2__) && !defined(__AVX512F__)
static inline __m256i fb_lanes8(int sh, int k)   /* all ones in the 32-bit lanes [sh, sh + k) */
{
    const __m256i i = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(sh), i),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(sh + k), i));
}
static inline __m256i fb_lanes4(int sh, int k)   /* the same of 64-bit lanes */
{
    const __m256i i = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_andnot_si256(_mm256_cmpgt_epi64(_mm256_set1_epi64x(sh), i),
                               _mm256_cmpgt_epi64(_mm256_set1_epi64x(sh + k), i));
}
#endif
static inline fb_vf fb_vf_load_part(const float *p, int sh, int k)
{
#if defined(__AVX512F__)
    return (fb_vf)_mm512_maskz_loadu_ps((__mmask16)(((1u << k) - 1) << sh), FB_PART_BASE(p, sh));
#elif defined(__AVX2__)
    return (fb_vf)_mm256_maskload_ps(FB_PART_BASE(p, sh), fb_lanes8(sh, k));
#else
    fb_vf r = {0};
    for (int i = 0; i < k; i++) r[sh + i] = p[i];
    return r;
#endif
}
static inline void fb_vf_store_part(float *p, fb_vf v, int sh, int k)
{
#if defined(__AVX512F__)
    _mm512_mask_storeu_ps(FB_PART_BASE(p, sh), (__mmask16)(((1u << k) - 1) << sh), (__m512)v);
#elif defined(__AVX2__)
    _mm256_maskstore_ps(FB_PART_BASE(p, sh), fb_lanes8(sh, k), (__m256)v);
#else
    for (int i = 0; i < k; i++) p[i] = v[sh + i];
#endif
}
static inline fb_vd fb_vd_load_f64_part(const double *p, int sh, int k)
{
#if defined(__AVX512F__)
    return (fb_vd)_mm512_maskz_loadu_pd((__mmask8)(((1u << k) - 1) << sh), FB_PART_BASE(p, sh));
#elif defined(__AVX2__)
    return (fb_vd)_mm256_maskload_pd(FB_PART_BASE(p, sh), fb_lanes4(sh, k));
#else
    fb_vd r = {0};
    for (int i = 0; i < k; i++) r[sh + i] = p[i];
    return r;
#endif
}
static inline void fb_vd_store_f64_part(double *p, fb_vd v, int sh, int k)
{
#if defined(__AVX512F__)
    _mm512_mask_storeu_pd(FB_PART_BASE(p, sh), (__mmask8)(((1u << k) - 1) << sh), (__m512d)v);
#elif defined(__AVX2__)
    _mm256_maskstore_pd(FB_PART_BASE(p, sh), fb_lanes4(sh, k), (__m256d)v);
#else
    for (int i = 0; i < k; i++) p[i] = v[sh + i];
#endif
}
/* relu_grad with the mask as bits (fb_mask_at): lane i keeps dy where bit i of m is set, else +0 */
static const int32_t fb_lane_bit32[16] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096,
                                          8192, 16384, 32768};
static const int64_t fb_lane_bit64[8] = {1, 2, 4, 8, 16, 32, 64, 128};
static inline fb_vf fb_vf_bits_grad(fb_vf dy, uint32_t m)
{
    fb_vfi sel;
    memcpy(&sel, fb_lane_bit32, sizeof sel);
    FB_IN_REG(dy);
    return (fb_vf)((fb_vfi)dy & ((((fb_vfi){0} + (int32_t)m) & sel) != 0));
}
static inline fb_vd fb_vd_bits_grad(fb_vd dy, uint32_t m)
{
    fb_vdi sel;
    memcpy(&sel, fb_lane_bit64, sizeof sel);
    FB_IN_REG(dy);
    return (fb_vd)((fb_vdi)dy & ((((fb_vdi){0} + (int64_t)m) & sel) != 0));
}

/* Non-temporal stores (p aligned to FB_VBYTES): outputs that do not fit in cache are written
 * without first reading their lines.  Ordered by fb_stream_fence() before a task ends. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FB_HAVE_STREAM 1
#if defined(__AVX512F__)
static inline void fb_vf_stream(float *p, fb_vf v) { _mm512_stream_ps(p, (__m512)v); }
static inline void fb_vd_stream(double *p, fb_vd v) { _mm512_stream_pd(p, (__m512d)v); }
#elif defined(__AVX__)
static inline void fb_vf_stream(float *p, fb_vf v) { _mm256_stream_ps(p, (__m256)v); }
static inline void fb_vd_stream(double *p, fb_vd v) { _mm256_stream_pd(p, (__m256d)v); }
#else
static inline void fb_vf_stream(float *p, fb_vf v) { _mm_stream_ps(p, (__m128)v); }
static inline void fb_vd_stream(double *p, fb_vd v) { _mm_stream_pd(p, (__m128d)v); }
#endif
static inline void fb_stream_fence(void) { _mm_sfence(); }
#else
#define FB_HAVE_STREAM 0
static inline void fb_vf_stream(float *p, fb_vf v) { memcpy(p, &v, sizeof v); }
static inline void fb_vd_stream(double *p, fb_vd v) { memcpy(p, &v, sizeof v); }
static inline void fb_stream_fence(void) {}
#endif

#else /* portable fallback */

#define FB_VD_W 2
#define FB_VF_W 4

typedef struct { double v[FB_VD_W]; } fb_vd;
typedef struct { float v[FB_VF_W]; } fb_vf;
#define FB_VD_OP(name, op)                                                                         \
    static inline fb_vd fb_vd_##name(fb_vd a, fb_vd b)                                            \
    {                                                                                              \
        for (int i = 0; i < FB_VD_W; i++) a.v[i] = a.v[i] op b.v[i];                              \
        return a;                                                                                  \
    }
#define FB_VF_OP(name, op)                                                                         \
    static inline fb_vf fb_vf_##name(fb_vf a, fb_vf b)                                            \
    {                                                                                              \
        for (int i = 0; i < FB_VF_W; i++) a.v[i] = a.v[i] op b.v[i];                              \
        return a;                                                                                  \
    }
FB_VD_OP(add, +) FB_VD_OP(sub, -) FB_VD_OP(mul, *)
static inline fb_vd fb_vd_add_m(fb_vd a, fb_vd b) { return fb_vd_add(a, b); }
FB_VF_OP(add, +) FB_VF_OP(sub, -) FB_VF_OP(mul, *)
static inline fb_vf fb_vf_fma(fb_vf a, fb_vf b, fb_vf c) { for (int i = 0; i < FB_VF_W; i++) a.v[i] = fmaf(a.v[i], b.v[i], c.v[i]); return a; }
static inline fb_vd fb_vd_fma(fb_vd a, fb_vd b, fb_vd c) { for (int i = 0; i < FB_VD_W; i++) a.v[i] = fma(a.v[i], b.v[i], c.v[i]); return a; }
static inline fb_vd fb_vd_set1(double a) { fb_vd r; for (int i = 0; i < FB_VD_W; i++) r.v[i] = a; return r; }
static inline fb_vd fb_vd_load_f64(const double *p) { fb_vd r; memcpy(r.v, p, sizeof r.v); return r; }
static inline fb_vd fb_vd_load_f32(const float *p) { fb_vd r; for (int i = 0; i < FB_VD_W; i++) r.v[i] = p[i]; return r; }
static inline void fb_vd_store_f64(double *p, fb_vd v) { memcpy(p, v.v, sizeof v.v); }
static inline void fb_vd_store_f32(float *p, fb_vd v) { for (int i = 0; i < FB_VD_W; i++) p[i] = (float)v.v[i]; }
static inline fb_vf fb_vf_set1(float a) { fb_vf r; for (int i = 0; i < FB_VF_W; i++) r.v[i] = a; return r; }
static inline fb_vf fb_vf_load(const float *p) { fb_vf r; memcpy(r.v, p, sizeof r.v); return r; }
static inline void fb_vf_store(float *p, fb_vf v) { memcpy(p, v.v, sizeof v.v); }
static inline int fb_vf_finite(fb_vf v) { int ok = 1; for (int i = 0; i < FB_VF_W; i++) ok &= v.v[i] - v.v[i] == 0.0f; return ok; }
static inline int fb_vd_finite(fb_vd v) { int ok = 1; for (int i = 0; i < FB_VD_W; i++) ok &= v.v[i] - v.v[i] == 0.0; return ok; }
static inline fb_vf fb_vf_relu(fb_vf v) { for (int i = 0; i < FB_VF_W; i++) v.v[i] = v.v[i] < 0.0f ? 0.0f : v.v[i]; return v; }
static inline fb_vd fb_vd_relu(fb_vd v) { for (int i = 0; i < FB_VD_W; i++) v.v[i] = v.v[i] < 0.0 ? 0.0 : v.v[i]; return v; }
static inline fb_vf fb_vf_relu_grad(fb_vf dy, fb_vf y) { for (int i = 0; i < FB_VF_W; i++) dy.v[i] = y.v[i] <= 0.0f ? 0.0f : dy.v[i]; return dy; }
static inline fb_vd fb_vd_relu_grad(fb_vd dy, fb_vd y) { for (int i = 0; i < FB_VD_W; i++) dy.v[i] = y.v[i] <= 0.0 ? 0.0 : dy.v[i]; return dy; }
static inline fb_vf fb_vf_bits_grad(fb_vf dy, uint32_t m) { for (int i = 0; i < FB_VF_W; i++) dy.v[i] = (m >> i) & 1 ? dy.v[i] : 0.0f; return dy; }
static inline fb_vd fb_vd_bits_grad(fb_vd dy, uint32_t m) { for (int i = 0; i < FB_VD_W; i++) dy.v[i] = (m >> i) & 1 ? dy.v[i] : 0.0; return dy; }
static inline fb_vf fb_vf_split(float a, float b, int64_t n) { fb_vf r; for (int i = 0; i < FB_VF_W; i++) r.v[i] = i < n ? a : b; return r; }
static inline fb_vd fb_vd_split(double a, double b, int64_t n) { fb_vd r; for (int i = 0; i < FB_VD_W; i++) r.v[i] = i < n ? a : b; return r; }
static inline fb_vd fb_vd_load_f32_head(const float *p, int n) { fb_vd r; for (int i = 0; i < FB_VD_W; i++) r.v[i] = i < n ? p[i] : 0.0; return r; }
static inline fb_vd fb_vd_add_head(fb_vd a, fb_vd b, int n) { for (int i = 0; i < n; i++) a.v[i] += b.v[i]; return a; }
static inline double fb_vd_total(fb_vd v) { return v.v[0] + v.v[1]; }
static inline fb_vd fb_vd_totals(const fb_vd v[FB_VD_W]) { fb_vd r; for (int j = 0; j < FB_VD_W; j++) r.v[j] = fb_vd_total(v[j]); return r; }
static inline fb_vf fb_vf_load_part(const float *p, int sh, int k) { fb_vf r = {{0}}; for (int i = 0; i < k; i++) r.v[sh + i] = p[i]; return r; }
static inline void fb_vf_store_part(float *p, fb_vf v, int sh, int k) { for (int i = 0; i < k; i++) p[i] = v.v[sh + i]; }
static inline fb_vd fb_vd_load_f64_part(const double *p, int sh, int k) { fb_vd r = {{0}}; for (int i = 0; i < k; i++) r.v[sh + i] = p[i]; return r; }
static inline void fb_vd_store_f64_part(double *p, fb_vd v, int sh, int k) { for (int i = 0; i < k; i++) p[i] = v.v[sh + i]; }
#define FB_HAVE_STREAM 0
#define FB_VBYTES 16
static inline void fb_vf_stream(float *p, fb_vf v) { fb_vf_store(p, v); }
static inline void fb_vd_stream(double *p, fb_vd v) { fb_vd_store_f64(p, v); }
static inline void fb_stream_fence(void) {}

#endif

/* A hint to fetch p's cache line; no effect on any result. */
#if defined(__GNUC__) || defined(__clang__)
#define fb_prefetch(p) __builtin_prefetch(p)
#define fb_prefetch_w(p) __builtin_prefetch((p), 1)   /* the line, for writing */
#define fb_prefetch_l2(p) __builtin_prefetch((p), 0, 2)   /* into L2, not L1 (prefetcht1) */
#else
#define fb_prefetch(p) ((void)0)
#define fb_prefetch_w(p) ((void)0)
#define fb_prefetch_l2(p) ((void)0)
#endif

/* The elements of an n-element array at p (elements of `size` bytes) before its first 64-byte
 * line boundary, at most n; 0 if its elements never align. */
static inline int64_t fb_line_head(const void *p, size_t size, int64_t n)
{
    const size_t off = (size_t)((uintptr_t)p % 64);
    const int64_t h = off % size ? 0 : (int64_t)((64 - off) % 64 / size);
    return h < n ? h : n;
}

/* Which elements of an n-element output at p to write with non-temporal stores: [*head, *stop),
 * whole 64-byte cache lines only.  A line streamed in part and then stored to normally (a run's
 * end) costs a partial write-combining flush and a read: on Zen 3 an output at 48 bytes past a
 * line made every kernel 1.1-1.85x slower.  0 if the elements never align. */
static inline int fb_stream_span(const void *p, size_t size, int64_t n, int64_t *head, int64_t *stop)
{
    if ((uintptr_t)p % size) return 0;
    const int64_t per = (int64_t)(64 / size);
    *head = fb_line_head(p, size, n);
    *stop = *head + (n - *head) / per * per;
    return 1;
}

/* The length of the call at element e of a run of n applied in calls of at most `span` from
 * h = fb_line_head on: up to h first (in calls of span), so that every later call starts a line. */
static inline int64_t fb_call_len(int64_t e, int64_t h, int64_t span, int64_t n)
{
    const int64_t w = e < h && h - e < span ? h - e : span;
    return w < n - e ? w : n - e;
}

/* Sum FB_LANES partial sums in a fixed pairwise order: lane i + h added to lane i for h = 16,
 * 8, 4, 2, 1, each level in vectors where it is wide enough (the same additions on every path).
 * Written out level by level: a loop over the levels stays scalar. */
#if FB_LANES != 32
#error "fb_lanes_total is written for 32 lanes"
#endif
#define FB_LANES_LEVEL(t, src, h)                                                                \
    do {                                                                                         \
        int i_ = 0;                                                                              \
        for (; i_ + FB_VD_W <= (h); i_ += FB_VD_W)                                               \
            fb_vd_store_f64((t) + i_, fb_vd_add(fb_vd_load_f64((src) + i_),                       \
                                                fb_vd_load_f64((src) + i_ + (h))));               \
        for (; i_ < (h); i_++) (t)[i_] = (src)[i_] + (src)[i_ + (h)];                            \
    } while (0)
static inline double fb_lanes_total(const double *acc)
{
    double t[16];
    FB_LANES_LEVEL(t, acc, 16);
    FB_LANES_LEVEL(t, t, 8);
    FB_LANES_LEVEL(t, t, 4);
    FB_LANES_LEVEL(t, t, 2);
    return t[0] + t[1];
}
#undef FB_LANES_LEVEL

/* Whether an elementwise pass writing out and reading in[0..k) (NULL entries skipped) should run
 * last element first.  A load whose address matches a pending non-temporal store's in its low 12
 * bits waits for that store (4K aliasing): running forward, the loads of in reach such a store
 * when out - in is a little above a multiple of 4096, backward when it is a little below.  At
 * out - in = 16 to 96 mod 4096 (16: adjacent heap blocks) batch norm and layer norm ran 1.4-2.5x
 * slower forward on Zen 1; from 128 on, running backward was the slower order (docs/performance.rst).
 * Only where fb_alias_reverse (cpu.h) says this CPU gains by it. */
#define FB_ALIAS_WINDOW 112
static inline int fb_run_reverse(const void *out, const void *const *in, int k)
{
    /* the nearest aliasing input either way (4096: none); the nearer one stalls longer */
    size_t fwd = 4096, rev = 4096;
    for (int j = 0; j < k; j++) {
        if (!in[j]) continue;
        const size_t d = (size_t)((uintptr_t)out - (uintptr_t)in[j]) % 4096;
        if (d != 0 && d <= FB_ALIAS_WINDOW && d < fwd) fwd = d;
        if (d >= 4096 - FB_ALIAS_WINDOW && 4096 - d < rev) rev = 4096 - d;
    }
    return fwd < rev;
}

/* FB_RUN_LOOP's placement flags of an output and its inputs: FB_RUN_REV, run last element first
 * (fb_run_reverse, where fb_alias_reverse); FB_RUN_HOLD, elsewhere in that case, store each pair
 * of vectors after the next pair's loads (FB_RUN_HELD); FB_RUN_APART, no input is the output
 * itself (not in place), so elements may be computed and dropped before their inputs are read
 * again. */
enum { FB_RUN_REV = 1, FB_RUN_APART = 2, FB_RUN_HOLD = 4 };
static inline int fb_run_place(const void *out, const void *const *in, int k)
{
    int apart = FB_RUN_APART;
    for (int j = 0; j < k; j++)
        if (in[j] == out) apart = 0;
    if (!fb_run_reverse(out, in, k)) return apart;
    return (fb_alias_reverse ? FB_RUN_REV : FB_RUN_HOLD) | apart;
}
#define FB_RUN_PLACE(out, ...) \
    fb_run_place((out), (const void *const[]){__VA_ARGS__}, \
                 (int)(sizeof((const void *const[]){__VA_ARGS__}) / sizeof(const void *)))

/* FB_RUN_PLACE, but last element first wherever an input lies in the window, whatever
 * fb_alias_reverse says: for a pass that still stalls forward with its pairs held (layer / RMS
 * norm's backward rows on Zen 5, 1.5x slower; docs/performance.rst). */
static inline int fb_place_reversed(int p)
{
    return (p & FB_RUN_HOLD) ? (p & ~FB_RUN_HOLD) | FB_RUN_REV : p;
}
#define FB_RUN_PLACE_REV(out, ...) fb_place_reversed(FB_RUN_PLACE(out, __VA_ARGS__))

/* The loop of every elementwise pass over n outputs at out: ONE(i) writes element i, PAIR(STORE,
 * i) the two vectors of the element type's FB_TV_W at i with STORE (FB_SV_STREAM on the whole
 * cache lines fb_stream_span gives when `stream`, FB_SV_STORE elsewhere). place (FB_RUN_PLACE,
 * only when `stream`): FB_RUN_REV, the same steps last first; FB_RUN_HOLD, where `held` (the PAIR
 * stores both vectors or neither), each pair stored after the next one's loads.  The parts --
 * singles [0, e), streamed lines [e, l), streamed pairs [a, b), stored pairs [b, c), singles
 * [c, n) -- run in a loop that takes them in either order, so every body is compiled once, not
 * once per direction.  The whole line the pairs leave over (an odd count of 64-byte lines) is
 * streamed too -- one whole line stored normally among streamed ones slows the whole pass
 * (docs/performance.rst) -- by PART where the loop has one (`parts`: FB_RUN_LOOP_P), else, forward
 * and FB_RUN_APART, by a first pair whose second vector is dropped (FB_SV_STREAM_BELOW; 1.2x
 * slower: batch norm at 14 x 14).  PART(LD, ST, i, sh, k) moves elements [i, i + k) through
 * lanes [sh, sh + k) of one vector with LD(p, sh, k) and ST(p, v, sh, k): a streamed line
 * (FB_LINE_LD / FB_LINE_ST), or where `ends`, the singles in masked vectors (FB_SV_LOAD_PART /
 * FB_SV_STORE_PART), the first ones ending where the streamed lines start.  Every element is
 * computed alone, so neither the order, a vector's width nor a dropped vector changes a bit. */
#define FB_SV_STREAM_BELOW(p, v) ((const char *)(p) < lim_ ? FB_SV_STREAM((p), (v)) : (void)0)
/* The forward pairs, each stored after the next pair's loads: an output a few vectors above an
 * input (modulo 4 KB: the heap places np.empty_like(x) 16 bytes above x) would otherwise have
 * every load wait on the store before it to the same low 12 address bits (4K aliasing; layer
 * norm's forward 1.3-1.5x slower on Zen 4).  For PAIRs that store both vectors or neither (a
 * pair redone element by element writes its own): FB_SV_HOLD keeps them, in call order. */
#define FB_SV_HOLD(p, v) (hn_++ ? (void)(hv1_ = (v)) : (void)(hv0_ = (v)))
#define FB_RUN_HELD(out, PAIR, STORE, i_, k_, d_)                                                \
    do {                                                                                         \
        FB_TV hv0_ = {0}, hv1_ = {0};                                                            \
        int hn_ = 0;                                                                             \
        int64_t hi_ = i_;                                                                        \
        for (; k_ > 0; k_--, i_ += d_) {                                                         \
            const FB_TV pv0_ = hv0_, pv1_ = hv1_;                                                \
            const int pn_ = hn_;                                                                 \
            const int64_t pi_ = hi_;                                                             \
            hn_ = 0, hi_ = i_;                                                                   \
            PAIR(FB_SV_HOLD, i_);                                                                \
            if (pn_) STORE((out) + pi_, pv0_), STORE((out) + pi_ + FB_TV_W, pv1_);               \
        }                                                                                        \
        if (hn_) STORE((out) + hi_, hv0_), STORE((out) + hi_ + FB_TV_W, hv1_);                   \
    } while (0)
#define FB_RUN_LOOP_P(stream, out, n, ONE, PAIR, PART, parts, ends, place, held)                 \
    do {                                                                                         \
        int64_t head_ = 0, stop_ = 0;                                                            \
        const int nt_ = (stream) && fb_stream_span((out), sizeof(*(out)), (n), &head_, &stop_);  \
        /* a partial last line is stored normally: fetched now, its store will not wait */       \
        if (nt_ && stop_ < (n)) fb_prefetch_w((out) + (n) - 1);                                  \
        const int pl_ = (stream) ? (place) : 0;                                                  \
        const int r_ = (pl_ & FB_RUN_REV) != 0;                                                  \
        const int64_t v2_ = 2 * FB_TV_W, odd_ = nt_ ? (stop_ - head_) % v2_ : 0;                 \
        const int64_t e_ = nt_ ? head_ : 0;                                                      \
        int64_t l_ = e_, a_ = e_, b_ = nt_ ? head_ + (stop_ - head_) / v2_ * v2_ : 0;            \
        int below_ = 0;   /* the odd line by a first pair whose second vector is dropped */      \
        if (odd_ && (parts)) l_ = a_ = head_ + odd_, b_ = stop_;                                 \
        else if (odd_ && !r_ && (pl_ & FB_RUN_APART) && head_ + v2_ <= (n))                      \
            a_ = head_ + odd_, b_ = stop_, below_ = 1;                                           \
        const int64_t c_ = b_ + ((n) - b_) / v2_ * v2_;                                          \
        const int64_t from_[5] = {0, e_, a_, b_, c_}, to_[5] = {e_, l_, b_, c_, (n)};            \
        for (int p_ = 0; p_ < 5; p_++) {                                                         \
            const int q_ = r_ ? 4 - p_ : p_;                                                     \
            const int64_t lo_ = from_[q_], hi_ = to_[q_];                                        \
            if (q_ == 1) {                                                                       \
                if (below_) {                                                                    \
                    const char *lim_ = (const char *)((out) + a_);                               \
                    PAIR(FB_SV_STREAM_BELOW, e_);   /* the lines [e_, a_) */                     \
                }                                                                                \
                for (int64_t i_ = lo_; i_ < hi_; i_ += FB_TV_W)                                  \
                    PART(FB_LINE_LD, FB_LINE_ST, i_, 0, FB_TV_W);                                \
            } else if ((q_ == 0 || q_ == 4) && (parts) && (ends)) {                              \
                if (q_ == 0)                                                                     \
                    for (int64_t z_ = hi_; z_ > lo_; z_ -= FB_TV_W) {                            \
                        const int64_t at_ = z_ - FB_TV_W > lo_ ? z_ - FB_TV_W : lo_;             \
                        const int sh_ = (int)(at_ - (z_ - FB_TV_W));                             \
                        PART(FB_SV_LOAD_PART, FB_SV_STORE_PART, at_, sh_, (int)(z_ - at_));      \
                    }                                                                            \
                else for (int64_t at_ = lo_; at_ < hi_; at_ += FB_TV_W) {                        \
                    const int k_ = hi_ - at_ < FB_TV_W ? (int)(hi_ - at_) : FB_TV_W;             \
                    PART(FB_SV_LOAD_PART, FB_SV_STORE_PART, at_, 0, k_);                         \
                }                                                                                \
            } else if (q_ == 0 || q_ == 4) {                                                     \
                const int64_t d_ = r_ ? -1 : 1;                                                  \
                int64_t i_ = r_ ? hi_ - 1 : lo_;                                                 \
                for (int64_t k_ = hi_ - lo_; k_ > 0; k_--, i_ += d_) ONE(i_);                    \
            } else {                                                                             \
                const int64_t d_ = r_ ? -v2_ : v2_;                                              \
                int64_t i_ = r_ ? hi_ - v2_ : lo_;                                               \
                int64_t k_ = (hi_ - lo_) / v2_;                                                  \
                if (r_ || !(held) || !(pl_ & FB_RUN_HOLD)) {                                     \
                    if (q_ == 2) for (; k_ > 0; k_--, i_ += d_) PAIR(FB_SV_STREAM, i_);          \
                    else for (; k_ > 0; k_--, i_ += d_) PAIR(FB_SV_STORE, i_);                   \
                } else if (q_ == 2) FB_RUN_HELD(out, PAIR, FB_SV_STREAM, i_, k_, d_);            \
                else FB_RUN_HELD(out, PAIR, FB_SV_STORE, i_, k_, d_);                            \
            }                                                                                    \
        }                                                                                        \
    } while (0)
/* PART's moves of a whole streamed line (sh 0, k the width) */
#define FB_LINE_LD(p, sh, k) FB_SV_LOAD(p)
#define FB_LINE_ST(p, v, sh, k) FB_SV_STREAM((p), (v))
#define FB_NO_PART(LD, ST, i, sh, k) ((void)(i), (void)(sh), (void)(k))
#define FB_RUN_LOOP(stream, out, n, ONE, PAIR, place) \
    FB_RUN_LOOP_P(stream, out, n, ONE, PAIR, FB_NO_PART, 0, 0, place, 0)

/* Two vectors of doubles rounded to one of floats (in registers: a store of each half and a
 * load of the whole would stall store forwarding). */
static inline fb_vf fb_vf_from_vd(fb_vd a, fb_vd b)
{
#if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX512F__)
    return (fb_vf)_mm512_insertf64x4(_mm512_castpd256_pd512((__m256d)_mm512_cvtpd_ps((__m512d)a)),
                                     (__m256d)_mm512_cvtpd_ps((__m512d)b), 1);
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__AVX__)
    return (fb_vf)_mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps((__m256d)a)),
                                       _mm256_cvtpd_ps((__m256d)b), 1);
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__SSE2__)
    return (fb_vf)_mm_movelh_ps(_mm_cvtpd_ps((__m128d)a), _mm_cvtpd_ps((__m128d)b));
#else
    fb_vf r;
    float t[FB_VF_W];
    fb_vd_store_f32(t, a), fb_vd_store_f32(t + FB_VD_W, b);
    memcpy(&r, t, sizeof r);
    return r;
#endif
}

/* The fused backward's mask of y as bits, element 8j + k at bit k of byte j: set where
 * relu_grad keeps dy, !(y <= 0) (NaN included).  fb_mask8_f32: the byte of eight floats. */
static inline unsigned fb_mask8_f32(const float *y)
{
#if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX__)
    return (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(y), _mm256_setzero_ps(),
                                                      _CMP_NLE_UQ));
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__SSE2__)
    const __m128 z = _mm_setzero_ps();
    return (unsigned)(_mm_movemask_ps(_mm_cmpnle_ps(_mm_loadu_ps(y), z)) |
                      _mm_movemask_ps(_mm_cmpnle_ps(_mm_loadu_ps(y + 4), z)) << 4);
#else
    unsigned b = 0;
    for (int k = 0; k < 8; k++) b |= (unsigned)!(y[k] <= 0.0f) << k;
    return b;
#endif
}
static inline unsigned fb_mask8_f64(const double *y)
{
#if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX__)
    const __m256d z = _mm256_setzero_pd();
    const __m256d lo = _mm256_cmp_pd(_mm256_loadu_pd(y), z, _CMP_NLE_UQ);
    const __m256d hi = _mm256_cmp_pd(_mm256_loadu_pd(y + 4), z, _CMP_NLE_UQ);
    return (unsigned)(_mm256_movemask_pd(lo) | _mm256_movemask_pd(hi) << 4);
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__SSE2__)
    const __m128d z = _mm_setzero_pd();
    unsigned b = 0;
    for (int k = 0; k < 8; k += 2)
        b |= (unsigned)_mm_movemask_pd(_mm_cmpnle_pd(_mm_loadu_pd(y + k), z)) << k;
    return b;
#else
    unsigned b = 0;
    for (int k = 0; k < 8; k++) b |= (unsigned)!(y[k] <= 0.0) << k;
    return b;
#endif
}

/* Bits b, b + 1, ... of a mask in the low bits of the result (25 of them at least: 4 bytes are
 * read from byte b / 8). */
static inline uint32_t fb_mask_at(const unsigned char *bits, int64_t b)
{
    const unsigned char *p = bits + (b >> 3);
    return ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24) >>
           (b & 7);
}

#endif /* FASTBN_SIMD_H */
