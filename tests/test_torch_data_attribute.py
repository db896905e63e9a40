"""``tensor.data`` as PyTorch has it: a Tensor sharing the storage, outside autograd."""

import numpy as np
import pytest

import minidl


def test_data_is_a_tensor_sharing_storage_without_grad(torch):
    x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    d = x.data
    tx = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    td = tx.data
    assert isinstance(d, minidl.Tensor)
    assert (d.requires_grad, d.is_leaf, d.dtype == minidl.float32) == (
        td.requires_grad, td.is_leaf, td.dtype == torch.float32)
    d[1] = 7.0
    td[1] = 7.0
    np.testing.assert_array_equal(x.detach().numpy(), tx.detach().numpy())


def test_max_over_data_returns_values_and_indices_as_torch(torch):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4)).astype(np.float32)
    out = minidl.tensor(logits, requires_grad=True) * 2
    tout = torch.tensor(logits, requires_grad=True) * 2
    values, indices = out.data.max(1)
    tvalues, tindices = tout.data.max(1)
    np.testing.assert_array_equal(values.numpy(), tvalues.numpy())
    np.testing.assert_array_equal(indices.numpy(), tindices.numpy())
    _, predicted = minidl.max(out.data, 1)
    assert (predicted == minidl.tensor(tindices.numpy())).sum().item() == 5


def test_in_place_through_data_is_not_seen_by_autograd(torch):
    """PyTorch's documented difference between .data and .detach(): the saved output of
    sigmoid changed through .data is used as it is, without an error."""
    x = minidl.tensor([0.5, -1.0], requires_grad=True)
    tx = torch.tensor([0.5, -1.0], requires_grad=True)
    y, ty = x.sigmoid(), tx.sigmoid()
    y.data.mul_(2.0)
    ty.data.mul_(2.0)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z = x.sigmoid()
        z.detach().mul_(2.0)  # .detach() is seen, as in PyTorch
        z.sum().backward()


def test_manual_sgd_on_data_and_assignment(torch):
    w = minidl.tensor([1.0, -2.0], requires_grad=True)
    tw = torch.tensor([1.0, -2.0], requires_grad=True)
    (w * w).sum().backward()
    (tw * tw).sum().backward()
    w.data -= 0.1 * w.grad
    tw.data -= 0.1 * tw.grad
    np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-6)
    w.data = minidl.zeros(3)
    tw.data = torch.zeros(3)
    assert w.shape == tuple(tw.shape) and w.requires_grad == tw.requires_grad
