/* init.c -- the public initializer entry points: instruction-set dispatch (compiled once). */
#include "init.h"
#include "cpu.h"

static const fb_init_table *fb_init_tables[FB_ISA_COUNT] = {
    &fb_init_table_scalar,
#if defined(FB_X86_ISAS)
    &fb_init_table_avx2,
    &fb_init_table_avx512,
#else
    NULL, NULL,
#endif
};

static int fb_init_isa = FB_ISA_SCALAR;
static const fb_init_table *fb_init = &fb_init_table_scalar;

int fb_init_set_isa(int isa)
{
    if (isa < 0 || isa >= FB_ISA_COUNT || !fb_init_tables[isa] || !fb_cpu_supports(isa)) return -1;
    fb_init_isa = isa;
    fb_init = fb_init_tables[isa];
    return 0;
}

int fb_init_get_isa(void) { return fb_init_isa; }

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

fb_status fb_init_words(uint32_t *out, int64_t n_blocks, uint64_t block0, const uint32_t seed[4])
{
    return fb_init->words(out, n_blocks, block0, seed);
}
