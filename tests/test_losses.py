"""Losses: PyTorch parity (values, input and target gradients) for every reduction and option,
finite differences, numerical stability and error messages."""

import itertools

import numpy as np
import pytest
from gradcheck import gradcheck

import minidl
import minidl.nn as nn
import minidl.nn.functional as F

TOL = {np.float32: {"rtol": 2e-5, "atol": 2e-6}, np.float64: {"rtol": 1e-10, "atol": 1e-12}}
DTYPES = [np.float32, np.float64]
REDUCTIONS = ["none", "mean", "sum"]


def _close(actual, expected, dtype):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), **TOL[dtype])


def compare_loss(torch, ours, theirs, x, target, dtype, seed=0, target_grad=False, **kwargs):
    """Compare ``ours(x, target, **kwargs)`` with torch's: value, d/dx and (float targets)
    d/dtarget of ``sum(loss * r)``. Array kwargs are passed as tensors to each side."""
    xm, xt = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    tm = minidl.tensor(target, requires_grad=target_grad)
    tt = torch.tensor(target, requires_grad=target_grad)
    kw_m = {k: minidl.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    kw_t = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    out_m, out_t = ours(xm, tm, **kw_m), theirs(xt, tt, **kw_t)
    assert out_m.shape == tuple(out_t.shape), (out_m.shape, tuple(out_t.shape))
    assert out_m.dtype == dtype
    _close(out_m.numpy(), out_t.detach().numpy(), dtype)
    r = np.random.default_rng(seed).standard_normal(out_m.shape).astype(dtype)
    out_m.backward(r)
    out_t.backward(torch.tensor(r))
    _close(xm.grad.numpy(), xt.grad.numpy(), dtype)
    if target_grad:
        _close(tm.grad.numpy(), tt.grad.numpy(), dtype)


# ---- cross entropy and nll: every option against torch --------------------------------------
SHAPES = [(5,), (6, 5), (3, 4, 7), (2, 3, 4, 5)]  # (C,) unbatched, (N, C), (N, C, d1, ...)


def _class_targets(g, shape, ignore_index, with_ignored):
    channels = shape[1] if len(shape) > 1 else shape[0]
    target_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
    target = g.integers(0, channels, target_shape)
    if with_ignored and target.size > 1:
        flat = target.reshape(-1)
        flat[g.choice(flat.size, max(1, flat.size // 3), replace=False)] = ignore_index
    return target


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_class_targets_match_torch(torch, reduction, dtype):
    g = np.random.default_rng(1)
    # ignore_index None: the default -100 and no ignored target
    options = itertools.product(SHAPES, (False, True), (None, -100, 1), (0.0, 0.1, 0.4))
    for shape, weighted, ignore_index, smoothing in options:
        channels = shape[1] if len(shape) > 1 else shape[0]
        x = (g.standard_normal(shape) * 3).astype(dtype)
        target = _class_targets(g, shape, ignore_index, with_ignored=ignore_index is not None)
        ignore_index = -100 if ignore_index is None else ignore_index
        kwargs = {"reduction": reduction, "ignore_index": ignore_index,
                  "label_smoothing": smoothing}
        if weighted:
            kwargs["weight"] = g.uniform(0.2, 2.0, channels).astype(dtype)
        compare_loss(torch, F.cross_entropy, torch.nn.functional.cross_entropy, x, target,
                     dtype, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probability_targets_match_torch(torch, reduction, dtype):
    g = np.random.default_rng(2)
    for shape, weighted, smoothing in itertools.product(SHAPES, (False, True), (0.0, 0.25)):
        channels = shape[1] if len(shape) > 1 else shape[0]
        x = (g.standard_normal(shape) * 3).astype(dtype)
        axis = 0 if len(shape) == 1 else 1
        target = g.uniform(0, 1, shape)
        target = (target / target.sum(axis=axis, keepdims=True)).astype(dtype)
        kwargs = {"reduction": reduction, "label_smoothing": smoothing}
        if weighted:
            kwargs["weight"] = g.uniform(0.2, 2.0, channels).astype(dtype)
        compare_loss(torch, F.cross_entropy, torch.nn.functional.cross_entropy, x, target,
                     dtype, target_grad=True, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_matches_torch(torch, reduction, dtype):
    g = np.random.default_rng(3)
    for shape, weighted, ignore_index in itertools.product(SHAPES, (False, True), (-100, 2)):
        channels = shape[1] if len(shape) > 1 else shape[0]
        x = g.standard_normal(shape).astype(dtype)
        target = _class_targets(g, shape, ignore_index, with_ignored=True)
        kwargs = {"reduction": reduction, "ignore_index": ignore_index}
        if weighted:
            kwargs["weight"] = g.uniform(0.2, 2.0, channels).astype(dtype)
        compare_loss(torch, F.nll_loss, torch.nn.functional.nll_loss, x, target, dtype,
                     **kwargs)


def test_cross_entropy_equals_log_softmax_then_nll(torch):
    g = np.random.default_rng(4)
    x = minidl.tensor(g.standard_normal((8, 6)))
    target = minidl.tensor(g.integers(0, 6, 8))
    a = F.cross_entropy(x, target).item()
    b = F.nll_loss(F.log_softmax(x, 1), target).item()
    assert abs(a - b) < 1e-12


def test_cross_entropy_all_ignored_is_nan_like_torch(torch):
    x = np.zeros((3, 4), np.float32)
    target = np.full(3, -100)
    ours = F.cross_entropy(minidl.tensor(x), minidl.tensor(target)).item()
    theirs = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(target)).item()
    assert np.isnan(ours) and np.isnan(theirs)
    assert F.cross_entropy(minidl.tensor(x), minidl.tensor(target), reduction="sum").item() == 0


def test_cross_entropy_is_stable_for_huge_logits(torch):
    x = np.array([[1e4, -1e4, 0.0], [-3e4, 3e4, 3e4]], np.float32)
    target = np.array([1, 2])
    compare_loss(torch, F.cross_entropy, torch.nn.functional.cross_entropy, x, target,
                 np.float32)
    compare_loss(torch, F.cross_entropy, torch.nn.functional.cross_entropy, x, target,
                 np.float32, label_smoothing=0.2)


# ---- regression losses and BCE ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_regression_losses_match_torch(torch, name, reduction, dtype):
    g = np.random.default_rng(5)
    ours, theirs = getattr(F, name), getattr(torch.nn.functional, name)
    for shape in ((7,), (3, 4), (2, 3, 4)):
        x = g.standard_normal(shape).astype(dtype)
        target = g.standard_normal(shape).astype(dtype)
        target.reshape(-1)[0] = x.reshape(-1)[0]  # |x - t| = 0: the L1 subgradient 0
        compare_loss(torch, ours, theirs, x, target, dtype, target_grad=True,
                     reduction=reduction)
        weight = g.uniform(0.1, 2, shape).astype(dtype)
        compare_loss(torch, ours, theirs, x, target, dtype, target_grad=True,
                     reduction=reduction, weight=weight)


def test_regression_loss_broadcast_warns_like_torch(torch):
    g = np.random.default_rng(6)
    x, target = g.standard_normal((4, 3)), g.standard_normal((1, 3))
    for name in ("mse_loss", "l1_loss"):
        with pytest.warns(UserWarning, match="different to the input size"):
            compare_loss(torch, getattr(F, name), getattr(torch.nn.functional, name), x,
                         target, np.float64, target_grad=True)
    with pytest.raises(ValueError, match="does not broadcast"):
        with pytest.warns(UserWarning):
            F.mse_loss(minidl.tensor(x), minidl.tensor(np.zeros((2, 3))))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_torch(torch, reduction, dtype):
    g = np.random.default_rng(7)
    ours = F.binary_cross_entropy_with_logits
    theirs = torch.nn.functional.binary_cross_entropy_with_logits
    for shape, weighted, positive in itertools.product(((6,), (5, 4), (2, 3, 4)),
                                                       (False, True), (False, True)):
        x = (g.standard_normal(shape) * 4).astype(dtype)
        x.reshape(-1)[:2] = (60, -60)  # saturated logits stay finite
        target = g.uniform(0, 1, shape).astype(dtype)
        kwargs = {"reduction": reduction}
        if weighted:
            kwargs["weight"] = g.uniform(0.1, 2, shape[-1:]).astype(dtype)
        if positive:
            kwargs["pos_weight"] = g.uniform(0.5, 3, shape[-1:]).astype(dtype)
        compare_loss(torch, ours, theirs, x, target, dtype, target_grad=True, **kwargs)


# ---- modules ---------------------------------------------------------------------------------
def test_loss_modules_match_torch(torch):
    g = np.random.default_rng(8)
    x = g.standard_normal((6, 4)).astype(np.float32)
    labels = g.integers(0, 4, 6)
    labels[0] = 3
    probs = g.uniform(0, 1, (6, 4)).astype(np.float32)
    weight = g.uniform(0.5, 2, 4).astype(np.float32)
    cases = [
        ("CrossEntropyLoss", {"weight": weight, "ignore_index": 3, "label_smoothing": 0.1},
         labels),
        ("CrossEntropyLoss", {"reduction": "sum"}, probs / probs.sum(1, keepdims=True)),
        ("NLLLoss", {"weight": weight, "reduction": "none"}, labels),
        ("MSELoss", {}, probs),
        ("L1Loss", {"reduction": "sum"}, probs),
        ("BCEWithLogitsLoss", {"pos_weight": weight, "weight": weight}, probs),
    ]
    for name, kwargs, target in cases:
        ours = getattr(nn, name)(**{k: minidl.tensor(v) if isinstance(v, np.ndarray) else v
                                    for k, v in kwargs.items()})
        theirs = getattr(torch.nn, name)(**{k: torch.tensor(v) if isinstance(v, np.ndarray)
                                            else v for k, v in kwargs.items()})
        assert list(ours.state_dict()) == list(theirs.state_dict()), name
        compare_loss(torch, ours, theirs, x, target, np.float32)
    ce = nn.CrossEntropyLoss(weight=minidl.tensor(weight)).to(np.float64)
    assert ce.weight.dtype == np.float64  # the weight buffer follows .to()


def test_legacy_size_average_and_reduce(torch):
    x, t = minidl.tensor(np.arange(4.0)), minidl.tensor(np.zeros(4))
    with pytest.warns(UserWarning, match="size_average and reduce"):
        assert F.mse_loss(x, t, size_average=False).item() == 14.0
    with pytest.warns(UserWarning):
        assert F.l1_loss(x, t, reduce=False).shape == (4,)
    with pytest.warns(UserWarning):
        assert nn.MSELoss(size_average=True, reduce=True).reduction == "mean"


# ---- finite differences (float64) ------------------------------------------------------------
# Class weights and pos_weight are constants here: like PyTorch's nll_loss, minidl gives them no
# gradient. mse/l1 ``weight`` does get one.
g0 = np.random.default_rng(9)
LOGITS = g0.standard_normal((4, 5))
LABELS = np.array([0, 4, -100, 2])
PROBS = g0.dirichlet(np.ones(5), 4)
CLASS_W = g0.uniform(0.5, 2, 5)
REG_T = g0.standard_normal((3, 4))

GRADCHECK_CASES = [
    ("ce", lambda x: F.cross_entropy(x, minidl.tensor(LABELS)), (LOGITS,)),
    ("ce_all_options", lambda x: F.cross_entropy(
        x, minidl.tensor(LABELS), minidl.tensor(CLASS_W), ignore_index=-100,
        label_smoothing=0.2), (LOGITS,)),
    ("ce_none_4d", lambda x: F.cross_entropy(x, minidl.tensor(np.array([[[1, 0], [2, 2]]])),
                                             reduction="none", label_smoothing=0.1),
     (g0.standard_normal((1, 3, 2, 2)),)),
    ("ce_probs", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.3, reduction="sum"),
     (LOGITS, PROBS)),
    ("ce_probs_weight", lambda x, t: F.cross_entropy(x, t, minidl.tensor(CLASS_W)),
     (LOGITS, PROBS)),
    ("ce_unbatched", lambda x: F.cross_entropy(x, minidl.tensor(3)), (LOGITS[0],)),
    ("nll", lambda x: F.nll_loss(x, minidl.tensor(LABELS), minidl.tensor(CLASS_W)), (LOGITS,)),
    ("mse", lambda x, t: F.mse_loss(x, t), (REG_T + 0.5, REG_T)),
    ("mse_weight", lambda x, t, w: F.mse_loss(x, t, weight=w, reduction="sum"),
     (REG_T + 0.5, REG_T, np.abs(REG_T))),
    ("l1", lambda x, t: F.l1_loss(x, t, reduction="none"), (REG_T + 0.5, REG_T * 0.3)),
    ("bce", lambda x, t: F.binary_cross_entropy_with_logits(x, t), (REG_T * 3, PROBS[:3, :4])),
    ("bce_weights", lambda x, t: F.binary_cross_entropy_with_logits(
        x, t, minidl.tensor(CLASS_W[:4]), reduction="sum", pos_weight=minidl.tensor(CLASS_W[1:])),
     (REG_T, PROBS[:3, :4])),
]


@pytest.mark.parametrize("name, fn, arrays", GRADCHECK_CASES, ids=[c[0] for c in GRADCHECK_CASES])
def test_loss_gradcheck(name, fn, arrays):
    gradcheck(fn, *arrays)


# ---- errors ----------------------------------------------------------------------------------
def test_loss_errors():
    x = minidl.tensor(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"has shape \(3, 5\).*needs target of shape \(3,\)"):
        F.cross_entropy(x, minidl.tensor(np.zeros((3, 5), np.int64)))
    with pytest.raises(ValueError, match=r"target 4 is out of bounds.*\[0, 3\]"):
        F.cross_entropy(x, minidl.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match=r"target -1 is out of bounds"):
        F.nll_loss(x, minidl.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match=r"probability target.*\(3, 5\).*\(3, 4\)"):
        F.cross_entropy(x, minidl.tensor(np.zeros((3, 5), np.float32)))
    with pytest.raises(ValueError, match="ignore_index is not supported"):
        F.cross_entropy(x, minidl.tensor(np.zeros((3, 4), np.float32)), ignore_index=1)
    with pytest.raises(ValueError, match=r"weight has shape \(3,\), expected \(4,\)"):
        F.cross_entropy(x, minidl.tensor([0, 1, 2]), weight=minidl.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="'avg' is not a valid value for reduction"):
        F.mse_loss(x, x, reduction="avg")
    with pytest.raises(TypeError, match="class indices"):
        F.cross_entropy(x, minidl.tensor([True, False, True]))
    with pytest.raises(ValueError, match=r"target size \(3, 1\) must be the same as input"):
        F.binary_cross_entropy_with_logits(x, minidl.tensor(np.zeros((3, 1), np.float32)))
    with pytest.raises(ValueError, match="pos_weight of shape"):
        F.binary_cross_entropy_with_logits(x, x, pos_weight=minidl.tensor(np.ones(3)))
    with pytest.raises(ValueError, match="weight has shape"):
        F.mse_loss(x, x, weight=minidl.tensor(np.ones(4)))
    with pytest.raises(TypeError, match="minidl Tensor"):
        F.cross_entropy(np.zeros((3, 4)), minidl.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, minidl.tensor([0, 1, 2]), label_smoothing=1.5)
