"""Process-wide switches: whether ops record a graph, and the random generator.

Kept in one tiny module so that every part of minidl reads the same value.
"""

import numpy as np

grad_enabled: bool = True
rng: np.random.Generator = np.random.default_rng()
