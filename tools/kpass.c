/*
 * kpass.c -- per-pass timings of batch norm's kernels from several builds (tools/kpass_lib.c),
 * interleaved call by call, medians: the way to compare two versions on a shared, noisy machine.
 *
 *   gcc -O2 tools/kpass.c -o /tmp/kpass -ldl
 *   OPS=012 /tmp/kpass R C inner state rounds ./old.so ./new.so
 *
 * state 0: back to back (each call made twice, the second timed); 1: cold (96 MB written first).
 * OPS: which of train (0), infer (1), backward (2).  Columns: total, then passes 0-2 (ms).
 */
#define _POSIX_C_SOURCE 199309L
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
typedef int (*trf)(const float *, float *, int64_t, int64_t, int64_t, const float *, const float *, double *, double *, double *);
typedef int (*inf)(const float *, float *, int64_t, int64_t, int64_t, const float *, const float *, const float *, const float *);
typedef int (*bwf)(const float *, const float *, float *, int64_t, int64_t, int64_t, const double *, const double *, const float *, double *, double *);
static double now(void){struct timespec a;clock_gettime(CLOCK_MONOTONIC,&a);return a.tv_sec*1e3+a.tv_nsec*1e-6;}
static int cmp(const void *a, const void *b){double x=*(const double*)a,y=*(const double*)b;return x<y?-1:x>y;}
#define NL 4
#define RMAX 201
int main(int argc, char **argv)
{
    /* drv R C inner state(0 b2b,1 cold) rounds lib1 lib2 ... */
    int64_t R = atoll(argv[1]), C = atoll(argv[2]), inner = atoll(argv[3]);
    int cold = atoi(argv[4]), rounds = atoi(argv[5]), nl = argc - 6;
    trf tr[NL]; inf in[NL]; bwf bw[NL]; double *ph[NL];
    for (int l = 0; l < nl; l++) {
        void *h = dlopen(argv[6 + l], RTLD_NOW | RTLD_LOCAL);
        if (!h) { printf("%s\n", dlerror()); return 1; }
        tr[l] = (trf)dlsym(h, "k_train"); in[l] = (inf)dlsym(h, "k_infer"); bw[l] = (bwf)dlsym(h, "k_backward");
        ph[l] = (double *)dlsym(h, "k_phase");
    }
    int64_t n = R * C * inner;
    float *x = aligned_alloc(64, n * 4), *dy = aligned_alloc(64, n * 4), *y = aligned_alloc(64, n * 4);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 7919) % 1000) * 0.01f + 3, dy[i] = (float)((i * 31) % 97) * 0.01f - 0.5f, y[i] = 0;
    size_t fl = 96u << 20; char *flush = malloc(fl); memset(flush, 1, fl);
    double *m = malloc(C * 8), *v = malloc(C * 8), *iv = malloc(C * 8), *dg = malloc(C * 8), *db = malloc(C * 8);
    float *g = malloc(C * 4), *b = malloc(C * 4), *rm = malloc(C * 4), *rv = malloc(C * 4);
    for (int64_t c = 0; c < C; c++) g[c] = 1, b[c] = 0, rm[c] = 3, rv[c] = 1;
    tr[0](x, y, R, C, inner, g, b, m, v, iv);
    static double t[NL][3][4][RMAX];
    const char *ops = getenv("OPS") ? getenv("OPS") : "012";
    for (int r = 0; r < rounds; r++)
        for (int op = 0; op < 3; op++)
            for (int l = 0; l < nl && strchr(ops, '0' + op); l++) {
                for (int rep = 0; rep < (cold ? 1 : 2); rep++) {
                    if (cold) memset(flush, r + l, fl);
                    double a = now();
                    if (op == 0) tr[l](x, y, R, C, inner, g, b, m, v, iv);
                    else if (op == 1) in[l](x, y, R, C, inner, rm, rv, g, b);
                    else bw[l](dy, x, y, R, C, inner, m, iv, g, dg, db);
                    t[l][op][0][r] = now() - a;
                    for (int p = 0; p < 3; p++) t[l][op][p + 1][r] = op == 1 ? 0 : ph[l][p];
                }
            }
    const char *nm[3] = {"train", "infer", "backward"};
    for (int op = 0; op < 3; op++)
        for (int l = 0; l < nl && strchr(ops, '0' + op); l++) {
            printf("%-9s %-22s", nm[op], argv[6 + l]);
            for (int p = 0; p < 4; p++) { qsort(t[l][op][p], rounds, 8, cmp); printf(" %7.3f", t[l][op][p][rounds / 2]); }
            printf("\n");
        }
    return 0;
}
