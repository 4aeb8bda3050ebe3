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

static void write_block(const fb_stream_pass *p, int64_t s, int64_t len, int nt)
{
    float *out = p->out;
    const int64_t e = s + len;
    int64_t i = s;
    int64_t head, stop;   /* non-temporal stores over whole cache lines only, as batch norm's */
    if (nt && fb_stream_span(out + s, sizeof(float), len, &head, &stop)) {
        for (; i < s + head; i++) out[i] = sum1(p, i);
        for (; i < s + stop; i += FB_VF_W) fb_vf_stream(out + i, sum_at(p, i));
        fb_stream_fence();
    }
    for (; i + FB_VF_W <= e; i += FB_VF_W) fb_vf_store(out + i, sum_at(p, i));
    for (; i < e; i++) out[i] = sum1(p, i);
}

const fb_stream_table FB_CAT(fb_stream_table, FB_ISA_SUFFIX) = {read_block, write_block};
