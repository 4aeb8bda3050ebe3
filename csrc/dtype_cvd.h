/* dtype_cvd.h -- the elementwise passes' arithmetic in float64 (see dtype_f32.h's FB_C, FB_CV):
 * float64 tensors, and float16 / bfloat16 ones, whose outputs it keeps within one ulp.  The
 * including header adds FB_CV_LOAD_P (gamma, beta: T as float64). */
#define FB_C double
#define FB_CFMA1 fma
#define FB_CV fb_vd
#define FB_CV_SET1 fb_vd_set1
#define FB_CV_LOAD fb_vd_load_f64
#define FB_CV_STORE fb_vd_store_f64
#define FB_CV_ADD fb_vd_add
#define FB_CV_SUB fb_vd_sub
#define FB_CV_MUL fb_vd_mul
#define FB_CV_FMA fb_vd_fma
#define FB_CV_RELU_GRAD fb_vd_relu_grad
#define FB_CV_BITS_GRAD fb_vd_bits_grad
#define FB_CV_SPLIT fb_vd_split
#define FB_CV_LOAD_S FB_VD_LOAD_T   /* a tensor */
#define FB_CV_TO_TV(E, i) FB_TV_FROM_VD(E(i), E((i) + FB_VD_W))   /* float64: E(i) alone */
