/* dtype_f64.h -- the float64 parameters of a kernel body and of norm_common.h (see dtype_f32.h). */
#define FB_T double
#define FB_S double
#define FB_DT f64
#define FB_TV fb_vd
#define FB_TV_W FB_VD_W
#define FB_TV_SET1 fb_vd_set1
#define FB_TV_LOAD fb_vd_load_f64
#define FB_TV_STORE fb_vd_store_f64
#define FB_TV_STREAM fb_vd_stream
#define FB_TV_ADD fb_vd_add
#define FB_TV_SUB fb_vd_sub
#define FB_TV_MUL fb_vd_mul
#define FB_TV_FMA fb_vd_fma
#define FB_FMA1 fma
#define FB_TV_FINITE fb_vd_finite
#define FB_TV_RELU fb_vd_relu
#define FB_TV_RELU_GRAD fb_vd_relu_grad
#define FB_TV_BITS_GRAD fb_vd_bits_grad
#define FB_MASK8 fb_mask8_f64
#define FB_VD_LOAD_T fb_vd_load_f64
#define FB_VD_LOAD_T_HEAD(p, n) fb_vd_load_f64_part((p), 0, (n))
#define FB_VD_STORE_T fb_vd_store_f64
#define FB_TV_FROM_VD(a, b) (a)   /* one vector of doubles: b is a */
#define FB_LD(v) (v)
#define FB_ST(v) (v)
#define FB_RT(v) (v)   /* rounded to the storage type, widened back: nothing to do */
#define FB_SV_RT(v) (v)
#define FB_ST64(d) (d)
#define FB_SV_LOAD fb_vd_load_f64
#define FB_SV_STORE fb_vd_store_f64
#define FB_SV_STREAM fb_vd_stream
#define FB_SV_LOAD_PART fb_vd_load_f64_part   /* as dtype_f32.h's */
#define FB_SV_STORE_PART fb_vd_store_f64_part
#include "dtype_cvd.h"
#define FB_CV_LOAD_P fb_vd_load_f64
