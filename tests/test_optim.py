"""Optimizers, schedulers and gradient clipping against PyTorch (the oracle).

Parameters start from identical values; each step both frameworks get the same gradients,
either given explicitly (random) or computed from the same small loss.
"""

import math
import warnings

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    parameters_to_vector,
    vector_to_parameters,
)
from minidl.optim.lr_scheduler import CosineAnnealingLR, StepLR

SHAPES = [(4, 3), (3,), (2, 3, 2)]
STEPS = 20


def _tol(dtype):
    return dict(rtol=2e-6, atol=2e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)


def _starts(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _pair(torch, starts):
    ours = [nn.Parameter(a.copy()) for a in starts]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in starts]
    return ours, theirs


def _groups(params, split, second):
    """All params in one group, or the first two in one group and the rest in a second group
    with its own options."""
    if not split:
        return params
    return [{"params": params[:2]}, {"params": params[2:], **second}]


def _run_explicit(torch, ours_opt, theirs_opt, ours, theirs, dtype, steps=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    for step in range(steps):
        for i, (p, tp) in enumerate(zip(ours, theirs, strict=True)):
            if i == 1 and step % 3 == 1:  # a parameter without gradient on some steps
                p.grad, tp.grad = None, None
                continue
            g = (rng.standard_normal(p.shape) * 10.0 ** rng.integers(-2, 2)).astype(dtype)
            p.grad = minidl.Tensor(g.copy())
            tp.grad = torch.from_numpy(g.copy())
        ours_opt.step()
        theirs_opt.step()


def _assert_params(ours, theirs, dtype):
    for p, tp in zip(ours, theirs, strict=True):
        assert p.dtype == dtype
        np.testing.assert_allclose(p.data, tp.detach().numpy(), **_tol(dtype))


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.5),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.05),
    dict(lr=0.1, momentum=0.5, maximize=True),
    dict(lr=0.02, momentum=0.8, weight_decay=0.1, nesterov=True, maximize=True),
]
ADAM_CASES = [
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, betas=(0.5, 0.9), eps=1e-6, weight_decay=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.02, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.5)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("split", [False, True], ids=["one_group", "two_groups"])
@pytest.mark.parametrize(
    "kwargs", SGD_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items())
)
def test_sgd_matches_torch(torch, kwargs, split, dtype):
    ours, theirs = _pair(torch, _starts(dtype))
    second = {"lr": kwargs["lr"] * 3, "weight_decay": 0.2}
    ours_opt = optim.SGD(_groups(ours, split, second), **kwargs)
    theirs_opt = torch.optim.SGD(_groups(theirs, split, second), **kwargs)
    _run_explicit(torch, ours_opt, theirs_opt, ours, theirs, dtype)
    _assert_params(ours, theirs, dtype)


