"""Finite-difference gradient checks in float64."""

import numpy as np

import minidl


def gradcheck(fn, *arrays, eps=1e-6, rtol=1e-6, atol=1e-8, seed=0):
    """Check the autograd gradients of ``fn(*tensors)`` against central differences.

    The output is reduced as ``sum(out * r)`` with a fixed random ``r`` so every output element
    contributes with a different weight. Only float arrays get gradients.
    """
    rng = np.random.default_rng(seed)
    arrays = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else a
              for a in arrays]
    tensors = [minidl.tensor(a, requires_grad=np.asarray(a).dtype.kind == "f") for a in arrays]
    out = fn(*tensors)
    weights = rng.standard_normal(out.shape)
    (out * minidl.tensor(weights)).sum().backward()

    def objective():
        values = fn(*[minidl.tensor(a) for a in arrays]).numpy()
        return float((values * weights).sum())

    for tensor, array in zip(tensors, arrays):
        if not tensor.requires_grad:
            continue
        numeric = np.zeros_like(array)
        for i in np.ndindex(array.shape):
            old = array[i]
            array[i] = old + eps
            plus = objective()
            array[i] = old - eps
            minus = objective()
            array[i] = old
            numeric[i] = (plus - minus) / (2 * eps)
        analytic = tensor.grad.numpy() if tensor.grad is not None else np.zeros_like(array)
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)
