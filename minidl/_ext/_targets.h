/* Loops compiled a second time for x86 CPUs with AVX2 and FMA, inside a module that is itself
   built for the baseline (optim.pyx, pool.pyx). The module calls the AVX2 copy unless
   minidl.runtime's instruction set is the baseline (MINIDL_MAX_ISA=baseline, or a CPU
   without AVX2); elsewhere (not x86, or not GCC/Clang) both copies are the portable one. */
#ifndef MINIDL_TARGETS_H
#define MINIDL_TARGETS_H
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(_MSC_VER)
#define MINIDL_AVX2_TARGET __attribute__((target("avx2,fma")))
#define MINIDL_HAS_AVX2_TARGET 1
#else
#define MINIDL_AVX2_TARGET
#define MINIDL_HAS_AVX2_TARGET 0
#endif
#endif