def test_sgd_float32_is_bitwise_identical_on_fma_builds(torch):
    """torch's CPU kernels fuse ``p + alpha * g`` into one rounding; so does minidl, so SGD's
    float32 weights agree bit for bit where torch runs its AVX2/AVX512 kernels."""
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("torch runs its non-FMA CPU kernels here")
    rng = np.random.default_rng(2)
    starts = [rng.standard_normal(s).astype(np.float32) for s in [(1000,), (7,), (33, 5)]]
    ours, theirs = _pair(torch, starts)
    kwargs = dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)
    ours_opt, theirs_opt = optim.SGD(ours, **kwargs), torch.optim.SGD(theirs, **kwargs)
    _run_explicit(torch, ours_opt, theirs_opt, ours, theirs, np.float32)
    for p, tp in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(p.data, tp.detach().numpy())


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.05),
    dict(lr=0.05, momentum=0.9, dampening=0.2, maximize=True),
    dict(lr=0.01, momentum=0.5, weight_decay=0.1),
], ids=str)
def test_sgd_kernel_is_bitwise_identical_to_torch(torch, kwargs):
    """The SGD kernel (minidl/_ext/optim.pyx) rounds as torch's AVX2/AVX512 kernels, on every
    instruction-set path (without FMA hardware the C library's fma is exact too; CI runs this
    file with each MINIDL_MAX_ISA). Adam cannot be bitwise: torch's vectorized float32 sqrt is
    not correctly rounded (an ulp off on about a sixth of the elements here), so Adam is
    compared within a tolerance (test_optimizer_matches_torch)."""
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("torch runs its non-FMA CPU kernels here")
    rng = np.random.default_rng(4)
    starts = [rng.standard_normal(s).astype(np.float32) for s in [(40000,), (7,), (33, 5)]]
    ours, theirs = _pair(torch, starts)
    ours_opt, theirs_opt = optim.SGD(ours, **kwargs), torch.optim.SGD(theirs, **kwargs)
    _run_explicit(torch, ours_opt, theirs_opt, ours, theirs, np.float32)
    for p, tp in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(p.data, tp.detach().numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("split", [False, True], ids=["one_group", "two_groups"])
@pytest.mark.parametrize("name,kwargs", ADAM_CASES, ids=lambda c: str(c))
def test_adam_matches_torch(torch, name, kwargs, split, dtype):
    ours, theirs = _pair(torch, _starts(dtype))
    second = {"lr": kwargs["lr"] / 4, "betas": (0.7, 0.95), "amsgrad": True}
    ours_opt = getattr(optim, name)(_groups(ours, split, second), **kwargs)
    theirs_opt = getattr(torch.optim, name)(_groups(theirs, split, second), **kwargs)
    _run_explicit(torch, ours_opt, theirs_opt, ours, theirs, dtype)
    _assert_params(ours, theirs, dtype)


def _loss_ours(w, b, x, y):
    return ((minidl.matmul(x, w) + b).tanh() - y).__pow__(2).mean()


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("SGD", dict(lr=0.2, momentum=0.9, nesterov=True, weight_decay=1e-3)),
        ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=1e-3)),
        ("AdamW", dict(lr=0.05)),
    ],
)
def test_training_through_a_loss_matches_torch(torch, name, kwargs):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    y = rng.uniform(-0.8, 0.8, (16, 3)).astype(np.float32)
    w0 = (rng.standard_normal((5, 3)) * 0.5).astype(np.float32)
    b0 = np.zeros(3, np.float32)
    ours, theirs = _pair(torch, [w0, b0])
    ours_opt = getattr(optim, name)(
        [{"params": [ours[0]]}, {"params": [ours[1]], "lr": kwargs["lr"] / 2}], **kwargs
    )
    theirs_opt = getattr(torch.optim, name)(
        [{"params": [theirs[0]]}, {"params": [theirs[1]], "lr": kwargs["lr"] / 2}], **kwargs
    )
    xm, ym = minidl.tensor(x), minidl.tensor(y)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    losses = []
    for _ in range(STEPS):
        ours_opt.zero_grad()
        theirs_opt.zero_grad()
        loss = _loss_ours(ours[0], ours[1], xm, ym)
        loss.backward()
        tloss = ((xt @ theirs[0] + theirs[1]).tanh() - yt).pow(2).mean()
        tloss.backward()
        losses.append((loss.item(), tloss.item()))
        ours_opt.step()
        theirs_opt.step()
    assert losses[-1][0] < losses[0][0]  # it trains
    np.testing.assert_allclose(*zip(*losses, strict=True), rtol=1e-5)
    for p, tp in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_step_with_closure_and_zero_grad():
    p = nn.Parameter(np.array([1.0, -2.0], np.float32))
    opt = optim.SGD([p], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.data, [0.0, 0.0])
    assert p.grad is not None
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.data, [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no gradients: nothing changes
    np.testing.assert_allclose(p.data, [0.0, 0.0])


# ---- state_dict ------------------------------------------------------------------------------
def _grads(seed, steps):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(steps)]


