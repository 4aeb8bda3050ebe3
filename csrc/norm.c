/* norm.c -- the normalization core's entry points: each forwards to the table of the chosen
 * instruction set (the table and these definitions are generated from norm_kernels.def). */
#include "norm.h"
#include "cpu.h"

FB_ISA_DISPATCH(fb_norm, fb_norm_table)

#define T float
#define FB_NORM_KERNEL(name, params, args) \
    fb_status FB_CAT3(fb_norm_, name, _f32) params { return fb_norm->FB_CAT(name, _f32) args; }
#include "norm_kernels.def"
#undef FB_NORM_KERNEL
#undef T
#define T double
#define FB_NORM_KERNEL(name, params, args) \
    fb_status FB_CAT3(fb_norm_, name, _f64) params { return fb_norm->FB_CAT(name, _f64) args; }
#include "norm_kernels.def"
#undef FB_NORM_KERNEL
#undef T
