/* cpu.h -- which instruction sets this CPU and this build can run. */
#ifndef FASTBN_CPU_H
#define FASTBN_CPU_H

#include "fastbn.h"

/* The best FB_ISA_* that both the CPU (and its OS) supports and this build compiled. */
int fb_cpu_best_isa(void);
/* 1 if `isa` can run here, else 0. */
int fb_cpu_supports(int isa);
/* "scalar", "avx2", "avx512". */
const char *fb_isa_name(int isa);

/* 1 where a streamed pass whose output lies a little above an input modulo 4 KB runs faster last
 * element first (simd.h's FB_RUN_PLACE): AMD family 17h (Zen 1 and 2), as measured; 0 elsewhere
 * (Zen 4: slower).  Set when the module loads; the order changes no bit (docs/performance.rst). */
extern int fb_alias_reverse;

/* 1 where the AVX-512 kernels' float32 statistics sums run faster in half-width vectors: AMD
 * family 19h (Zen 4, which executes 512-bit operations as two halves), as measured; 0 elsewhere.
 * Set when the module loads; the width changes no bit (docs/performance.rst). */
extern int fb_narrow_sums;

/* 1 where the rows layout's gradient apply prefetches its inputs 4 KB ahead into L2
 * (norm_common.h's FB_ROW_GPUT2): 0 on AMD family 1Ah (Zen 5), where the hardware prefetcher
 * alone was faster, as measured; 1 elsewhere (Zen 4: faster with it).  Set when the module
 * loads; prefetching changes no bit (docs/performance.rst). */
extern int fb_grad_prefetch;

/* 1 where, on one thread, the first pass over a channel-first channel or group (batch norm's
 * slabs, group and instance norm's groups) also prefetches the next one into L2 (on more threads,
 * group and instance norm's the group the thread takes next): 0 on AMD Zen 3, where it was slower
 * in 53 of 54 measured cases, 1 elsewhere (Zen 4: faster).  Set when the module loads;
 * prefetching changes no bit (docs/performance.rst). */
extern int fb_first_prefetch;

/* Instruction-set dispatch of one kernel family PREFIX with table type TYPE: expects the
 * kernels files to define PREFIX_table_scalar (and _avx2, _avx512 on x86), and defines the table
 * in use, `static const TYPE *PREFIX`, with PREFIX_set_isa(isa) (0, or -1 if isa cannot run
 * here) and PREFIX_get_isa(). */
#if defined(FB_X86_ISAS) && defined(FB_NO_AVX512)   /* setup.py: FASTBN_SKIP_AVX512=1 */
#define FB_ISA_TABLES(prefix) &prefix##_table_scalar, &prefix##_table_avx2, NULL
#elif defined(FB_X86_ISAS)
#define FB_ISA_TABLES(prefix) &prefix##_table_scalar, &prefix##_table_avx2, &prefix##_table_avx512
#else
#define FB_ISA_TABLES(prefix) &prefix##_table_scalar, NULL, NULL
#endif
#define FB_ISA_DISPATCH(prefix, type)                                                              \
    static const type *prefix##_tables[FB_ISA_COUNT] = {FB_ISA_TABLES(prefix)};                   \
    static int prefix##_isa = FB_ISA_SCALAR;                                                       \
    static const type *prefix = &prefix##_table_scalar;                                           \
    int prefix##_set_isa(int isa)                                                                  \
    {                                                                                              \
        if (isa < 0 || isa >= FB_ISA_COUNT || !prefix##_tables[isa] || !fb_cpu_supports(isa))     \
            return -1;                                                                             \
        prefix##_isa = isa;                                                                        \
        prefix = prefix##_tables[isa];                                                             \
        return 0;                                                                                  \
    }                                                                                              \
    int prefix##_get_isa(void) { return prefix##_isa; }

#endif
