/* cpu.c -- runtime CPU feature detection, portable beyond glibc (no ifunc). */
#include "cpu.h"

#if defined(FB_X86_ISAS) && (defined(__GNUC__) || defined(__clang__))
#define FB_DETECT_GNU 1
#include <cpuid.h>
#elif defined(FB_X86_ISAS) && defined(_MSC_VER)
#include <intrin.h>
#include <immintrin.h>
#define FB_DETECT_MSVC 1
#endif

int fb_alias_reverse = 0;
int fb_narrow_sums = 0;
int fb_grad_prefetch = 1;
int fb_first_prefetch = 1;

#if defined(FB_DETECT_GNU)
/* AMD family 19h models of Zen 3 (Zen 4 is 10h-1Fh, 60h-7Fh, A0h-AFh). */
static int fb_is_zen3(unsigned family, unsigned model)
{
    return family == 0x19 && (model <= 0x0f || (model >= 0x20 && model <= 0x2f) ||
                              (model >= 0x40 && model <= 0x5f));
}

__attribute__((constructor)) static void fb_cpu_probe(void)
{
    __builtin_cpu_init();
    fb_alias_reverse = __builtin_cpu_is("amdfam17h");
    fb_narrow_sums = __builtin_cpu_is("amdfam19h");
    /* family 1Ah by CPUID: older compilers' __builtin_cpu_is does not know it */
    unsigned a, b, c, d;
    if (__builtin_cpu_is("amd") && __get_cpuid(1, &a, &b, &c, &d)) {
        const unsigned base = (a >> 8) & 0xf;
        const unsigned family = base == 0xf ? base + ((a >> 20) & 0xff) : base;
        const unsigned model = ((a >> 4) & 0xf) | (base == 0xf ? ((a >> 16) & 0xf) << 4 : 0);
        fb_grad_prefetch = family != 0x1a;
        fb_first_prefetch = !fb_is_zen3(family, model);
    }
}
#endif

#if defined(FB_DETECT_MSVC)
static int fb_msvc_supports(int isa)
{
    int r[4];
    __cpuid(r, 0);
    if (r[0] < 7) return 0;
    __cpuid(r, 1);
    int osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1, fma = (r[2] >> 12) & 1;
    int f16c = (r[2] >> 29) & 1;   /* the float16 conversions of the AVX2/AVX-512 paths */
    if (!osxsave || !avx || !f16c) return 0;
    unsigned long long xcr0 = _xgetbv(0);
    if ((xcr0 & 0x6) != 0x6) return 0;
    __cpuidex(r, 7, 0);
    int avx2 = (r[1] >> 5) & 1;
    if (isa == FB_ISA_AVX2) return avx2 && fma;
    int f = (r[1] >> 16) & 1, dq = (r[1] >> 17) & 1, bw = (r[1] >> 30) & 1, vl = (r[1] >> 31) & 1;
    return avx2 && fma && f && dq && bw && vl && (xcr0 & 0xe6) == 0xe6;
}
#endif

int fb_cpu_supports(int isa)
{
    if (isa == FB_ISA_SCALAR) return 1;
#if defined(FB_NO_AVX512)
    if (isa == FB_ISA_AVX512) return 0;   /* not compiled */
#endif
#if defined(FB_DETECT_GNU)
    __builtin_cpu_init();
    /* f16c: the float16 conversions (half.h), compiled into the AVX2/AVX-512 paths */
    if (isa == FB_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("f16c");
    if (isa == FB_ISA_AVX512)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("f16c") &&
               __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    return 0;
#elif defined(FB_DETECT_MSVC)
    return fb_msvc_supports(isa);
#else
    return 0;
#endif
}

int fb_cpu_best_isa(void)
{
    for (int isa = FB_ISA_COUNT - 1; isa > FB_ISA_SCALAR; isa--)
        if (fb_cpu_supports(isa)) return isa;
    return FB_ISA_SCALAR;
}

const char *fb_isa_name(int isa)
{
    switch (isa) {
    case FB_ISA_AVX2: return "avx2";
    case FB_ISA_AVX512: return "avx512";
    default: return "scalar";
    }
}
