/*
 * bandwidth.c -- what this machine's memory gives one and two threads, for the access patterns
 * of fastbn's passes; the ceiling of their thread scaling.  Not part of the package.
 *
 *     cc -O2 -mavx2 -pthread tools/bandwidth.c -o /tmp/bandwidth && /tmp/bandwidth
 *
 * Each pattern runs over a float32 tensor of the benchmark report -- (32, 64, 56, 56), then
 * (4096, 1024) -- and a second and third array of that size: one thread over all of it, then two
 * threads over a half each (started and joined per run); every pattern and thread count in turn,
 * run by run, 41 runs, medians.  Outputs use non-temporal stores, as fastbn's large outputs do.
 * "backward: both passes" is a whole backward's traffic, its two passes back to back (each
 * thread's second pass starts when its own first pass ends, with no barrier between the
 * threads): the floor under fastbn's batch_norm_backward, and under any implementation that reads
 * x and dy twice.  "per slab" reads each 401 KB slab, then writes y from it while it is in L2:
 * the floor of a two-pass kernel blocked to L2 (batch norm's NCHW training forward), x and y
 * crossing memory once each, but one after the other.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { READ1, READ2, READ1_WRITE1, READ2_WRITE1, BACKWARD, SLABS, N_PATTERNS };
static const char *NAMES[N_PATTERNS] = {
    "read x (statistics)", "read x, dy (backward sums)", "read x, write y (normalize)",
    "read x, dy, write dx (backward apply)", "backward: both passes",
    "per slab: read x, then write y"};
static const int STREAMS[N_PATTERNS] = {1, 2, 2, 3, 5, 2};
/* The last pattern's slab: one channel of (32, 64, 56, 56), 401 KB, read and then normalized from
 * L2 (as a cache-blocked training forward): its own floor, x and y each crossing memory once. */
#define SLAB ((size_t)32 * 56 * 56)

typedef struct {
    const float *a, *b;
    float *out;
    size_t n;
    int pattern;
    float sink;
} job;

static void *run(void *p)
{
    job *j = (job *)p;
    if (j->pattern == BACKWARD) {
        job pass = *j;
        pass.pattern = READ2, run(&pass);
        pass.pattern = READ2_WRITE1, run(&pass);
        j->sink = pass.sink;
        return NULL;
    }
    if (j->pattern == SLABS) {
        job pass = *j;
        for (size_t s = 0; s < j->n; s += SLAB) {
            pass.a = j->a + s, pass.out = j->out + s, pass.n = j->n - s < SLAB ? j->n - s : SLAB;
            pass.pattern = READ1, run(&pass);
            pass.pattern = READ1_WRITE1, run(&pass);
        }
        j->sink = pass.sink;
        return NULL;
    }
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < j->n; i += 8) {
        __m256 v = _mm256_load_ps(j->a + i);
        if (j->pattern == READ2 || j->pattern == READ2_WRITE1) v = _mm256_add_ps(v, _mm256_load_ps(j->b + i));
        if (j->pattern >= READ1_WRITE1) _mm256_stream_ps(j->out + i, v);
        else acc = _mm256_add_ps(acc, v);
    }
    _mm_sfence();
    float t[8];
    _mm256_storeu_ps(t, acc);
    j->sink = t[0];
    return NULL;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *x, const void *y)
{
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Every pattern over arrays of n floats, one thread and two: 0, or 1 if memory or a thread failed. */
static int report(const char *name, size_t n)
{
    enum { RUNS = 41 };
    const size_t bytes = n * sizeof(float);
    float *a = aligned_alloc(64, bytes), *b = aligned_alloc(64, bytes), *out = aligned_alloc(64, bytes);
    int failed = !a || !b || !out;
    if (!failed) memset(a, 0, bytes), memset(b, 0, bytes), memset(out, 0, bytes);
    printf("%s float32\n%-40s %21s %21s %8s\n", name, "pattern", "1 thread", "2 threads", "scaling");
    static double t[N_PATTERNS][3][RUNS];
    for (int r = 0; r < RUNS && !failed; r++)   /* the patterns interleaved, run by run */
        for (int p = 0; p < N_PATTERNS && !failed; p++)
            for (int T = 1; T <= 2; T++) {
                job jobs[2];
                pthread_t th;
                for (int k = 0; k < T; k++)
                    jobs[k] = (job){a + n / T * k, b + n / T * k, out + n / T * k, n / T, p, 0.0f};
                const double t0 = now();
                if (T == 2 && pthread_create(&th, NULL, run, &jobs[1]) != 0) {
                    failed = 1;
                    break;
                }
                run(&jobs[0]);
                if (T == 2) pthread_join(th, NULL);
                t[p][T][r] = now() - t0;
            }
    for (int p = 0; p < N_PATTERNS && !failed; p++) {
        qsort(t[p][1], RUNS, sizeof(double), cmp);
        qsort(t[p][2], RUNS, sizeof(double), cmp);
        const double moved = (double)STREAMS[p] * (double)bytes, t1 = t[p][1][RUNS / 2];
        const double t2 = t[p][2][RUNS / 2];
        printf("%-40s %6.3f ms %5.1f GB/s %6.3f ms %5.1f GB/s %7.2fx\n", NAMES[p], t1 * 1e3,
               moved / t1 / 1e9, t2 * 1e3, moved / t2 / 1e9, t1 / t2);
    }
    free(a), free(b), free(out);
    return failed;
}

int main(void)
{
    return report("(32, 64, 56, 56)", (size_t)32 * 64 * 56 * 56) || report("(4096, 1024)", (size_t)4096 * 1024);
}
