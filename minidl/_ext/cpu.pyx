# cython: language_level=3
"""What the CPU supports, asked of the CPU itself (GCC's __builtin_cpu_supports, which also
checks that the operating system saves the wider registers), and how far apart two of its
threads run.  Compiled for the baseline, so it runs on any machine."""

cdef extern from "omp.h":
    pass

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
    /* Two OpenMP threads pass a counter back and forth through one cache line: seconds per
       round trip. */
    static double minidl_round_trip(int rounds) {
        volatile int flag = 0;
        double start = 0, end = 0;
        #pragma omp parallel num_threads(2)
        {
            int me = omp_get_thread_num();
            #pragma omp barrier
            if (me == 0) start = omp_get_wtime();
            for (int r = 0; r < rounds; r++) {
                int wait = 2 * r + me, next = wait + 1;
                while (__atomic_load_n(&flag, __ATOMIC_ACQUIRE) != wait) {}
                __atomic_store_n(&flag, next, __ATOMIC_RELEASE);
            }
            if (me == 0) end = omp_get_wtime();
        }
        return (end - start) / rounds;
    }
    """
    int minidl_has_avx2() nogil
    int minidl_has_avx512() nogil
    double minidl_round_trip(int rounds) nogil


def supported() -> tuple[str, ...]:
    """The instruction sets minidl has kernels for that this CPU runs, widest last."""
    found = ["baseline"]
    if minidl_has_avx2():
        found.append("avx2")
    if minidl_has_avx512():
        found.append("avx512")
    return tuple(found)


def core_round_trip_ns(rounds: int = 20000) -> float:
    """Nanoseconds for a cache line to go from one thread's core to another's and back (two
    OpenMP threads; on a VM, where the host placed its vCPUs).  Needs two usable cores: with
    one, the threads would take turns a scheduler slice at a time."""
    cdef int n = rounds
    cdef double seconds
    with nogil:
        seconds = minidl_round_trip(n)
    return seconds * 1e9
