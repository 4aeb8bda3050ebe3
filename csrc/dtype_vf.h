/* dtype_vf.h -- the float32 arithmetic vector (FB_TV*) of the dtypes that compute in float:
 * float32 itself, float16 and bfloat16 (included by their dtype_*.h; dtype_end.h undoes it). */
#define FB_TV fb_vf
#define FB_TV_W FB_VF_W
#define FB_TV_SET1 fb_vf_set1
#define FB_TV_LOAD fb_vf_load
#define FB_TV_STORE fb_vf_store
#define FB_TV_STREAM fb_vf_stream
#define FB_TV_ADD fb_vf_add
#define FB_TV_SUB fb_vf_sub
#define FB_TV_MUL fb_vf_mul
#define FB_TV_FMA fb_vf_fma
#define FB_FMA1 fmaf
#define FB_TV_FINITE fb_vf_finite
#define FB_TV_RELU fb_vf_relu
#define FB_TV_RELU_GRAD fb_vf_relu_grad
#define FB_TV_BITS_GRAD fb_vf_bits_grad
