"""Adadelta, RMSprop, Adagrad and the MultiStepLR, ExponentialLR, LambdaLR, OneCycleLR and
ReduceLROnPlateau schedulers against PyTorch: the same parameters and gradients give the same
parameters; the same schedules give the same learning rates; bad arguments raise the same
exception types."""

import warnings

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.optim import lr_scheduler

SHAPES = [(4, 3), (3,), (2, 3, 2)]
STEPS = 20


def _tol(dtype):
    return dict(rtol=2e-6, atol=2e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)


def _pair(torch, dtype, seed=0):
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [nn.Parameter(a.copy()) for a in starts]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in starts]
    return ours, theirs


def _groups(params, split, second):
    return [{"params": params[:2]}, {"params": params[2:], **second}] if split else params


def _run(torch, ours_opt, theirs_opt, ours, theirs, dtype, steps=STEPS, seed=1):
    """Give both the same random gradients (of varied scale, none for one parameter on some
    steps) and step both."""
    rng = np.random.default_rng(seed)
    for step in range(steps):
        for i, (p, tp) in enumerate(zip(ours, theirs)):
            if i == 1 and step % 3 == 1:
                p.grad, tp.grad = None, None
                continue
            g = (rng.standard_normal(p.shape) * 10.0 ** rng.integers(-2, 2)).astype(dtype)
            p.grad, tp.grad = minidl.Tensor(g.copy()), torch.from_numpy(g.copy())
        ours_opt.step()
        theirs_opt.step()


def _assert_params(ours, theirs, dtype):
    for p, tp in zip(ours, theirs):
        assert p.dtype == dtype
        np.testing.assert_allclose(p.data, tp.detach().numpy(), **_tol(dtype))


CASES = [
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4)),
    ("Adadelta", dict(lr=1.0, weight_decay=0.1, maximize=True)),
    ("Adadelta", dict(rho=0.0)),
    ("Adadelta", dict(rho=1.0)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.005, momentum=0.5, centered=True, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.01, alpha=0.3, centered=True, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    ("Adagrad", dict(lr=0.05, weight_decay=0.1, maximize=True)),
]
SECOND_GROUP = {
    "Adadelta": {"lr": 0.3, "rho": 0.5},
    "RMSprop": {"lr": 0.002, "momentum": 0.3, "centered": True},
    "Adagrad": {"lr": 0.02, "lr_decay": 0.1},
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("split", [False, True], ids=["one_group", "two_groups"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=lambda c: str(c))
def test_optimizer_matches_torch(torch, name, kwargs, split, dtype):
    ours, theirs = _pair(torch, dtype)
    second = SECOND_GROUP[name]
    ours_opt = getattr(optim, name)(_groups(ours, split, second), **kwargs)
    theirs_opt = getattr(torch.optim, name)(_groups(theirs, split, second), **kwargs)
    _run(torch, ours_opt, theirs_opt, ours, theirs, dtype)
    _assert_params(ours, theirs, dtype)


@pytest.mark.parametrize("name,kwargs", [
    ("Adadelta", dict(lr=1.0, weight_decay=1e-3)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
])
def test_training_through_a_loss_matches_torch(torch, name, kwargs):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 5))
    y = rng.uniform(-0.8, 0.8, (16, 3))
    ours, theirs = _pair(torch, np.float64)
    w, tw = ours[0], theirs[0]  # weight (4, 3), bias (3,)
    ours_opt = getattr(optim, name)([ours[0], ours[1]], **kwargs)
    theirs_opt = getattr(torch.optim, name)([theirs[0], theirs[1]], **kwargs)
    xm, ym = minidl.tensor(x[:, :4]), minidl.tensor(y)
    xt, yt = torch.from_numpy(x[:, :4]), torch.from_numpy(y)
    losses = []
    for _ in range(STEPS):
        ours_opt.zero_grad()
        theirs_opt.zero_grad()
        loss = ((minidl.matmul(xm, w) + ours[1]).tanh() - ym).__pow__(2).mean()
        loss.backward()
        tloss = ((xt @ tw + theirs[1]).tanh() - yt).pow(2).mean()
        tloss.backward()
        losses.append((loss.item(), tloss.item()))
        ours_opt.step()
        theirs_opt.step()
    assert losses[-1][0] < losses[0][0]  # it trains
    np.testing.assert_allclose(*zip(*losses), rtol=1e-12)
    _assert_params(ours[:2], theirs[:2], np.float64)


@pytest.mark.parametrize("name,kwargs", [
    ("Adadelta", dict(lr=0.5)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.1)),
])
def test_state_dict_layout_matches_torch_and_torch_state_loads(torch, name, kwargs):
    ours, theirs = _pair(torch, np.float32)
    ours_opt = getattr(optim, name)(ours, **kwargs)
    theirs_opt = getattr(torch.optim, name)(theirs, **kwargs)
    _run(torch, ours_opt, theirs_opt, ours, theirs, np.float32, steps=6)
    ours_sd, theirs_sd = ours_opt.state_dict(), theirs_opt.state_dict()
    assert ours_sd["state"].keys() == theirs_sd["state"].keys()
    for i, entry in theirs_sd["state"].items():
        assert list(ours_sd["state"][i]) == list(entry)  # names and their order
        for key, value in entry.items():
            assert ours_sd["state"][i][key].dtype == value.numpy().dtype
            np.testing.assert_allclose(ours_sd["state"][i][key], value.numpy(), rtol=1e-5)
    ours_group, theirs_group = ours_sd["param_groups"][0], theirs_sd["param_groups"][0]
    assert ours_group.keys() <= theirs_group.keys()
    assert all(ours_group[k] == theirs_group[k] for k in ours_group)

    fresh = [nn.Parameter(tp.detach().numpy().copy()) for tp in theirs]
    fresh_opt = getattr(optim, name)(fresh, lr=123.0)
    fresh_opt.load_state_dict(theirs_opt.state_dict())
    assert fresh_opt.param_groups[0]["lr"] == kwargs["lr"]
    _run(torch, fresh_opt, theirs_opt, fresh, theirs, np.float32, steps=6, seed=2)
    _assert_params(fresh, theirs, np.float32)


