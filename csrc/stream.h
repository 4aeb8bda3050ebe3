/*
 * stream.h -- the benchmark report's memory floor: passes over float32 arrays that do nothing
 * but the memory traffic a batch-norm kernel cannot avoid (see docs/performance.rst, "x floor").
 *
 * A pass reads n_in arrays (1 to FB_STREAM_MAX_IN) of n floats and either sums them (a read
 * pass: out NULL) or writes their element-wise sum to out (non-temporal stores for outputs of
 * FB_STREAM_NT_BYTES or more, as fastbn's kernels write large outputs).  A call runs its passes
 * in order on fastbn's pool, every task of a pass before any of the next, like a two-pass
 * kernel's statistics and normalization.  Not part of fastbn's API: the report's yardstick.
 */
#ifndef FASTBN_STREAM_H
#define FASTBN_STREAM_H

#include "fastbn.h"

#define FB_STREAM_MAX_IN 3
#define FB_STREAM_MAX_PASSES 4
#define FB_STREAM_BLOCK ((int64_t)1 << 16)    /* floats per task: 256 KB per array */
#define FB_STREAM_NT_BYTES ((int64_t)4 << 20) /* batchnorm_kernels.c's FB_STREAM_MIN_BYTES */

typedef struct {
    int n_in;
    const float *in[FB_STREAM_MAX_IN];
    float *out;   /* NULL: a read pass */
} fb_stream_pass;

/* The kernels of one instruction set: one task of a read pass (returns its block's sum) and of
 * a write pass (nt: non-temporal stores). */
typedef struct {
    double (*read)(const fb_stream_pass *p, int64_t start, int64_t len);
    void (*write)(const fb_stream_pass *p, int64_t start, int64_t len, int nt);
} fb_stream_table;

extern const fb_stream_table fb_stream_table_scalar;
#if defined(FB_X86_ISAS)
extern const fb_stream_table fb_stream_table_avx2;
extern const fb_stream_table fb_stream_table_avx512;
#endif

/* Run the passes over arrays of n floats on up to n_threads threads; *checksum (if not NULL) is
 * the sum of every element the read passes read, blocks summed in order (the same for any thread
 * count).  FB_EINVAL for bad counts or NULL arrays, FB_ENOMEM if scratch failed. */
fb_status fb_stream_passes(int n_passes, const fb_stream_pass *passes, int64_t n, int n_threads,
                           double *checksum);
int fb_stream_set_isa(int isa);
int fb_stream_get_isa(void);

#endif
