/* dtype_f32.h -- the float32 parameters of a kernel body and of norm_common.h: the element type,
 * its vector for the elementwise passes and its conversions from and to float64 vectors.
 * dtype_end.h undoes them, so that dtype_f64.h can follow.
 *
 * FB_T is the arithmetic type (and that of gamma, beta, running statistics); FB_S the storage type
 * of the tensors (x, y, dy, dx), read and written only through FB_LD / FB_ST / FB_ST64 (one value)
 * and FB_SV_LOAD / FB_SV_STORE / FB_SV_STREAM / FB_VD_LOAD_T (vectors).  Here they are the same
 * type and the macros plain; dtype_f16.h and dtype_bf16.h store 16 bits and compute in float. */
#define FB_T float
#define FB_S float
#define FB_DT f32
#define FB_NARROW 0   /* storage as wide as T */
#include "dtype_vf.h"
#define FB_VD_LOAD_T fb_vd_load_f32
#define FB_VD_STORE_T fb_vd_store_f32
#define FB_TV_FROM_VD fb_vf_from_vd
#define FB_LD(v) (v)
#define FB_ST(v) (v)
#define FB_RT(v) (v)   /* rounded to the storage type, widened back: nothing to do */
#define FB_SV_RT(v) (v)
#define FB_ST64(d) ((float)(d))
#define FB_SV_LOAD fb_vf_load
#define FB_SV_STORE fb_vf_store
#define FB_SV_STREAM fb_vf_stream