def _bad_optimizers():
    return [
        ("Adadelta", dict(lr=-1.0)),
        ("Adadelta", dict(rho=1.5)),
        ("Adadelta", dict(rho=-0.1)),
        ("Adadelta", dict(eps=-1e-6)),
        ("Adadelta", dict(weight_decay=-0.1)),
        ("RMSprop", dict(lr=-0.01)),
        ("RMSprop", dict(eps=-1.0)),
        ("RMSprop", dict(momentum=-0.9)),
        ("RMSprop", dict(weight_decay=-1.0)),
        ("RMSprop", dict(alpha=-0.5)),
        ("Adagrad", dict(lr=-0.01)),
        ("Adagrad", dict(lr_decay=-1.0)),
        ("Adagrad", dict(weight_decay=-1.0)),
        ("Adagrad", dict(initial_accumulator_value=-0.5)),
        ("Adagrad", dict(eps=-1e-10)),
    ]


@pytest.mark.parametrize("name,kwargs", _bad_optimizers(), ids=lambda c: str(c))
def test_bad_hyper_parameters_raise_as_torch(torch, name, kwargs):
    with pytest.raises(Exception) as theirs:
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        getattr(optim, name)([nn.Parameter(np.zeros(2, np.float32))], **kwargs)
    assert str(ours.value) == str(theirs.value)


# ---- schedulers ------------------------------------------------------------------------------
def _optimizers(torch, name="SGD", **kwargs):
    """The same two-group optimizer in both frameworks."""
    ours_p = [nn.Parameter(np.zeros(3, np.float32)) for _ in range(2)]
    theirs_p = [torch.zeros(3, requires_grad=True) for _ in range(2)]
    kwargs = kwargs or (dict(lr=0.1, momentum=0.9) if name == "SGD" else dict(lr=0.1))
    ours = getattr(optim, name)([{"params": ours_p[:1]}, {"params": ours_p[1:], "lr": 0.05}],
                                **kwargs)
    theirs = getattr(torch.optim, name)(
        [{"params": theirs_p[:1]}, {"params": theirs_p[1:], "lr": 0.05}], **kwargs
    )
    return ours, theirs


