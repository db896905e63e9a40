"""minidl's convolution benchmark against PyTorch (CPU) and a numpy im2col baseline.

``python -m minidl.bench`` times every shape of :data:`minidl.bench.cases.CASES` (forward,
backward, forward+backward), a LeNet-5 training step and the peak memory of a forward+backward,
prints markdown tables with the targets and writes ``results.json`` and ``ratios.png``.
The pytest-benchmark suite in ``benchmarks/`` times the same workloads.
"""

from .cases import CASES, ConvCase
from .workloads import WORKLOADS, Timed, conv_inputs

__all__ = ["CASES", "WORKLOADS", "ConvCase", "Timed", "conv_inputs"]
