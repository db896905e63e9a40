"""minidl's convolution benchmark against PyTorch (CPU) and a numpy im2col baseline.

``python -m minidl.bench`` times every shape of :data:`minidl.bench.cases.CASES` (forward,
backward, forward+backward), a LeNet-5 training step, an epoch of ``examples/train_digits.py``
(the main job, :mod:`minidl.bench.main_job`) and the peak memory of a forward+backward, once per
instruction-set path the CPU has (:mod:`minidl.bench.isa_paths`: a subprocess each, minidl and
PyTorch capped alike), then once, on its own path, a LeNet-5 step idle and beside one busy
process (:mod:`minidl.bench.busy`; ``--no-busy`` skips it). It prints markdown tables with the
targets per path and writes ``results.json`` and a ``ratios_<path>.png`` per path. The
pytest-benchmark suite in ``benchmarks/`` times the same workloads in one process.
"""

from .cases import CASES, ConvCase
from .workloads import WORKLOADS, Timed, conv_inputs

__all__ = ["CASES", "WORKLOADS", "ConvCase", "Timed", "conv_inputs"]
