/*
 * rowpass.c -- what one core draws with layer norm backward's memory pattern, without its float64
 * work: per pair of rows, a pass reading x and dy, then a pass reading them again (from L1) and
 * streaming dx.  Against one pass (read x and dy, stream dx) it shows what the second pass costs.
 *
 *   gcc -O2 -mavx512f -mavx512dq tools/rowpass.c -o /tmp/rowpass && /tmp/rowpass 8192 768
 *
 * Patterns: 1 two passes a pair; 2 one pass; 3 two passes, the first prefetching 8 KB ahead into
 * L2; 4 two passes interleaved (a pair's second pass in the loop of the next pair's first).
 * Each timed back to back (after an untimed call) and cold (96 MB written first): medians of 31,
 * the patterns interleaved.  rows must be even and a row a multiple of 16 floats.
 */
#define _ISOC11_SOURCE
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 31
#define FLUSH_BYTES ((size_t)96 << 20)

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the first pass over n floats of x and dy: a product summed, so that the loads are kept */
static __m512 sums(const float *x, const float *dy, long n, __m512 acc, int prefetch)
{
    for (long i = 0; i < n; i += 16) {
        if (prefetch) {
            _mm_prefetch((const char *)(x + i) + 8192, _MM_HINT_T1);
            _mm_prefetch((const char *)(dy + i) + 8192, _MM_HINT_T1);
        }
        acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_load_ps(x + i), _mm512_load_ps(dy + i)));
    }
    return acc;
}

/* the second pass: dx = x + dy, streamed */
static void apply(const float *x, const float *dy, float *dx, long n)
{
    for (long i = 0; i < n; i += 16)
        _mm512_stream_ps(dx + i, _mm512_add_ps(_mm512_load_ps(x + i), _mm512_load_ps(dy + i)));
}

static float run(const float *x, const float *dy, float *dx, long rows, long len, int pattern)
{
    const long pair = 2 * len;
    __m512 acc = _mm512_setzero_ps();
    if (pattern == 2) {
        apply(x, dy, dx, rows * len);
    } else if (pattern == 4) {
        acc = sums(x, dy, pair, acc, 0);
        for (long r = 0; r < rows; r += 2) {
            const float *xr = x + r * len, *gr = dy + r * len;
            for (long i = 0; i < pair; i += 16) {
                if (r + 2 < rows)
                    acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_load_ps(xr + pair + i),
                                                           _mm512_load_ps(gr + pair + i)));
                _mm512_stream_ps(dx + r * len + i,
                                 _mm512_add_ps(_mm512_load_ps(xr + i), _mm512_load_ps(gr + i)));
            }
        }
    } else {
        for (long r = 0; r < rows; r += 2) {
            acc = sums(x + r * len, dy + r * len, pair, acc, pattern == 3);
            apply(x + r * len, dy + r * len, dx + r * len, pair);
        }
    }
    _mm_sfence();
    return _mm512_reduce_add_ps(acc);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s rows row_length\n", argv[0]);
        return 2;
    }
    const long rows = atol(argv[1]), len = atol(argv[2]);
    if (rows < 2 || rows % 2 || len < 16 || len % 16) {
        fprintf(stderr, "rows: even, at least 2; row_length: a multiple of 16\n");
        return 2;
    }
    const size_t n = (size_t)rows * (size_t)len, bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *x = aligned_alloc(64, bytes), *dy = aligned_alloc(64, bytes);
    float *dx = aligned_alloc(64, bytes);
    char *flush = malloc(FLUSH_BYTES);
    if (!x || !dy || !dx || !flush) return 1;
    for (size_t i = 0; i < n; i++) x[i] = (float)(i % 7), dy[i] = (float)(i % 5), dx[i] = 0.0f;
    static double t[5][2][ROUNDS];
    volatile float sink = 0.0f;   /* the sums stored, so that their loads are kept */
    for (int k = 0; k < ROUNDS; k++)
        for (int p = 1; p <= 4; p++)
            for (int cold = 0; cold < 2; cold++) {
                if (cold) memset(flush, k + p, FLUSH_BYTES);
                else sink += run(x, dy, dx, rows, len, p);
                const double t0 = now_ms();
                sink += run(x, dy, dx, rows, len, p);
                t[p][cold][k] = now_ms() - t0;
            }
    static const char *names[5] = {"", "two passes", "one pass", "two, prefetch",
                                   "two, interleaved"};
    for (int p = 1; p <= 4; p++)
        for (int cold = 0; cold < 2; cold++) {
            qsort(t[p][cold], ROUNDS, sizeof(double), cmp);
            printf("%-17s %-4s %.3f ms\n", names[p], cold ? "cold" : "b2b", t[p][cold][ROUNDS / 2]);
        }
    return 0;
}
