"""In-place ops and item assignment with PyTorch's autograd rules, against live PyTorch:
leaf checks, no_grad updates, gradients through in-place ops on non-leaf tensors, and version
counting (backward refuses a saved tensor that was changed)."""

import numpy as np
import pytest

import minidl

rng = np.random.default_rng(3)
X = rng.standard_normal((3, 4))
W = rng.standard_normal((3, 4))

LEAF_OPS = {
    "add_": lambda lib, t: t.add_(1.0),
    "sub_": lambda lib, t: t.sub_(t.detach(), alpha=2),
    "mul_": lambda lib, t: t.mul_(2.0),
    "div_": lambda lib, t: t.div_(2.0),
    "zero_": lambda lib, t: t.zero_(),
    "fill_": lambda lib, t: t.fill_(3.0),
    "copy_": lambda lib, t: t.copy_(lib.ones(4)),
    "clamp_": lambda lib, t: t.clamp_(-0.1, 0.1),
    "normal_": lambda lib, t: t.normal_(),
    "uniform_": lambda lib, t: t.uniform_(-1, 1),
    "masked_fill_": lambda lib, t: t.masked_fill_(t.detach() > 0, 0.0),
    "setitem": lambda lib, t: t.__setitem__(0, 5.0),
    "iadd": lambda lib, t: t.__iadd__(1.0),
    "imul": lambda lib, t: t.__imul__(2.0),
}


@pytest.mark.parametrize("name", sorted(LEAF_OPS))
def test_in_place_on_a_leaf_that_requires_grad_raises_as_torch(torch, name):
    op = LEAF_OPS[name]
    for lib in (torch, minidl):
        w = lib.tensor(W.copy(), requires_grad=True)
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being "
                                               "used in an in-place operation"):
            op(lib, w)
        assert w.is_leaf and w.requires_grad
        np.testing.assert_array_equal(w.detach().numpy(), W)  # nothing was written


@pytest.mark.parametrize("name", sorted(set(LEAF_OPS) - {"normal_", "uniform_"}))
def test_in_place_under_no_grad_matches_torch(torch, name):
    """(The random fills draw other values than PyTorch's: tested on their own below.)"""
    op = LEAF_OPS[name]
    results = []
    for lib in (torch, minidl):
        w = lib.tensor(W.copy(), requires_grad=True)
        with lib.no_grad():
            out = op(lib, w)
        assert out is (None if name == "setitem" else w)
        assert w.is_leaf and w.requires_grad
        results.append((w.detach().numpy().copy(), w._version))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
    assert results[1][1] == results[0][1]


def test_random_in_place_ops_follow_the_seed_and_bounds():
    w = minidl.tensor(W.copy(), requires_grad=True)
    with minidl.no_grad():
        minidl.manual_seed(5)
        w.uniform_(-0.5, 0.25)
        first = w.numpy().copy()
        minidl.manual_seed(5)
        w.uniform_(-0.5, 0.25)
    np.testing.assert_array_equal(w.numpy(), first)
    assert first.min() >= -0.5 and first.max() < 0.25 and w.dtype == minidl.float64
    with minidl.no_grad():
        w.normal_(2.0, 0.1)
    assert abs(w.numpy().mean() - 2.0) < 0.2


def test_view_of_a_leaf_that_requires_grad_raises_as_torch(torch):
    for lib in (torch, minidl):
        w = lib.tensor(W.copy(), requires_grad=True)
        with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
            w[0].add_(1)
        with lib.no_grad():
            w[0].add_(1)  # allowed without grad, and it writes into w
        assert w[0, 0].item() == pytest.approx(W[0, 0] + 1)