def _apply(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = minidl.Tensor(g)
        opt.step()


def _make(name, params):
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": 0.003}]
    if name == "SGD":
        return optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.01)
    if name == "Adam":
        return optim.Adam(groups, lr=0.01, amsgrad=True, weight_decay=0.01)
    return optim.AdamW(groups, lr=0.01)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_state_dict_round_trip_continues_identically(name):
    grads = _grads(5, 20)
    straight = [nn.Parameter(a) for a in _starts(np.float32)]
    opt = _make(name, straight)
    _apply(opt, straight, grads)

    first = [nn.Parameter(a) for a in _starts(np.float32)]
    opt1 = _make(name, first)
    _apply(opt1, first, grads[:10])
    saved = opt1.state_dict()
    saved_params = [p.numpy().copy() for p in first]
    _apply(opt1, first, grads[10:13])  # keep going: the saved dict must not change
    assert set(saved) == {"state", "param_groups"}
    assert [g["params"] for g in saved["param_groups"]] == [[0, 1], [2]]
    assert set(saved["state"]) == {0, 1, 2}
    assert all(isinstance(v, np.ndarray) for s in saved["state"].values() for v in s.values())

    resumed = [nn.Parameter(a) for a in saved_params]
    opt2 = _make(name, resumed)
    opt2.param_groups[0]["lr"] = 123.0  # overwritten by the loaded groups
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == 0.01
    assert opt2.param_groups[1]["params"] == [resumed[2]]
    _apply(opt2, resumed, grads[10:])
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_state_dict_layout_matches_torch_and_torch_state_loads(torch, name):
    grads = _grads(7, 12)
    ours = [nn.Parameter(a) for a in _starts(np.float32)]
    theirs = [torch.tensor(a, requires_grad=True) for a in _starts(np.float32)]
    kwargs = dict(lr=0.01, momentum=0.9) if name == "SGD" else dict(lr=0.01, amsgrad=True)
    ours_opt = getattr(optim, name)(ours, **kwargs)
    theirs_opt = getattr(torch.optim, name)(theirs, **kwargs)
    for step_grads in grads[:6]:
        for p, tp, g in zip(ours, theirs, step_grads, strict=True):
            p.grad, tp.grad = minidl.Tensor(g), torch.from_numpy(g.copy())
        ours_opt.step()
        theirs_opt.step()
    ours_sd, theirs_sd = ours_opt.state_dict(), theirs_opt.state_dict()
    assert ours_sd["state"].keys() == theirs_sd["state"].keys()
    for i, entry in theirs_sd["state"].items():
        assert ours_sd["state"][i].keys() == entry.keys()
        for key, value in entry.items():
            np.testing.assert_allclose(ours_sd["state"][i][key], value.numpy(), rtol=1e-5)
    ours_group, theirs_group = ours_sd["param_groups"][0], theirs_sd["param_groups"][0]
    assert ours_group.keys() <= theirs_group.keys()
    assert all(ours_group[k] == theirs_group[k] for k in ours_group)

    # torch's state (tensors) loads into a fresh minidl optimizer and continues like torch
    fresh = [nn.Parameter(tp.detach().numpy().copy()) for tp in theirs]
    fresh_opt = getattr(optim, name)(fresh, lr=0.5)
    fresh_opt.load_state_dict(theirs_opt.state_dict())
    assert fresh_opt.param_groups[0]["lr"] == 0.01
    for step_grads in grads[6:]:
        for p, tp, g in zip(fresh, theirs, step_grads, strict=True):
            p.grad, tp.grad = minidl.Tensor(g), torch.from_numpy(g.copy())
        fresh_opt.step()
        theirs_opt.step()
    _assert_params(fresh, theirs, np.float32)


def test_load_state_dict_rejects_mismatches():
    params = [nn.Parameter(a) for a in _starts(np.float32)]
    opt = optim.Adam(params)
    _apply(opt, params, _grads(0, 1))
    saved = opt.state_dict()
    other = optim.Adam([{"params": params[:1]}, {"params": params[1:]}])
    with pytest.raises(ValueError, match="parameter groups"):
        other.load_state_dict(saved)
    with pytest.raises(ValueError, match="3 parameters, this optimizer.s has 2"):
        optim.Adam(params[:2]).load_state_dict(saved)
    shuffled = optim.Adam([params[1], params[0], params[2]])
    with pytest.raises(ValueError, match="shape"):
        shuffled.load_state_dict(saved)


