/* dtype_end.h -- undo dtype_f32.h / dtype_f64.h. */
#undef FB_T
#undef FB_DT
#undef FB_TV
#undef FB_TV_W
#undef FB_TV_SET1
#undef FB_TV_LOAD
#undef FB_TV_STORE
#undef FB_TV_STREAM
#undef FB_TV_ADD
#undef FB_TV_SUB
#undef FB_TV_MUL
#undef FB_TV_FINITE
#undef FB_TV_RELU
#undef FB_TV_RELU_GRAD
#undef FB_VD_LOAD_T
#undef FB_VD_STORE_T
#undef FB_TV_FROM_VD
