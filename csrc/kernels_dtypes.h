/*
 * kernels_dtypes.h -- kernels.def expanded once per dtype (no include guard: every use expands
 * it).  The includer defines FB_KERNEL(prefix, name, params, args); each expansion sees T (the
 * type of gamma, beta, running statistics), S (the tensors' storage type) and FB_KDT (the
 * kernel-name suffix).  The one list of dtypes: setup.py's Cython declarations follow it.
 */
#define FB_KDT f32
#define T float
#define S float
#include "kernels.def"
#undef S
#undef T
#undef FB_KDT
#define FB_KDT f64
#define T double
#define S double
#include "kernels.def"
#undef S
#undef T
#undef FB_KDT
#define FB_KDT f16   /* float16 tensors, float32 parameters */
#define T float
#define S uint16_t
#include "kernels.def"
#undef S
#undef T
#undef FB_KDT
#define FB_KDT bf16  /* bfloat16 tensors, float32 parameters */
#define T float
#define S uint16_t
#include "kernels.def"
#undef S
#undef T
#undef FB_KDT
