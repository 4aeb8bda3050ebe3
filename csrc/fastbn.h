/*
 * fastbn.h -- what every kernel file shares.
 *
 * The C layer is plain C99: no Python headers, no allocation of Python objects, no exceptions.
 * A kernel takes pointers, sizes and strides, writes its results and returns an fb_status that
 * the Cython layer turns into a Python exception.  Sizes are int64_t everywhere.
 *
 * Kernel bodies are written once and instantiated twice per instruction set:
 *   - per dtype, by including a *_body.h file with FB_T (float or double) and FB_DT (f32 / f64);
 *   - per instruction set, by compiling the kernels file once per ISA with -DFB_ISA_SUFFIX=_avx2
 *     (setup.py does this), each with its own -m flags.
 * All arithmetic that decides result bits is written lane by lane with a fixed virtual lane width
 * and compiled with -ffp-contract=off, so every instruction-set path gives the same bits.
 */
#ifndef FASTBN_H
#define FASTBN_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    FB_OK = 0,
    FB_ENOMEM = 1,   /* scratch memory could not be allocated; nothing was written */
    FB_EINVAL = 2    /* sizes the wrapper should have rejected; nothing was written */
} fb_status;

/* Instruction sets, in increasing order of capability. */
enum { FB_ISA_SCALAR = 0, FB_ISA_AVX2 = 1, FB_ISA_AVX512 = 2, FB_ISA_COUNT = 3 };

#define FB_CAT_(a, b) a##b
#define FB_CAT(a, b) FB_CAT_(a, b)
#define FB_CAT3(a, b, c) FB_CAT(FB_CAT(a, b), c)

/* Virtual lane width of every reduction: fixed, whatever the vector width of the path. */
#define FB_LANES 32

/* FB_UNROLL: unroll the next loop completely (a fixed-count loop inside a loop the compiler
 * should vectorize, such as a polynomial's Horner steps: GCC does not vectorize a loop nest
 * with an inner loop left rolled).  FB_NOINLINE: a rare path kept out of the inlined hot ones. */
#if defined(_MSC_VER)
#define FB_RESTRICT __restrict
#define FB_INLINE __forceinline
#define FB_NOINLINE __declspec(noinline)
#define FB_UNROLL
#elif defined(__clang__)
#define FB_RESTRICT __restrict__
#define FB_INLINE inline __attribute__((always_inline))
#define FB_NOINLINE __attribute__((noinline))
#define FB_UNROLL _Pragma("unroll")
#else
#define FB_RESTRICT __restrict__
#define FB_INLINE inline __attribute__((always_inline))
#define FB_NOINLINE __attribute__((noinline))
#define FB_UNROLL _Pragma("GCC unroll 64")
#endif

#endif /* FASTBN_H */
