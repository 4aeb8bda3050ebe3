/* init.c -- the public initializer entry points: instruction-set dispatch (compiled once). */
#include "init.h"
#include "cpu.h"

FB_ISA_DISPATCH(fb_init, fb_init_table)

#define FB_INIT_DEFINE(T, DT)                                                                      \
    fb_status fb_init_fill_##DT(T *out, int64_t n, int law, const uint32_t seed[4],              \
                                const double *params, int n_threads)                             \
    {                                                                                            \
        return fb_init->fill_##DT(out, n, law, seed, params, n_threads);                         \
    }                                                                                            \
    fb_status fb_init_eval_##DT(int fn, const T *x, T *y, int64_t n)                             \
    {                                                                                            \
        return fb_init->eval_##DT(fn, x, y, n);                                                  \
    }

FB_INIT_DEFINE(float, f32)
FB_INIT_DEFINE(double, f64)

#define FB_INIT_DEFINE_HALF(DT)                                                                    \
    fb_status fb_init_fill_##DT(uint16_t *out, int64_t n, int law, const uint32_t seed[4],       \
                                const double *params, int n_threads)                             \
    {                                                                                            \
        return fb_init->fill_##DT(out, n, law, seed, params, n_threads);                         \
    }
FB_INIT_DEFINE_HALF(f16)
FB_INIT_DEFINE_HALF(bf16)

fb_status fb_init_words(uint32_t *out, int64_t n_blocks, uint64_t block0, const uint32_t seed[4])
{
    return fb_init->words(out, n_blocks, block0, seed);
}

fb_status fb_init_orthogonal_f64(double *a, int64_t m, int64_t n, int n_threads)
{
    return fb_init->orthogonal_f64(a, m, n, n_threads);
}
