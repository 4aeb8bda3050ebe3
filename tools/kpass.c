/*
 * kpass.c -- per-pass timings of batch norm's kernels from several builds (tools/kpass_lib.c),
 * interleaved call by call: the way to compare two versions on a shared, noisy machine.
 *
 *   gcc -O2 tools/kpass.c -o /tmp/kpass -ldl
 *   OPS=012 PCT=0.5 OFF=0 /tmp/kpass R C inner state rounds ./old.so ./new.so
 *
 * HUGE=0: the tensors on 4 KB pages (default: 2 MB pages, as NumPy's); HUGE=2: both, interleaved
 * (each library timed on a set of tensors of each kind; a heap reused by glibc often has 4 KB pages).
 * state 0: back to back (each call made twice, the second timed); 1: cold (96 MB written first).
 * OPS: which of train (0), infer (1), backward (2).  PCT: the quantile shown (0.5, the median).
 * Columns: total, then passes 0-2 (ms): for the rows path the reduction, the finish, the apply.
 */
#define _DEFAULT_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

typedef int (*train_fn)(const float *, float *, int64_t, int64_t, int64_t, const float *,
                        const float *, double *, double *, double *);
typedef int (*infer_fn)(const float *, float *, int64_t, int64_t, int64_t, const float *,
                        const float *, const float *, const float *);
typedef int (*backward_fn)(const float *, const float *, float *, int64_t, int64_t, int64_t,
                           const double *, const double *, const float *, double *, double *);

static double now_ms(void)
{
    struct timespec a;
    clock_gettime(CLOCK_MONOTONIC, &a);
    return a.tv_sec * 1e3 + a.tv_nsec * 1e-6;
}

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A tensor on 2 MB pages (transparent huge pages) as NumPy asks for its large arrays, or on 4 KB
 * pages (`huge` 0), as memory nobody asked that for. */
static void *big_alloc(size_t bytes, int huge)
{
    const size_t page = (size_t)2 << 20, size = (bytes + page - 1) / page * page;
    void *p = aligned_alloc(page, size);
    if (p) madvise(p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    return p;
}

#define MAX_LIBS 4
#define MAX_ROUNDS 201

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s R C inner state rounds lib.so...\n", argv[0]);
        return 2;
    }
    const int64_t R = atoll(argv[1]), C = atoll(argv[2]), inner = atoll(argv[3]);
    const int cold = atoi(argv[4]);
    int rounds = atoi(argv[5]), nl = argc - 6;
    if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
    if (nl > MAX_LIBS) nl = MAX_LIBS;
    const char *ops = getenv("OPS") ? getenv("OPS") : "012";
    const double pct = getenv("PCT") ? atof(getenv("PCT")) : 0.5;
    train_fn tr[MAX_LIBS];
    infer_fn in[MAX_LIBS];
    backward_fn bw[MAX_LIBS];
    const double *phase[MAX_LIBS];
    for (int l = 0; l < nl; l++) {
        void *h = dlopen(argv[6 + l], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "%s\n", dlerror());
            return 1;
        }
        tr[l] = (train_fn)dlsym(h, "k_train");
        in[l] = (infer_fn)dlsym(h, "k_infer");
        bw[l] = (backward_fn)dlsym(h, "k_backward");
        phase[l] = (const double *)dlsym(h, "k_phase");
    }
    const int64_t n = R * C * inner;
    /* OFF: bytes (a multiple of 4) past a 64-byte boundary where x, dy and y start: NumPy's
     * large arrays start 16 bytes into a page */
    const size_t off = getenv("OFF") ? (size_t)atoi(getenv("OFF")) : 0;
    const int hp = getenv("HUGE") ? atoi(getenv("HUGE")) : 1, ns = hp == 2 ? 2 : 1;
    float *xs[2], *dys[2], *ys[2];
    for (int s = 0; s < ns; s++) {
        const int huge = hp == 2 ? s == 0 : hp != 0;
        float *x = xs[s] = (float *)((char *)big_alloc(n * 4 + 64, huge) + off);
        float *dy = dys[s] = (float *)((char *)big_alloc(n * 4 + 64, huge) + off);
        float *y = ys[s] = (float *)((char *)big_alloc(n * 4 + 64, huge) + off);
        for (int64_t i = 0; i < n; i++) {
            x[i] = (float)((i * 7919) % 1000) * 0.01f + 3;
            dy[i] = (float)((i * 31) % 97) * 0.01f - 0.5f;
            y[i] = 0;
        }
    }
    const size_t flush_bytes = (size_t)96 << 20;
    char *flush = malloc(flush_bytes);
    memset(flush, 1, flush_bytes);
    double *m = malloc(C * 8), *v = malloc(C * 8), *iv = malloc(C * 8), *dg = malloc(C * 8);
    double *db = malloc(C * 8);
    float *g = malloc(C * 4), *b = malloc(C * 4), *rm = malloc(C * 4), *rv = malloc(C * 4);
    for (int64_t c = 0; c < C; c++) g[c] = 1, b[c] = 0, rm[c] = 3, rv[c] = 1;
    tr[0](xs[0], ys[0], R, C, inner, g, b, m, v, iv);   /* mean and invstd for backward */
    static double t[2 * MAX_LIBS][3][4][MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        for (int op = 0; op < 3; op++)
            for (int ls = 0; ls < nl * ns && strchr(ops, '0' + op); ls++)
                for (int rep = 0; rep < (cold ? 1 : 2); rep++) {
                    const int l = ls / ns, s = ls % ns;
                    const float *x = xs[s], *dy = dys[s];
                    float *y = ys[s];
                    if (cold) memset(flush, r + l, flush_bytes);
                    const double a = now_ms();
                    if (op == 0) tr[l](x, y, R, C, inner, g, b, m, v, iv);
                    else if (op == 1) in[l](x, y, R, C, inner, rm, rv, g, b);
                    else bw[l](dy, x, y, R, C, inner, m, iv, g, dg, db);
                    t[ls][op][0][r] = now_ms() - a;
                    for (int p = 0; p < 3; p++) t[ls][op][p + 1][r] = op == 1 ? 0 : phase[l][p];
                }
    const char *names[3] = {"train", "infer", "backward"};
    for (int op = 0; op < 3; op++)
        for (int ls = 0; ls < nl * ns && strchr(ops, '0' + op); ls++) {
            const int l = ls / ns, huge = hp == 2 ? ls % ns == 0 : hp != 0;
            printf("%-9s %-22s %s", names[op], argv[6 + l], huge ? "2M" : "4K");
            for (int p = 0; p < 4; p++) {
                qsort(t[ls][op][p], rounds, sizeof(double), cmp);
                printf(" %7.3f", t[ls][op][p][(int)(rounds * pct)]);
            }
            printf("\n");
        }
    return 0;
}
