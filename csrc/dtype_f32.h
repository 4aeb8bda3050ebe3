/* dtype_f32.h -- the float32 parameters of a kernel body and of norm_common.h: the element type,
 * its vector for the elementwise passes and its conversions from and to float64 vectors.
 * dtype_end.h undoes them, so that dtype_f64.h can follow.
 *
 * FB_T is the type of gamma, beta and the running statistics, and FB_TV its vector; FB_S the
 * storage type of the tensors (x, y, dy, dx), read and written only through FB_LD / FB_ST /
 * FB_ST64 (one value) and FB_SV_LOAD / FB_SV_STORE / FB_SV_STREAM / FB_VD_LOAD_T (vectors); FB_C
 * the elementwise passes' arithmetic (below).  Here they are one type and the macros plain;
 * dtype_f16.h and dtype_bf16.h store 16 bits, take float parameters and compute in float64. */
#define FB_T float
#define FB_S float
#define FB_DT f32
#include "dtype_vf.h"
#define FB_VD_LOAD_T fb_vd_load_f32
#define FB_VD_LOAD_T_HEAD fb_vd_load_f32_head
#define FB_VD_LOAD_RG fb_vd_load_f32_rg
#if defined(__AVX512F__)
#define FB_VD_LOAD_RGB fb_vd_load_f32_rgb   /* and the mask byte: FB_VD_W is 8 */
#endif
#define FB_VD_STORE_T fb_vd_store_f32
#ifdef FB_VN_W
#define FB_VN_LOAD_T fb_vn_load_f32   /* the narrow statistics' sums (norm_common.h) */
#endif
#define FB_TV_FROM_VD fb_vf_from_vd
#define FB_LD(v) (v)
#define FB_ST(v) (v)
#define FB_RT(v) (v)   /* rounded to the storage type, widened back: nothing to do */
#define FB_SV_RT(v) (v)
#define FB_ST64(d) ((float)(d))
#define FB_SV_LOAD fb_vf_load
#define FB_SV_STORE fb_vf_store
#define FB_SV_STREAM fb_vf_stream
#define FB_SV_LOAD_PART fb_vf_load_part   /* lanes of a vector (simd.h; FB_TV = FB_CV) */
#define FB_SV_STORE_PART fb_vf_store_part
/* The elementwise passes' arithmetic (FB_C: coefficients and intermediates; FB_CV: its vector)
 * is float32 here; float64 for float64 and the half types (dtype_cvd.h). */
#define FB_C float
#define FB_CFMA1 fmaf
#define FB_CV fb_vf
#define FB_CV_SET1 fb_vf_set1
#define FB_CV_LOAD fb_vf_load     /* an array of FB_C */
#define FB_CV_STORE fb_vf_store   /* into an array of FB_C */
#define FB_CV_LOAD_P fb_vf_load   /* an array of T: gamma, beta */
#define FB_CV_LOAD_S fb_vf_load   /* a tensor */
#define FB_CV_ADD fb_vf_add
#define FB_CV_SUB fb_vf_sub
#define FB_CV_MUL fb_vf_mul
#define FB_CV_FMA fb_vf_fma
#define FB_CV_RELU_GRAD fb_vf_relu_grad
#define FB_CV_BITS_GRAD fb_vf_bits_grad
#define FB_CV_SPLIT fb_vf_split
#define FB_MASK8 fb_mask8_f32   /* the fused backward's mask bits of 8 values (simd.h) */
#define FB_CV_TO_TV(E, i) E(i)    /* E(o): the FB_CV at element offset o; one FB_TV */
