/*
 * kernels.h -- the normalization family's kernels, generated from the one list (kernels.def):
 * batch norm (fb_bn_*, documented in batchnorm.h) and the core of layer, RMS, group and instance
 * norm (fb_norm_*, documented in norm.h).  Each kernels file compiles its rows once per
 * instruction set; dispatch.c gathers them into one table per set and chooses one set for all.
 */
#ifndef FASTBN_KERNELS_H
#define FASTBN_KERNELS_H

#include "fastbn.h"

/* The (outer, mid, G, Cg, inner) view of the normalization core (norm.h). */
typedef struct {
    int64_t outer, mid, G, Cg, inner;
} fb_norm_view;

/* The kernel name of a row for one dtype: prefix_name_dt. */
#define FB_KERNEL_NAME(prefix, name, dt) FB_CAT3(prefix, _, FB_CAT3(name, _, dt))

#define FB_KERNEL(prefix, name, params, args) fb_status FB_KERNEL_NAME(prefix, name, FB_KDT) params;
#include "kernels_dtypes.h"
#undef FB_KERNEL

/* One instruction set's kernels: one member per row and dtype, named as the kernel. */
typedef struct {
#define FB_KERNEL(prefix, name, params, args) fb_status (*FB_KERNEL_NAME(prefix, name, FB_KDT)) params;
#include "kernels_dtypes.h"
#undef FB_KERNEL
} fb_kernel_table;

/* Choose the instruction-set path (FB_ISA_*) of every kernel above; 0, or -1 if it cannot run
 * here. */
int fb_kernels_set_isa(int isa);
int fb_kernels_get_isa(void);

/* In a kernels file (compiled with -DFB_ISA_SUFFIX): export the rows of `prefix`'s family as
 * prefix_name_dt<FB_ISA_SUFFIX>, each calling the file's static kernel name_dt.  Define
 * FB_KERNEL_<prefix> as FB_KERNEL_EXPORT and every other family's as FB_KERNEL_SKIP, then
 * FB_KERNELS_EXPORT(). */
#define FB_KERNEL_EXPORT(prefix, name, params, args, dt)                                           \
    fb_status FB_CAT(FB_KERNEL_NAME(prefix, name, dt), FB_ISA_SUFFIX) params                       \
    {                                                                                              \
        return FB_CAT3(name, _, dt) args;                                                          \
    }
#define FB_KERNEL_SKIP(prefix, name, params, args, dt)

#endif /* FASTBN_KERNELS_H */