def _trace(opt, sched, steps, metrics=None):
    """(lrs, momentum-like values) after construction and after every step."""
    def snapshot():
        groups = opt.param_groups
        return (sched.get_last_lr(), [g.get("momentum", g.get("betas")) for g in groups])

    out = [snapshot()]
    for i in range(steps):
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[i])
        out.append(snapshot())
    return out


class Warmup:
    """A callable object whose state LambdaLR saves."""

    def __init__(self, steps):
        self.steps = steps

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.steps)


SCHEDULES = [
    ("MultiStepLR", dict(milestones=[3, 7, 7, 12])),
    ("MultiStepLR", dict(milestones=[2, 5], gamma=0.5)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("ExponentialLR", dict(gamma=0.37)),
    ("LambdaLR", dict(lr_lambda=lambda epoch: 0.95**epoch)),
    ("LambdaLR", dict(lr_lambda=[lambda e: 1 / (e + 1), Warmup(4)])),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=25)),
    ("OneCycleLR", dict(max_lr=[0.5, 0.2], epochs=5, steps_per_epoch=5, pct_start=0.25)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=25, anneal_strategy="linear",
                        base_momentum=0.8, max_momentum=0.9, div_factor=10.0)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=25, three_phase=True, final_div_factor=100.0)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=25, cycle_momentum=False)),
]


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=lambda c: str(c))
def test_scheduler_values_equal_torch(torch, name, kwargs, optimizer):
    ours, theirs = _optimizers(torch, optimizer)
    ours_sched = getattr(lr_scheduler, name)(ours, **kwargs)
    theirs_sched = getattr(torch.optim.lr_scheduler, name)(theirs, **kwargs)
    steps = 24
    assert _trace(ours, ours_sched, steps) == _trace(theirs, theirs_sched, steps)  # exactly
    assert ours.param_groups[0]["initial_lr"] == theirs.param_groups[0]["initial_lr"]
    if name in ("MultiStepLR", "ExponentialLR"):  # an explicit epoch uses the closed form
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours_sched.step(9)
            theirs_sched.step(9)
        assert ours_sched.get_last_lr() == theirs_sched.get_last_lr()


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler")
def test_one_cycle_stops_at_its_total_as_torch(torch):
    for module, opt in zip((lr_scheduler, torch.optim.lr_scheduler), _optimizers(torch)):
        sched = module.OneCycleLR(opt, max_lr=0.1, total_steps=3)
        for _ in range(3):
            sched.step()
        with pytest.raises(ValueError, match="Tried to step 4 times"):
            sched.step()


PLATEAUS = [
    dict(),
    dict(patience=2),
    dict(mode="max", patience=1, factor=0.5),
    dict(patience=1, threshold=0.1, threshold_mode="abs", cooldown=2),
    dict(mode="max", patience=0, threshold_mode="abs", min_lr=[0.02, 0.001]),
    dict(patience=0, factor=0.5, min_lr=0.04, eps=1e-3),
]


@pytest.mark.parametrize("kwargs", PLATEAUS, ids=lambda k: str(k))
def test_reduce_on_plateau_equals_torch(torch, kwargs):
    rng = np.random.default_rng(4)
    metrics = np.concatenate([np.linspace(1.0, 0.5, 5), 0.5 + 0.02 * rng.standard_normal(25),
                              np.linspace(0.5, 0.9, 5)]).tolist()
    ours, theirs = _optimizers(torch)
    ours_sched = lr_scheduler.ReduceLROnPlateau(ours, **kwargs)
    theirs_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kwargs)
    assert _trace(ours, ours_sched, len(metrics), metrics) == _trace(
        theirs, theirs_sched, len(metrics), metrics
    )
    assert ours_sched.best == theirs_sched.best
    assert ours_sched.num_bad_epochs == theirs_sched.num_bad_epochs
    ours_sched.step(minidl.tensor(0.1))  # a 0-d tensor metric, as loss.item() would be
    theirs_sched.step(torch.tensor(0.1))
    assert ours_sched.best == pytest.approx(theirs_sched.best)


