/* cpu.h -- which instruction sets this CPU and this build can run. */
#ifndef FASTBN_CPU_H
#define FASTBN_CPU_H

#include "fastbn.h"

/* The best FB_ISA_* that both the CPU (and its OS) supports and this build compiled. */
int fb_cpu_best_isa(void);
/* 1 if `isa` can run here, else 0. */
int fb_cpu_supports(int isa);
/* "scalar", "avx2", "avx512". */
const char *fb_isa_name(int isa);

#endif
