/* dispatch.c -- the entry points of every kernel in kernels.def: one table per instruction set
 * (kernels_table.h) and one choice of set for all of them; each entry point forwards to the
 * table in use.  Compiled once (no ISA flags). */
#include "cpu.h"
#include "kernels.h"

#define FB_SFX _scalar
#include "kernels_table.h"
#undef FB_SFX
#if defined(FB_X86_ISAS)
#define FB_SFX _avx2
#include "kernels_table.h"
#undef FB_SFX
#if !defined(FB_NO_AVX512)
#define FB_SFX _avx512
#include "kernels_table.h"
#undef FB_SFX
#endif
#endif

FB_ISA_DISPATCH(fb_kernels, fb_kernel_table)

#define FB_KERNEL(prefix, name, params, args)                                                      \
    fb_status FB_KERNEL_NAME(prefix, name, FB_KDT) params                                          \
    {                                                                                              \
        return fb_kernels->FB_KERNEL_NAME(prefix, name, FB_KDT) args;                              \
    }
#include "kernels_dtypes.h"
#undef FB_KERNEL
