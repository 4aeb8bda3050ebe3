/*
 * clip.h -- gradient clipping over a list of arrays: the global p-norm, clipping by that norm
 * (PyTorch's clip_grad_norm_ semantics) and clamping by value.
 *
 * One call covers the whole list.  Array k is described by data[k] (its first element in logical
 * order), size[k] elements, stride[k] (in elements, any sign, 0 allowed for reading) and
 * dtype[k] (FB_CLIP_F32, _F64, _F16 or _BF16); arrays of different dtypes may be mixed.  Arrays that
 * are written must not overlap one another (the wrapper checks).
 *
 * Accumulation is in float64.  Each array is cut into blocks of FB_CLIP_BLOCK elements (a block
 * never spans two arrays); a block's partial -- sum of x^2 over FB_LANES virtual lanes for p = 2,
 * sum |x| for p = 1, sum pow(|x|, p) otherwise, max |x| (NaN-propagating) for p = inf -- is
 * stored, then partials are merged in block order into one value per array and the arrays' values
 * in array order into the total.  The blocking depends on the sizes alone, so the result is
 * bitwise identical for any n_threads and every instruction-set path.  pow is the one libm
 * function called per element (general p only), the same function on every path.
 *
 * Scaling writes a[i] = a[i] * (T)coef: the coefficient is rounded once to the array's type (as
 * PyTorch multiplies a float32 tensor by a float32 coefficient), then one multiply rounded once
 * to T -- the bits of (T)((double)a[i] * (double)(T)coef), since that double product is exact.
 */
#ifndef FASTBN_CLIP_H
#define FASTBN_CLIP_H

#include "fastbn.h"

/* The element types, one row each: X(code suffix, dtype suffix).  float16 and bfloat16 arrays
 * are passed as their uint16_t bits; they are read exactly (widened per element), accumulated
 * in float64 like the others, and scaled values are rounded once to them. */
#define FB_CLIP_DTYPES(X) X(F32, f32) X(F64, f64) X(F16, f16) X(BF16, bf16)
#define FB_CLIP_ENUM(CODE, DT) FB_CLIP_##CODE,
enum { FB_CLIP_DTYPES(FB_CLIP_ENUM) FB_CLIP_NDTYPES };
#undef FB_CLIP_ENUM

#define FB_CLIP_BLOCK 16384   /* elements per block: the unit of work and of the merge order */

/* Norm of all arrays together, and optionally PyTorch's clipping.
 *   norm_type  p > 0, or INFINITY for max |x|.
 *   acc        n doubles, out: each array's own accumulated value (sum |x|^p, or max |x|); an
 *              array holds a non-finite value iff its entry is not finite (or, for p-sums, it
 *              overflowed).  May be NULL.
 *   total      out: the p-norm of everything (0.0 for no elements).
 *   clip       if nonzero, coef = max_norm / (total + 1e-6) and every array is scaled by coef
 *              unless coef >= 1 (so a NaN coef scales, as torch's clamp(coef, max=1) does);
 *              if `clip == 2` (error_if_nonfinite), a non-finite total scales nothing.
 *   scaled     out (may be NULL): 1 if the arrays were scaled, else 0.
 * Returns FB_EINVAL for a bad size/dtype/norm_type (nothing written), FB_ENOMEM. */
fb_status fb_clip_norm(int64_t n, void *const *data, const int64_t *size, const int64_t *stride,
                       const int *dtype, double norm_type, int clip, double max_norm,
                       double *acc, double *total, int *scaled, int n_threads);

/* Scale every element by coef as the clipping above does: a[i] = T(a[i] * T(coef)) (TensorFlow's
 * clip_by_norm for the half types, whose scale fastbn.clip computes). */
fb_status fb_clip_scale(int64_t n, void *const *data, const int64_t *size, const int64_t *stride,
                        const int *dtype, double coef, int n_threads);

/* Clamp every element to [-(T)clip_value, (T)clip_value] in place (clip_value >= 0, may be
 * INFINITY; for float32 a bound beyond FLT_MAX is infinite, for the half types the bound is
 * rounded to nearest, so beyond the largest value plus half an ulp).  NaN stays NaN. */
fb_status fb_clip_value(int64_t n, void *const *data, const int64_t *size, const int64_t *stride,
                        const int *dtype, double clip_value, int n_threads);

/* Choose the instruction-set path (FB_ISA_*); returns 0, or -1 if it cannot run here. */
int fb_clip_set_isa(int isa);
int fb_clip_get_isa(void);

/* ---- internal: what the per-ISA kernel objects implement -------------------------------- */

/* The blocks of a call: block b covers elements [start[b], start[b] + len) of array arr[b]. */
typedef struct {
    void *const *data;
    const int64_t *size, *stride;
    const int *dtype;
    int64_t n_blocks;
    const int64_t *arr, *start;
} fb_clip_plan;

enum { FB_NORM_SUMSQ = 0, FB_NORM_SUMABS = 1, FB_NORM_SUMPOW = 2, FB_NORM_MAXABS = 3 };

typedef struct {
    /* part[b] = partial of block b (kind: FB_NORM_*; p used by FB_NORM_SUMPOW). */
    void (*partials)(const fb_clip_plan *plan, int kind, double p, double *part, int n_threads);
    void (*scale)(const fb_clip_plan *plan, double coef, int n_threads);
    void (*clamp)(const fb_clip_plan *plan, double clip_value, int n_threads);
} fb_clip_table;

extern const fb_clip_table fb_clip_table_scalar;
#if defined(FB_X86_ISAS)
extern const fb_clip_table fb_clip_table_avx2;
extern const fb_clip_table fb_clip_table_avx512;
#endif

/* Combine two max-|x| values; NaN wins. */
static inline double fb_clip_max(double m, double v) { return (v > m || v != v) ? v : m; }

#endif /* FASTBN_CLIP_H */
