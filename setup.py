"""Build the Cython kernels in minidl/_ext.

Every ``minidl/_ext/*.pyx`` becomes an extension module compiled with -O3 and OpenMP.
Environment switches (for development):
  MINIDL_DEBUG=1      bounds checks and wraparound on, -O0 -g (find an out-of-range index)
  MINIDL_ONLY=a,b     build only these modules (e.g. MINIDL_ONLY=pool while editing pool.pyx)
  MINIDL_PORTABLE=1   no -march=native: a build that runs on any x86-64 (slower: the direct
                      conv kernel in direct.pyx then falls back to im2col + BLAS)
"""

import os
import sys
from glob import glob
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("MINIDL_DEBUG") == "1"
PORTABLE = os.environ.get("MINIDL_PORTABLE") == "1"
ONLY = {name for name in os.environ.get("MINIDL_ONLY", "").split(",") if name}

if sys.platform == "win32":
    compile_args, link_args = ["/O2", "/openmp"], []
elif DEBUG:
    compile_args, link_args = ["-O0", "-g", "-fopenmp"], ["-fopenmp"]
else:
    compile_args, link_args = ["-O3", "-fopenmp"], ["-fopenmp"]
if sys.platform != "win32" and not PORTABLE:
    # minidl builds from source on the machine that runs it: use all its vector instructions
    compile_args.append("-march=native")

extensions = [
    Extension(
        f"minidl._ext.{Path(path).stem}",
        [path],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_22_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for path in sorted(glob("minidl/_ext/*.pyx"))
    if not ONLY or Path(path).stem in ONLY
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "cdivision": True,
            "initializedcheck": DEBUG,
        },
    ),
)
