# cython: language_level=3
"""The depthwise conv kernels (see _depthwise.pxi) compiled for AVX-512 (16-float vectors; setup.py compiles it with -mavx512f/bw/vl/dq).

minidl._ext.dispatch imports the module of the instruction set minidl.runtime chose."""

include "_depthwise.pxi"
