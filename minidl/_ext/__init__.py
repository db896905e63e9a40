"""Compiled kernels (Cython + OpenMP), built in place by ``setup.py build_ext --inplace``.

``dispatch`` runs the three convolution primitives (forward, backward-data, backward-weight)
that every Conv / ConvTranspose layer and gradient is made of, on one of ``gemm``, ``direct_*``,
``depthwise_*`` (one module per instruction set) and ``winograd``; ``reference`` holds their slow
numpy oracle. ``pool``: max and average pooling; ``elementwise``: ReLU; ``norm``: training-mode
batch norm; ``cpu``: what the CPU supports.
"""
