/*
 * kernels_table.h -- one instruction set's kernel table.  Included by dispatch.c once per set,
 * with FB_SFX defined (_scalar, _avx2, _avx512): declares that set's exported kernels (each
 * kernels file's FB_KERNEL_EXPORT) and defines fb_kernel_table<FB_SFX> from kernels.def.
 */
#define FB_ROW(prefix, name, dt) FB_CAT(FB_KERNEL_NAME(prefix, name, dt), FB_SFX)

#define FB_KERNEL(prefix, name, params, args) fb_status FB_ROW(prefix, name, FB_KDT) params;
#include "kernels_dtypes.h"
#undef FB_KERNEL

const fb_kernel_table FB_CAT(fb_kernels_table, FB_SFX) = {
#define FB_KERNEL(prefix, name, params, args) FB_ROW(prefix, name, FB_KDT),
#include "kernels_dtypes.h"
#undef FB_KERNEL
};

#undef FB_ROW
