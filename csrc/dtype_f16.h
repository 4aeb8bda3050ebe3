/* dtype_f16.h -- float16 (IEEE binary16) tensors: stored as uint16_t (FB_S), gamma, beta and running
 * statistics in float (FB_T, with the float32 vectors of dtype_f32.h), the elementwise passes in
 * float64 (FB_C, below).  Values are widened exactly on every load and rounded once, to nearest
 * even, on every store (overflow to +-inf as a cast, NaN kept NaN): simd_half.h's vectors and
 * half.h's scalars, the same bits on every path.  See dtype_f32.h for the macros. */
#include "simd_half.h"
#define FB_T float
#define FB_S uint16_t
#define FB_DT f16
#include "dtype_vf.h"
#define FB_VD_LOAD_T fb_vd_load_f16
#define FB_TV_FROM_VD fb_vf_from_vd
#define FB_LD(v) fb_f16_to_f32(v)
#define FB_ST(v) fb_f32_to_f16(v)
#define FB_RT(v) fb_f16_to_f32(fb_f32_to_f16(v))   /* rounded to the storage type, widened back */
#define FB_SV_RT fb_vf_round_f16
#define FB_ST64(d) fb_f32_to_f16((float)(d))   /* via float, as the vector paths (FB_TV_FROM_VD) */
#define FB_SV_LOAD fb_vf_load_f16
#define FB_SV_STORE fb_vf_store_f16
#define FB_SV_STREAM fb_vf_store_f16   /* no non-temporal half stores: plain ones */
/* The elementwise passes in float64, two vectors of doubles a vector of T, each output rounded
 * to float and then to the half type: within one ulp of the exact value (norm.h). */
#include "dtype_cvd.h"
#define FB_CV_LOAD_P fb_vd_load_f32