# ---- errors --------------------------------------------------------------------------------------
def _p():
    return nn.Parameter(np.zeros(3, np.float32))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: optim.SGD([_p()], lr=-0.1), "-0.1"),
        (lambda: optim.SGD([_p()], lr=0.1, momentum=-0.5), "-0.5"),
        (lambda: optim.SGD([_p()], lr=0.1, weight_decay=-1e-3), "-0.001"),
        (lambda: optim.SGD([_p()], lr=0.1, nesterov=True), "Nesterov.*momentum=0"),
        (
            lambda: optim.SGD([_p()], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
            "dampening=0.1",
        ),
        (lambda: optim.SGD([{"params": [_p()], "lr": -2.0}], lr=0.1), "-2.0"),
        (lambda: optim.Adam([_p()], lr=-1e-3), "-0.001"),
        (lambda: optim.Adam([_p()], betas=(1.0, 0.999)), "index 0: 1.0"),
        (lambda: optim.Adam([_p()], betas=(0.9, -0.1)), "index 1: -0.1"),
        (lambda: optim.Adam([_p()], betas=(0.9, 1.5)), "index 1: 1.5"),
        (lambda: optim.Adam([_p()], eps=-1.0), "-1.0"),
        (lambda: optim.AdamW([_p()], weight_decay=-0.01), "-0.01"),
        (lambda: optim.AdamW([{"params": [_p()], "betas": (0.9, 1.0)}]), "index 1: 1.0"),
        (lambda: optim.SGD([], lr=0.1), "empty parameter list"),
        (lambda: optim.Adam(iter([])), "empty parameter list"),
    ],
)
def test_bad_hyper_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_parameter_groups_must_be_disjoint():
    a, b = _p(), _p()
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [a, b]}, {"params": [b]}], lr=0.1)
    opt = optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="duplicate"):
        optim.SGD([a, a], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        optim.SGD(a, lr=0.1)
    with pytest.raises(TypeError, match="sets"):
        optim.SGD({a}, lr=0.1)
    with pytest.raises(TypeError, match="ndarray"):
        optim.SGD([np.zeros(3)], lr=0.1)
    opt.add_param_group({"params": b, "momentum": 0.9})
    assert opt.param_groups[1]["params"] == [b]
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.1


def test_named_parameters_are_accepted():
    model = nn.Module()
    model.w = nn.Parameter(np.ones(2, np.float32))
    model.b = nn.Parameter(np.ones(1, np.float32))
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["w", "b"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]


# ---- schedulers ------------------------------------------------------------------------------
def _schedule(opt, sched, steps):
    lrs = [sched.get_last_lr()]
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
    return lrs


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("StepLR", dict(step_size=7)),
        ("StepLR", dict(step_size=3, gamma=0.5)),
        ("CosineAnnealingLR", dict(T_max=10)),
        ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001)),
        ("CosineAnnealingLR", dict(T_max=30, eta_min=1e-4)),
    ],
)
def test_scheduler_lrs_equal_torch(torch, name, kwargs):
    ours = optim.SGD([{"params": [_p()]}, {"params": [_p()], "lr": 0.05}], lr=0.1, momentum=0.9)
    tp = [torch.zeros(3, requires_grad=True) for _ in range(2)]
    theirs = torch.optim.SGD([{"params": tp[:1]}, {"params": tp[1:], "lr": 0.05}], lr=0.1)
    ours_sched = getattr(optim.lr_scheduler, name)(ours, **kwargs)
    theirs_sched = getattr(torch.optim.lr_scheduler, name)(theirs, **kwargs)
    ours_lrs = _schedule(ours, ours_sched, 30)
    theirs_lrs = _schedule(theirs, theirs_sched, 30)
    assert ours_lrs == theirs_lrs  # exactly: the same recursive formulas in double precision
    assert [g["lr"] for g in ours.param_groups] == ours_lrs[-1]
    assert ours.param_groups[0]["initial_lr"] == 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours_sched.step(12)
        theirs_sched.step(12)  # an explicit epoch uses the closed form
    assert ours_sched.get_last_lr() == theirs_sched.get_last_lr()


def test_cosine_follows_the_closed_form():
    opt = optim.SGD([_p()], lr=0.1)
    sched = CosineAnnealingLR(opt, T_max=10, eta_min=0.01)
    lrs = _schedule(opt, sched, 30)
    expected = [0.01 + 0.09 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(31)]
    np.testing.assert_allclose([lr[0] for lr in lrs], expected, rtol=1e-12, atol=1e-15)