def test_scheduler_state_dicts_round_trip():
    def make():
        opt = optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=0.1)
        return opt, lr_scheduler.LambdaLR(opt, Warmup(6))

    opt, sched = make()
    straight = [sched.get_last_lr()[0]]
    for _ in range(10):
        sched.step()
        straight.append(sched.get_last_lr()[0])
    opt1, sched1 = make()
    for _ in range(4):
        sched1.step()
    saved = sched1.state_dict()
    assert saved["lr_lambdas"] == [{"steps": 6}] and "optimizer" not in saved
    opt2, sched2 = make()
    sched2.lr_lambdas[0].steps = 99  # the saved state overwrites it
    opt2.load_state_dict(opt1.state_dict())
    sched2.load_state_dict(saved)
    assert sched2.lr_lambdas[0].steps == 6
    resumed = [sched2.get_last_lr()[0]]
    for _ in range(6):
        sched2.step()
        resumed.append(sched2.get_last_lr()[0])
    assert resumed == straight[4:]

    opt3 = optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=0.1)
    plateau = lr_scheduler.ReduceLROnPlateau(opt3, mode="max", patience=0)
    plateau.step(1.0)
    plateau.step(0.5)
    copy = lr_scheduler.ReduceLROnPlateau(optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1))
    copy.load_state_dict(plateau.state_dict())
    assert copy.mode == "max" and copy.best == 1.0 and copy._is_better(2.0, 1.0)


def _bad_schedulers():
    return [
        ("LambdaLR", dict(lr_lambda=[lambda e: 1.0])),
        ("OneCycleLR", dict(max_lr=0.1)),
        ("OneCycleLR", dict(max_lr=0.1, total_steps=0)),
        ("OneCycleLR", dict(max_lr=0.1, total_steps=2.5)),
        ("OneCycleLR", dict(max_lr=0.1, epochs=0, steps_per_epoch=3)),
        ("OneCycleLR", dict(max_lr=0.1, epochs=2, steps_per_epoch=-1)),
        ("OneCycleLR", dict(max_lr=0.1, total_steps=10, pct_start=1.5)),
        ("OneCycleLR", dict(max_lr=0.1, total_steps=10, pct_start=1)),
        ("OneCycleLR", dict(max_lr=0.1, total_steps=10, anneal_strategy="exp")),
        ("OneCycleLR", dict(max_lr=[0.1], total_steps=10)),
        ("OneCycleLR", dict(max_lr=0.1, total_steps=10, max_momentum=[0.9, 0.9, 0.9])),
        ("ReduceLROnPlateau", dict(factor=1.0)),
        ("ReduceLROnPlateau", dict(mode="up")),
        ("ReduceLROnPlateau", dict(threshold_mode="relative")),
        ("ReduceLROnPlateau", dict(min_lr=[0.1])),
        ("MultiStepLR", dict(milestones=[2], last_epoch=3)),
    ]


@pytest.mark.parametrize("name,kwargs", _bad_schedulers(), ids=lambda c: str(c))
def test_scheduler_errors_as_torch(torch, name, kwargs):
    ours, theirs = _optimizers(torch)
    with pytest.raises(Exception) as their_error:
        getattr(torch.optim.lr_scheduler, name)(theirs, **kwargs)
    with pytest.raises(type(their_error.value)):
        getattr(lr_scheduler, name)(ours, **kwargs)


def test_one_cycle_needs_momentum_as_torch(torch):
    p, tp = nn.Parameter(np.zeros(2, np.float32)), torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="momentum or beta1"):
        torch.optim.lr_scheduler.OneCycleLR(torch.optim.Adadelta([tp]), 0.1, total_steps=5)
    with pytest.raises(ValueError, match="momentum or beta1"):
        lr_scheduler.OneCycleLR(optim.Adadelta([p]), 0.1, total_steps=5)
    for module in (lr_scheduler, torch.optim.lr_scheduler):
        with pytest.raises(TypeError, match="is not an Optimizer"):
            module.OneCycleLR("sgd", 0.1, total_steps=5)
        with pytest.raises(TypeError, match="is not an Optimizer"):
            module.ReduceLROnPlateau("sgd")
