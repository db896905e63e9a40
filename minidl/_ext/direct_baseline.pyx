# cython: language_level=3
"""The direct conv kernels (see _direct.pxi) compiled for the baseline of the platform (x86-64: SSE2, 4-float vectors).

minidl._ext.dispatch imports the module of the instruction set minidl.runtime chose."""

include "_direct.pxi"