def test_manual_sgd_with_in_place_updates_matches_torch(torch):
    """The "learning PyTorch with examples" loop: ``w -= lr * w.grad; w.grad.zero_()``."""
    results = []
    for lib in (torch, minidl):
        x = lib.tensor(X)
        w = lib.tensor(W[0].copy(), requires_grad=True)
        b = lib.zeros(1, dtype=lib.float64, requires_grad=True)
        losses = []
        for _ in range(5):
            loss = ((x @ w + b - 1.0) ** 2).mean()
            loss.backward()
            with lib.no_grad():
                w -= 0.1 * w.grad
                b.sub_(0.1 * b.grad)
                w.grad.zero_()
                b.grad.zero_()
            losses.append(loss.item())
        results.append((losses, w.detach().numpy().copy(), b.detach().numpy().copy()))
    for ours, theirs in zip(results[1], results[0]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


# ---- gradients through in-place ops on non-leaf tensors ---------------------------------------
def _chain(lib, x, w):
    y = x * 2
    y.add_(w)
    y.mul_(3)
    y.sub_(w, alpha=0.5)
    y.div_(w * w + 1)
    return (y * y).sum()


def _mul_by_tensor_saves_old_self(lib, x, w):
    y = x * 1
    y.mul_(w)
    return (y * x).sum()


def _operators(lib, x, w):
    y = x + 0
    y += w
    y -= 0.5 * w
    y *= w
    y /= (w * w + 1)
    return (y ** 2).sum()


def _child_made_before_the_op(lib, x, w):
    y = x * 3
    z = y + 1  # an add saves nothing: changing y later leaves z's gradient alone
    y.mul_(w)
    return (z * 2 + y * y).sum()


def _setitem(lib, x, w):
    buf = lib.zeros(3, 4, dtype=lib.float64)
    buf[0] = x[0] * 2
    buf[1:] = w[1:]
    buf[:, 3] = x[:, 0]
    return (buf * buf * x).sum()


def _setitem_mask_and_fancy(lib, x, w):
    y = x.clone()
    y[y > 0] = 0.0
    y[[0, 2], 1] = w[0, :2]
    y[lib.tensor([1]), 2] = 7.0
    return (y * w).sum()


def _clamp_masked_fill_copy(lib, x, w):
    y = x * 1
    y.clamp_(-0.5, 0.5)
    y.masked_fill_(w > 0, 2.0)
    z = x * 1
    z.copy_(w * 2)
    return (y * w).sum() + (z * x).sum()


def _fill_with_tensor_value(lib, x, w):
    y = x * 1
    y.fill_(w[0, 0])
    z = x * 1
    z.masked_fill_(x > 0, w[1, 1])
    return (y * x).sum() + (z * z).sum()


def _zero_and_random_fills(lib, x, w):
    y = x * w
    y.zero_()
    z = x * 1
    z.normal_()
    return (y + x).sum() + (z * 0).sum()


def _leaf_without_grad_becomes_non_leaf(lib, x, w):
    acc = lib.zeros(4, dtype=lib.float64)
    for row in x:
        acc.add_(row * w[0])
    assert not acc.is_leaf and acc.requires_grad
    return (acc * acc).sum()


def _view_used_before_base_changes(lib, x, w):
    y = x * 1
    first = y[0] * 5  # uses a view of y, then y changes
    y.add_(w)
    return (first * first).sum() + y.sum()


SCENARIOS = [_chain, _mul_by_tensor_saves_old_self, _operators, _child_made_before_the_op,
             _setitem, _setitem_mask_and_fancy, _clamp_masked_fill_copy, _fill_with_tensor_value,
             _zero_and_random_fills, _leaf_without_grad_becomes_non_leaf,
             _view_used_before_base_changes]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.strip("_"))
def test_gradients_through_in_place_ops_match_torch(torch, scenario):
    results = []
    for lib in (torch, minidl):
        x = lib.tensor(X.copy(), requires_grad=True)
        w = lib.tensor(W.copy(), requires_grad=True)
        loss = scenario(lib, x, w)
        loss.backward()
        results.append((loss.item(), x.grad.numpy().copy(), w.grad.numpy().copy()))
    for ours, theirs in zip(results[1], results[0]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scenario", [_chain, _operators, _setitem, _clamp_masked_fill_copy],
                         ids=lambda s: s.__name__.strip("_"))
def test_in_place_gradients_by_finite_differences(scenario):
    from gradcheck import gradcheck

    gradcheck(lambda x, w: scenario(minidl, x, w), X.copy(), W.copy())


def test_version_counts_match_torch(torch):
    counts = []
    for lib in (torch, minidl):
        t = lib.zeros(3, 4)
        seen = [t._version]
        t.add_(1)
        t[0] = 5
        t.zero_()
        seen.append(t._version)
        view = t[1:]
        view.fill_(2)
        seen += [t._version, view._version]
        detached = t.detach()
        detached.mul_(2)
        seen += [t._version, lib.ones(2)._version]
        counts.append(seen)
    assert counts[1] == counts[0]


# ---- backward refuses saved tensors that were changed -----------------------------------------
def _exp_result_changed(lib, x, w):
    y = (x * 1).exp()
    y.add_(1)
    return y.sum()


def _sigmoid_result_changed(lib, x, w):
    y = (x * 1).sigmoid()
    y.mul_(2)
    return y.sum()


def _relu_result_changed(lib, x, w):
    y = (x * 1).relu()
    y.add_(1)
    return y.sum()


def _mul_operand_changed(lib, x, w):
    a = x * 1
    b = a * w
    a.add_(1)
    return b.sum()


def _leaf_changed_under_no_grad(lib, x, w):
    y = x * w
    with lib.no_grad():
        w.add_(1)
    return y.sum()


def _changed_through_a_view(lib, x, w):
    a = x * 1
    b = a * w
    with lib.no_grad():
        a[0].add_(1)
    return b.sum()


def _changed_through_detach(lib, x, w):
    y = x * w
    w.detach().zero_()
    return y.sum()


def _matmul_operand_changed(lib, x, w):
    a = x * 1
    y = a @ w.t()
    a.mul_(2)
    return y.sum()


def _setitem_on_saved(lib, x, w):
    a = x * 1
    y = a.log_softmax(1)
    y[0, 0] = 0.0
    return y.sum()


