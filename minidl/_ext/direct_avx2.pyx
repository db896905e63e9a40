# cython: language_level=3
"""The direct conv kernels (see _direct.pxi) compiled for AVX2 + FMA (8-float vectors; setup.py compiles it with -mavx2 -mfma).

minidl._ext.dispatch imports the module of the instruction set minidl.runtime chose."""

include "_direct.pxi"