def test_scheduler_state_dict_round_trip():
    opt = optim.SGD([_p()], lr=0.1)
    sched = CosineAnnealingLR(opt, T_max=12, eta_min=0.001)
    straight = _schedule(opt, sched, 20)

    opt1 = optim.SGD([_p()], lr=0.1)
    sched1 = CosineAnnealingLR(opt1, T_max=12, eta_min=0.001)
    _schedule(opt1, sched1, 8)
    opt_state, sched_state = opt1.state_dict(), sched1.state_dict()
    assert "optimizer" not in sched_state and sched_state["last_epoch"] == 8

    opt2 = optim.SGD([_p()], lr=0.1)
    sched2 = CosineAnnealingLR(opt2, T_max=12, eta_min=0.001)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    assert _schedule(opt2, sched2, 12) == straight[8:]


def test_scheduler_errors():
    opt = optim.SGD([_p()], lr=0.1)
    with pytest.raises(ValueError, match="step_size"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max"):
        CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(TypeError, match="not an Optimizer"):
        StepLR("sgd", step_size=2)
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(optim.SGD([_p()], lr=0.1), step_size=2, last_epoch=3)
    assert optim.StepLR is StepLR and optim.CosineAnnealingLR is CosineAnnealingLR


# ---- gradient clipping -----------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1, float("inf"), "inf", 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e4])
def test_clip_grad_norm_matches_torch(torch, norm_type, max_norm):
    rng = np.random.default_rng(11)
    starts = _starts(np.float32) + [np.ones(2, np.float32)]
    ours, theirs = _pair(torch, starts)
    for p, tp in zip(ours[:-1], theirs[:-1], strict=True):  # the last one has no gradient
        g = (rng.standard_normal(p.shape) * 3).astype(np.float32)
        p.grad, tp.grad = minidl.Tensor(g), torch.from_numpy(g.copy())
    norm = clip_grad_norm_(iter(ours), max_norm, norm_type)
    tnorm = torch.nn.utils.clip_grad_norm_(iter(theirs), max_norm, norm_type)
    assert isinstance(norm, minidl.Tensor) and norm.shape == () and norm.dtype == np.float32
    np.testing.assert_allclose(norm.item(), tnorm.item(), rtol=1e-6)
    for p, tp in zip(ours, theirs, strict=True):
        if tp.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-6, atol=1e-7)
    if max_norm > norm.item():
        assert all(
            np.array_equal(p.grad.data, tp.grad.numpy())
            for p, tp in zip(ours[:-1], theirs[:-1], strict=True)
        )


def test_clip_grad_norm_edge_cases():
    p = nn.Parameter(np.ones(3, np.float32))
    assert clip_grad_norm_([p], 1.0).item() == 0.0  # no gradients
    p.grad = minidl.Tensor(np.array([3.0, 4.0, 0.0], np.float32))
    assert clip_grad_norm_(p, 1.0).item() == pytest.approx(5.0)  # a single tensor
    np.testing.assert_allclose(np.linalg.norm(p.grad.data), 1.0, rtol=1e-5)
    p.grad = minidl.Tensor(np.array([np.nan, 1.0, 0.0], np.float32))
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert np.isnan(clip_grad_norm_([p], 1.0).item())
    p.grad = minidl.Tensor(np.array([-3.0, 0.5, 2.0], np.float32))
    clip_grad_value_([p], 1.0)
    np.testing.assert_array_equal(p.grad.data, [-1.0, 0.5, 1.0])


def test_parameters_vector_round_trip():
    params = [nn.Parameter(a) for a in _starts(np.float32)]
    vec = parameters_to_vector(params)
    assert vec.shape == (sum(int(np.prod(s)) for s in SHAPES),)
    np.testing.assert_array_equal(vec.data, np.concatenate([p.numpy().ravel() for p in params]))
    (vec * minidl.tensor(np.arange(vec.shape[0], dtype=np.float32))).sum().backward()
    np.testing.assert_array_equal(params[1].grad.data, np.arange(12, 15))
    vector_to_parameters(minidl.tensor(np.arange(vec.shape[0], dtype=np.float32)), params)
    np.testing.assert_array_equal(params[2].numpy().ravel(), np.arange(15, 27))
    assert params[2].shape == SHAPES[2]
    with pytest.raises(ValueError, match="elements"):
        vector_to_parameters(minidl.tensor(np.zeros(5, np.float32)), params)