SAVED_CHANGED = [_exp_result_changed, _sigmoid_result_changed, _relu_result_changed,
                 _mul_operand_changed, _leaf_changed_under_no_grad, _changed_through_a_view,
                 _changed_through_detach, _matmul_operand_changed, _setitem_on_saved]


@pytest.mark.parametrize("scenario", SAVED_CHANGED, ids=lambda s: s.__name__.strip("_"))
def test_changed_saved_tensor_makes_backward_raise_as_torch(torch, scenario):
    message = "one of the variables needed for gradient computation has been modified by an " \
              "inplace operation"
    for lib in (torch, minidl):
        x = lib.tensor(X.copy(), requires_grad=True)
        w = lib.tensor(W.copy(), requires_grad=True)
        loss = scenario(lib, x, w)
        with pytest.raises(RuntimeError, match=message):
            loss.backward()


def _unsaved_operand_changed(lib, x, w):
    a = x * 1
    b = a + w  # an add saves nothing
    c = a * 2  # a mul by a number saves only the number
    a.mul_(3)
    return (b + c).sum()


def _leaf_changed_after_add(lib, x, w):
    y = (x + w).sum()
    with lib.no_grad():
        w.mul_(10)
    return y


@pytest.mark.parametrize("scenario", [_unsaved_operand_changed, _leaf_changed_after_add],
                         ids=lambda s: s.__name__.strip("_"))
def test_changing_an_unsaved_tensor_is_fine_as_in_torch(torch, scenario):
    grads = []
    for lib in (torch, minidl):
        x = lib.tensor(X.copy(), requires_grad=True)
        w = lib.tensor(W.copy(), requires_grad=True)
        scenario(lib, x, w).backward()
        grads.append((x.grad.numpy().copy(), w.grad.numpy().copy()))
    for ours, theirs in zip(grads[1], grads[0]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


# ---- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda lib: lib.ones(2, dtype=lib.int64).add_(1.5),
    lambda lib: lib.ones(2, dtype=lib.int64).mul_(lib.ones(2)),
    lambda lib: lib.ones(2, dtype=lib.int64).div_(2),
    lambda lib: lib.ones(2, dtype=lib.bool).add_(1),
    lambda lib: lib.ones(3).add_(lib.ones(2, 3)),
    lambda lib: lib.ones(3).copy_(lib.ones(2, 3)),
    lambda lib: lib.ones(3).masked_fill_(lib.tensor([1, 0, 1]), 0.0),
    lambda lib: lib.ones(1).expand(3).add_(1),
    lambda lib: lib.ones(3).fill_(lib.ones(2)),
    lambda lib: lib.ones(2, 3).__setitem__(0, lib.ones(2)),
], ids=["int_add_float", "int_mul_float", "int_div", "bool_add_int", "broadcast", "copy_shape",
        "int_mask", "expanded", "fill_1d", "setitem_shape"])
def test_in_place_errors_match_torch(torch, call):
    with pytest.raises(RuntimeError):
        call(torch)
    with pytest.raises(RuntimeError):
        call(minidl)


def test_in_place_ops_accept_what_torch_accepts(torch):
    for lib in (torch, minidl):
        i = lib.ones(3, dtype=lib.int64)
        i.add_(2)
        i.mul_(lib.tensor([1, 2, 3]))
        i[0] = 2.9  # item assignment truncates into an integer tensor
        f = lib.ones(3)
        f.add_(lib.ones(3, dtype=lib.int64))
        f.copy_(lib.tensor([1, 2, 3]))
        f.clamp_(max=2.5)
        assert i.tolist() == [2, 6, 9] and f.tolist() == [1.0, 2.0, 2.5]


def test_differentiable_in_place_on_a_view_is_a_clear_error():
    """PyTorch rewrites the base's graph here; minidl refuses rather than give a wrong
    gradient."""
    x = minidl.tensor(X.copy(), requires_grad=True)
    y = x * 1
    with pytest.raises(RuntimeError, match="view"):
        y[0].mul_(2)
    with pytest.raises(RuntimeError, match="view"):
        y[:, 1] += 1


def test_view_taken_before_its_base_changed_is_a_clear_error_in_backward():
    x = minidl.tensor(X.copy(), requires_grad=True)
    y = x * 1
    view = y[0]
    y.mul_(2)  # PyTorch would route view's gradient through this mul_
    with pytest.raises(RuntimeError, match="view"):
        view.sum().backward()


def test_history_of_a_tensor_changed_in_place_is_released():
    import gc
    import weakref

    x = minidl.tensor(X.copy(), requires_grad=True)
    y = x * 1
    y.add_(1)
    old = weakref.ref(y._parents[0])
    y.sum().backward()
    gc.collect()
    assert old() is None, "the state before the in-place op outlived backward"
    z = x * 1
    first = z * 1
    z.add_(1)
    (first + z).sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        first.sum().backward()
