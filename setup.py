"""Build the Cython kernels in minidl/_ext: one build that runs on any machine of its platform.

Every ``minidl/_ext/*.pyx`` becomes an extension module compiled with -O3 and OpenMP for the
platform's baseline (x86-64: SSE2), so a wheel built on one machine runs on any other.  The
kernels whose speed is their vectors (``direct_*``, ``depthwise_*``: one source each, included
by one small module per instruction set) are also compiled for AVX2 + FMA and for AVX-512;
``minidl.runtime`` picks the widest the CPU has at import (``MINIDL_MAX_ISA`` caps it).  On
other platforms (and with MSVC) only the baseline modules are built.  Modules compile in
parallel, one per core.

Environment switches (for development):
  MINIDL_DEBUG=1      bounds checks and wraparound on, -O0 -g (find an out-of-range index)
  MINIDL_ONLY=a,b     build only these modules (e.g. MINIDL_ONLY=pool while editing pool.pyx)
"""

import os
import platform
import sys
from glob import glob
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("MINIDL_DEBUG") == "1"
ONLY = {name for name in os.environ.get("MINIDL_ONLY", "").split(",") if name}
# the per-instruction-set modules need GCC/Clang target flags on x86: elsewhere, baseline only
MULTI_TARGET = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686") and (
    sys.platform != "win32"
)
JOBS = os.cpu_count() or 1

# the per-instruction-set modules, by the suffix of their name (GCC / Clang flags)
TARGET_FLAGS = {
    "avx512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma"],
    "avx2": ["-mavx2", "-mfma"],
    "baseline": [],
}

if sys.platform == "win32":
    compile_args, link_args = ["/O2", "/openmp"], []
elif DEBUG:
    compile_args, link_args = ["-O0", "-g", "-fopenmp"], ["-fopenmp"]
else:
    # -fno-math-errno: sqrt is one instruction and loops that take it vectorize (no kernel
    # reads errno)
    compile_args, link_args = ["-O3", "-fno-math-errno", "-fopenmp"], ["-fopenmp"]


def target_of(name: str) -> str:
    """The instruction set a module is compiled for: its name's suffix, else the baseline."""
    suffix = name.rsplit("_", 1)[-1]
    return suffix if suffix in TARGET_FLAGS else "baseline"


def wanted(name: str) -> bool:
    if ONLY and name not in ONLY:
        return False
    return MULTI_TARGET or target_of(name) == "baseline"


def extension(path: str) -> Extension:
    name = Path(path).stem
    flags = TARGET_FLAGS[target_of(name)]
    return Extension(
        f"minidl._ext.{name}",
        [path],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_22_API_VERSION")],
        extra_compile_args=compile_args + flags,
        extra_link_args=link_args,
    )


class ParallelBuildExt(build_ext):
    """Compile the extension modules in parallel (pip's build runs them one at a time)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.parallel is None:
            self.parallel = JOBS


extensions = [extension(p) for p in sorted(glob("minidl/_ext/*.pyx")) if wanted(Path(p).stem)]

setup(
    cmdclass={"build_ext": ParallelBuildExt},
    ext_modules=cythonize(
        extensions,
        nthreads=JOBS,
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "cdivision": True,
            "initializedcheck": DEBUG,
        },
    ),
)
