# cython: language_level=3
"""The direct conv kernels (see _direct.pxi) compiled for AVX-512 (16-float vectors; setup.py compiles it with -mavx512f/bw/vl/dq).

minidl._ext.dispatch imports the module of the instruction set minidl.runtime chose."""

include "_direct.pxi"
