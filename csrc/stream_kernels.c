/*
 * stream_kernels.c -- the memory floor's loops (stream.h), compiled once per instruction set
 * (setup.py: -DFB_ISA_SUFFIX=_scalar/_avx2/_avx512 with that set's flags), at the vector width
 * of fastbn's own kernels on that path.  A read task sums its block in four float vectors (no
 * dependency chain slows the loads); a write task stores the sum of its inputs.
 */
#include "simd.h"
#include "stream.h"

#ifndef FB_ISA_SUFFIX
#define FB_ISA_SUFFIX _scalar
#endif

static double read_block(const fb_stream_pass *p, int64_t s, int64_t len)
{
    fb_vf acc[4] = {fb_vf_set1(0.0f), fb_vf_set1(0.0f), fb_vf_set1(0.0f), fb_vf_set1(0.0f)};
    double sum = 0.0;
    for (int k = 0; k < p->n_in; k++) {
        const float *a = p->in[k] + s;
        int64_t i = 0;
        for (; i + 4 * FB_VF_W <= len; i += 4 * FB_VF_W)
            for (int u = 0; u < 4; u++) acc[u] = fb_vf_add(acc[u], fb_vf_load(a + i + u * FB_VF_W));
        for (; i < len; i++) sum += a[i];
    }
    float lanes[4 * FB_VF_W];
    for (int u = 0; u < 4; u++) fb_vf_store(lanes + u * FB_VF_W, acc[u]);
    for (int l = 0; l < 4 * FB_VF_W; l++) sum += lanes[l];
    return sum;
}

static FB_INLINE fb_vf sum_at(const fb_stream_pass *p, int64_t i)
{
    fb_vf v = fb_vf_load(p->in[0] + i);
    for (int k = 1; k < p->n_in; k++) v = fb_vf_add(v, fb_vf_load(p->in[k] + i));
    return v;
}

static FB_INLINE float sum1(const fb_stream_pass *p, int64_t i)
{
    float v = p->in[0][i];
    for (int k = 1; k < p->n_in; k++) v += p->in[k][i];
    return v;
}

/* float's names for simd.h's FB_RUN_LOOP (the kernels' own loop, 4K-aliasing direction included) */
#define FB_TV fb_vf
#define FB_TV_W FB_VF_W
#define FB_SV_STORE fb_vf_store
#define FB_SV_STREAM fb_vf_stream

static void write_block(const fb_stream_pass *p, int64_t s, int64_t len, int nt)
{
    float *out = p->out + s;
#define FB_W_ONE(i) out[i] = sum1(p, s + (i))
#define FB_W_PAIR(STORE, i) \
    do { STORE(out + (i), sum_at(p, s + (i))); STORE(out + (i) + FB_VF_W, sum_at(p, s + (i) + FB_VF_W)); } while (0)
    FB_RUN_LOOP(nt, out, len, FB_W_ONE, FB_W_PAIR,
                fb_run_place(p->out, (const void *const *)p->in, p->n_in));
    if (nt) fb_stream_fence();
#undef FB_W_PAIR
#undef FB_W_ONE
}

const fb_stream_table FB_CAT(fb_stream_table, FB_ISA_SUFFIX) = {read_block, write_block};
