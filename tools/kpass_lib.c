/*
 * kpass_lib.c -- one tree's batch-norm kernels (float32, AVX2, one thread) as a shared library
 * for tools/kpass.c, its passes timed one by one (k_phase, ms).  Build one per tree to compare:
 *
 *   gcc -O3 -ffp-contract=off -fno-math-errno -mavx2 -mfma -DFB_ISA_SUFFIX=_avx2 -fPIC -shared \
 *       -I<tree> tools/kpass_lib.c -o /tmp/new.so -lm
 */
#define _POSIX_C_SOURCE 199309L
#include <time.h>

#include "csrc/batchnorm_kernels.c"   /* of the tree given by -I: its static passes included */

/* cpu.c's run-order rule (csrc/simd.h), off: the forward order */
int fb_alias_reverse = 0;
/* cpu.c's choice of the statistics' vector width (csrc/cpu.h): -DFB_NARROW=1 for the narrow one */
#ifndef FB_NARROW
#define FB_NARROW 0
#endif
int fb_narrow_sums = FB_NARROW;
/* cpu.c's prefetch switches (csrc/cpu.h), on as cpu.c sets them outside Zen 3 and Zen 5 */
int fb_first_prefetch = 1;
int fb_grad_prefetch = 1;

/* Each pass's time in the last call (ms). */
double k_phase[8];

/* The phases on the calling thread, each timed (replaces parallel.c's). */
void fb_parallel_phases(const fb_phase *phases, int n_phases, int n_threads)
{
    (void)n_threads;
    for (int ph = 0; ph < n_phases && ph < 8; ph++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int64_t t = 0; t < phases[ph].n_tasks; t++) phases[ph].fn(phases[ph].ctx, t);
        if (phases[ph].then) phases[ph].then(phases[ph].ctx);
        clock_gettime(CLOCK_MONOTONIC, &b);
        k_phase[ph] = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) * 1e-6;
    }
}

int k_train(const float *x, float *y, int64_t R, int64_t C, int64_t inner, const float *g,
            const float *b, double *m, double *v, double *i)
{
    return train_f32(x, y, R, C, inner, g, b, 1e-5, m, v, i, NULL, 0, 1);
}

int k_infer(const float *x, float *y, int64_t R, int64_t C, int64_t inner, const float *rm,
            const float *rv, const float *g, const float *b)
{
    return infer_f32(x, y, R, C, inner, rm, rv, g, b, 1e-5, NULL, 0, 1);
}

int k_backward(const float *dy, const float *x, float *dx, int64_t R, int64_t C, int64_t inner,
               const double *m, const double *i, const float *g, double *dg, double *db)
{
    return backward_f32(dy, x, dx, R, C, inner, m, i, g, dg, db, NULL, NULL, 1);
}
