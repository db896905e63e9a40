"""Compiled kernels (Cython + OpenMP), built in place by ``setup.py build_ext --inplace``.

``conv``: the three convolution primitives (forward, backward-data, backward-weight) that every
Conv / ConvTranspose layer and gradient is made of; ``reference`` holds their slow numpy oracle.
``pool``: max and average pooling.
"""
