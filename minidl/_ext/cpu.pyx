# cython: language_level=3
"""What the CPU supports, asked of the CPU itself (GCC's __builtin_cpu_supports, which also
checks that the operating system saves the wider registers).  Compiled for the baseline, so it
runs on any machine."""

cdef extern from *:
    """
    static int minidl_has_avx2(void) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    #else
        return 0;
    #endif
    }
    static int minidl_has_avx512(void) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        return minidl_has_avx2() && __builtin_cpu_supports("avx512f")
            && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512dq");
    #else
        return 0;
    #endif
    }
    """
    int minidl_has_avx2() nogil
    int minidl_has_avx512() nogil


def supported() -> tuple[str, ...]:
    """The instruction sets minidl has kernels for that this CPU runs, widest last."""
    found = ["baseline"]
    if minidl_has_avx2():
        found.append("avx2")
    if minidl_has_avx512():
        found.append("avx512")
    return tuple(found)
