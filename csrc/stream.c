/* stream.c -- the memory floor's passes on fastbn's pool: dispatch, tasks, the checksum.  See
 * stream.h. */
#include <stdlib.h>

#include "cpu.h"
#include "parallel.h"
#include "stream.h"

FB_ISA_DISPATCH(fb_stream, fb_stream_table)

typedef struct {
    const fb_stream_pass *pass;
    int64_t n;
    int nt;
    double *part;   /* a read pass's block sums */
} stream_ctx;

/* Elements of task t: a block, the last one shorter. */
static int64_t task_len(const stream_ctx *c, int64_t t)
{
    const int64_t rest = c->n - t * FB_STREAM_BLOCK;
    return rest < FB_STREAM_BLOCK ? rest : FB_STREAM_BLOCK;
}

static void read_task(void *ctx, int64_t t)
{
    stream_ctx *c = (stream_ctx *)ctx;
    c->part[t] = fb_stream->read(c->pass, t * FB_STREAM_BLOCK, task_len(c, t));
}

static void write_task(void *ctx, int64_t t)
{
    stream_ctx *c = (stream_ctx *)ctx;
    fb_stream->write(c->pass, t * FB_STREAM_BLOCK, task_len(c, t), c->nt);
}

fb_status fb_stream_passes(int n_passes, const fb_stream_pass *passes, int64_t n, int n_threads,
                    double *checksum)
{
    if (checksum) *checksum = 0.0;
    if (n_passes < 1 || n_passes > FB_STREAM_MAX_PASSES || n < 0 || !passes) return FB_EINVAL;
    for (int p = 0; p < n_passes; p++) {
        if (passes[p].n_in < 1 || passes[p].n_in > FB_STREAM_MAX_IN) return FB_EINVAL;
        for (int k = 0; k < passes[p].n_in; k++)
            if (n > 0 && !passes[p].in[k]) return FB_EINVAL;
    }
    if (n == 0) return FB_OK;
    const int64_t n_tasks = (n + FB_STREAM_BLOCK - 1) / FB_STREAM_BLOCK;
    double *part = (double *)malloc(sizeof(double) * (size_t)(n_tasks * n_passes));
    if (!part) return FB_ENOMEM;
    stream_ctx ctx[FB_STREAM_MAX_PASSES];
    fb_phase ph[FB_STREAM_MAX_PASSES];
    for (int p = 0; p < n_passes; p++) {
        const int read = passes[p].out == NULL;
        ctx[p] = (stream_ctx){&passes[p], n, (int64_t)sizeof(float) * n >= FB_STREAM_NT_BYTES,
                              part + p * n_tasks};
        ph[p] = (fb_phase){n_tasks, read ? read_task : write_task, &ctx[p], NULL};
    }
    /* Below fastbn's threshold its kernels run on one thread: so does their floor. */
    fb_parallel_phases(ph, n_passes, n < FB_PAR_MIN_ELEMS || n_threads < 1 ? 1 : n_threads);
    double sum = 0.0;
    for (int p = 0; p < n_passes; p++)
        if (!passes[p].out)
            for (int64_t t = 0; t < n_tasks; t++) sum += part[p * n_tasks + t];
    free(part);
    if (checksum) *checksum = sum;
    return FB_OK;
}
