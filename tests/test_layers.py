"""Linear, activations, Flatten, Identity and Dropout: finite differences, PyTorch parity
(forward, input and parameter gradients), initialisation distributions and error messages.

Pools are in test_layer_pool.py, BatchNorm in test_layer_batchnorm.py, losses in
test_losses.py.
"""

import numpy as np
import pytest
from gradcheck import gradcheck
from scipy import stats

import minidl
import minidl.nn as nn
import minidl.nn.functional as F

TOL = {np.float32: {"rtol": 1e-5, "atol": 1e-6}, np.float64: {"rtol": 1e-10, "atol": 1e-12}}
DTYPES = [np.float32, np.float64]


def _close(actual, expected, dtype, scale=1.0):
    tol = TOL[dtype]
    np.testing.assert_allclose(
        np.asarray(actual), np.asarray(expected), rtol=tol["rtol"], atol=tol["atol"] * scale
    )


def _torch_tensor(torch, a, requires_grad=False):
    return torch.tensor(a, requires_grad=requires_grad)


def compare_fn(torch, ours, theirs, arrays, dtype, seed=0, scale=1.0):
    """Run ``ours`` on minidl tensors and ``theirs`` on torch tensors of the same arrays;
    compare the outputs and the gradients of ``sum(out * r)`` for every float input."""
    arrays = [np.asarray(a, dtype) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
              for a in arrays]
    grads = [a.dtype.kind == "f" for a in arrays]
    mt = [minidl.tensor(a, requires_grad=g) for a, g in zip(arrays, grads, strict=True)]
    tt = [_torch_tensor(torch, a, g) for a, g in zip(arrays, grads, strict=True)]
    out_m, out_t = ours(*mt), theirs(*tt)
    assert out_m.shape == tuple(out_t.shape), (out_m.shape, tuple(out_t.shape))
    assert out_m.dtype == dtype
    _close(out_m.numpy(), out_t.detach().numpy(), dtype, scale)
    r = np.random.default_rng(seed).standard_normal(out_m.shape).astype(dtype)
    (out_m * minidl.tensor(r)).sum().backward()
    (out_t * torch.tensor(r)).sum().backward()
    for m, t, g in zip(mt, tt, grads, strict=True):
        if g:
            assert m.grad is not None and m.grad.dtype == dtype
            _close(m.grad.numpy(), t.grad.numpy(), dtype, scale)


def copy_params(ours, theirs, torch):
    """Load our module's parameters and buffers into the torch module."""
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})


def compare_module(torch, ours, theirs, x, dtype, seed=0, scale=1.0):
    """Forward and backward of two modules holding the same parameters."""
    xm = minidl.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out_m, out_t = ours(xm), theirs(xt)
    assert out_m.shape == tuple(out_t.shape)
    _close(out_m.numpy(), out_t.detach().numpy(), dtype, scale)
    r = np.random.default_rng(seed).standard_normal(out_m.shape).astype(dtype)
    (out_m * minidl.tensor(r)).sum().backward()
    (out_t * torch.tensor(r)).sum().backward()
    _close(xm.grad.numpy(), xt.grad.numpy(), dtype, scale)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        _close(p.grad.numpy(), theirs_params[name].grad.numpy(), dtype, scale)


# ---- finite differences (float64) ----------------------------------------------------------
rng = np.random.default_rng(0)


def _rand(*shape):
    return rng.standard_normal(shape)


def _seeded_dropout(x, p):
    minidl.manual_seed(3)  # the same mask at every evaluation
    return F.dropout(x, p)


@pytest.mark.parametrize(
    "name, fn, arrays",
    [
        ("linear", lambda x, w, b: F.linear(x, w, b), (_rand(3, 4), _rand(5, 4), _rand(5))),
        ("linear_nobias", lambda x, w: F.linear(x, w), (_rand(2, 3, 4), _rand(2, 4))),
        ("linear_1d", lambda x, w, b: F.linear(x, w, b), (_rand(4), _rand(3, 4), _rand(3))),
        ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), (_rand(4, 5),)),
        ("gelu", lambda x: F.gelu(x), (_rand(4, 5) * 2,)),
        ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), (_rand(4, 5) * 2,)),
        ("softmax", lambda x: F.softmax(x, -1), (_rand(3, 4),)),
        ("log_softmax", lambda x: F.log_softmax(x, 0), (_rand(3, 4),)),
        ("flatten", lambda x: F.flatten(x, 1, 2) * 2, (_rand(2, 3, 2, 2),)),
        ("dropout", lambda x: _seeded_dropout(x, 0.4), (_rand(4, 6),)),
    ],
)
def test_layer_op_gradients_match_finite_differences(name, fn, arrays):
    gradcheck(fn, *arrays)


# ---- Linear ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_linear_matches_torch(torch, seed):
    g = np.random.default_rng(100 + seed)
    dtype = DTYPES[seed % 2]
    in_f, out_f = int(g.integers(1, 20)), int(g.integers(1, 20))
    bias = bool(seed % 3)
    lead = [(), (5,), (3, 4), (2, 1, 3)][seed % 4]
    minidl.manual_seed(seed)
    ours = nn.Linear(in_f, out_f, bias=bias).to(dtype)
    theirs = torch.nn.Linear(in_f, out_f, bias=bias).to(
        torch.float64 if dtype == np.float64 else torch.float32
    )
    copy_params(ours, theirs, torch)
    x = g.standard_normal(lead + (in_f,)).astype(dtype)
    compare_module(torch, ours, theirs, x, dtype, scale=in_f)


def test_linear_functional_matches_torch(torch):
    g = np.random.default_rng(1)
    for dtype in DTYPES:
        x, w, b = g.standard_normal((6, 7)), g.standard_normal((3, 7)), g.standard_normal(3)
        compare_fn(torch, F.linear, torch.nn.functional.linear, [x, w, b], dtype, scale=5)


def test_linear_state_dict_and_repr(torch):
    ours, theirs = nn.Linear(4, 3), torch.nn.Linear(4, 3)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    assert repr(nn.Linear(2, 5, bias=False)) == repr(torch.nn.Linear(2, 5, bias=False))
    assert nn.Linear(4, 3, bias=False).bias is None
    assert nn.Linear(4, 3, dtype=np.float64).weight.dtype == np.float64
    ours.load_state_dict(theirs.state_dict())
    np.testing.assert_array_equal(ours.weight.numpy(), theirs.weight.detach().numpy())


def _linear_init_samples(make_linear, in_f, out_f, param, count=40):
    return np.concatenate([
        np.asarray(getattr(make_linear(in_f, out_f), param).detach().numpy()).ravel()
        for _ in range(count)
    ])


def test_linear_init_distribution_matches_torch(torch):
    """KS test: minidl's default weights and biases against torch's, for the same shape."""
    minidl.manual_seed(0)
    torch.manual_seed(0)
    for in_f, out_f in ((30, 20), (7, 50)):
        bound = 1 / np.sqrt(in_f)
        for param in ("weight", "bias"):
            ours = _linear_init_samples(nn.Linear, in_f, out_f, param)
            theirs = _linear_init_samples(torch.nn.Linear, in_f, out_f, param)
            assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
            assert np.abs(ours).max() <= bound
            assert stats.kstest(ours, "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3


def test_linear_init_is_seeded():
    minidl.manual_seed(5)
    a = nn.Linear(6, 4).weight.numpy().copy()
    minidl.manual_seed(5)
    np.testing.assert_array_equal(a, nn.Linear(6, 4).weight.numpy())


def test_linear_errors():
    lin = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(3, 4\).*in_features = 4"):
        lin(minidl.tensor(np.zeros((2, 5), np.float32)))
    with pytest.raises(TypeError, match="share a dtype"):
        lin(minidl.tensor(np.zeros((2, 4))))  # float64 input, float32 weight
    with pytest.raises(TypeError, match="float32 or float64"):
        lin(minidl.tensor(np.zeros((2, 4), np.int64)))
    with pytest.raises(TypeError, match="minidl Tensor"):
        lin(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="bias has shape"):
        F.linear(minidl.tensor(np.zeros((2, 4))), minidl.tensor(np.zeros((3, 4))),
                 minidl.tensor(np.zeros(4)))


# ---- activations -----------------------------------------------------------------------------
ACTIVATIONS = [
    ("ReLU", lambda t: t.nn.ReLU(), lambda: nn.ReLU()),
    ("LeakyReLU", lambda t: t.nn.LeakyReLU(0.2), lambda: nn.LeakyReLU(0.2)),
    ("LeakyReLU_default", lambda t: t.nn.LeakyReLU(), lambda: nn.LeakyReLU()),
    ("Tanh", lambda t: t.nn.Tanh(), lambda: nn.Tanh()),
    ("Sigmoid", lambda t: t.nn.Sigmoid(), lambda: nn.Sigmoid()),
    ("GELU", lambda t: t.nn.GELU(), lambda: nn.GELU()),
    ("GELU_tanh", lambda t: t.nn.GELU("tanh"), lambda: nn.GELU(approximate="tanh")),
    ("Softmax1", lambda t: t.nn.Softmax(dim=1), lambda: nn.Softmax(dim=1)),
    ("Softmax-1", lambda t: t.nn.Softmax(dim=-1), lambda: nn.Softmax(dim=-1)),
    ("LogSoftmax0", lambda t: t.nn.LogSoftmax(dim=0), lambda: nn.LogSoftmax(dim=0)),
    ("LogSoftmax2", lambda t: t.nn.LogSoftmax(dim=2), lambda: nn.LogSoftmax(dim=2)),
    ("Flatten", lambda t: t.nn.Flatten(), lambda: nn.Flatten()),
    ("Flatten02", lambda t: t.nn.Flatten(0, 2), lambda: nn.Flatten(0, 2)),
    ("Flatten-2", lambda t: t.nn.Flatten(-2, -1), lambda: nn.Flatten(-2, -1)),
    ("Identity", lambda t: t.nn.Identity(3, a=1), lambda: nn.Identity(3, a=1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "name, make_torch, make_ours", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS]
)
def test_activation_matches_torch(torch, name, make_torch, make_ours, dtype):
    g = np.random.default_rng(7)
    x = (g.standard_normal((3, 4, 5)) * 3).astype(dtype)
    x[0, 0, :3] = 0.0  # the gradient convention at 0 (ReLU 0, LeakyReLU slope)
    x[1, 1, 0] = 40.0  # saturation
    x[1, 1, 1] = -40.0
    ours, theirs = make_ours(), make_torch(torch)
    compare_module(torch, ours, theirs, x, dtype)
    if name not in ("Identity",):
        assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_functionals_match_torch(torch, dtype):
    TF = torch.nn.functional
    g = np.random.default_rng(8)
    x = g.standard_normal((4, 6)) * 3
    cases = [
        (lambda a: F.relu(a), lambda a: TF.relu(a)),
        (lambda a: F.leaky_relu(a, 0.3), lambda a: TF.leaky_relu(a, 0.3)),
        (lambda a: F.gelu(a), lambda a: TF.gelu(a)),
        (lambda a: F.gelu(a, approximate="tanh"), lambda a: TF.gelu(a, approximate="tanh")),
        (F.sigmoid, torch.sigmoid),
        (F.tanh, torch.tanh),
        (lambda a: F.softmax(a, 0), lambda a: TF.softmax(a, 0)),
        (lambda a: F.log_softmax(a, dim=1), lambda a: TF.log_softmax(a, dim=1)),
        (lambda a: F.flatten(a), lambda a: torch.flatten(a)),
    ]
    for ours, theirs in cases:
        compare_fn(torch, ours, theirs, [x], dtype)


def test_softmax_implicit_dim_and_dtype(torch):
    x = np.random.default_rng(9).standard_normal((2, 3, 4))
    for shape in ((5,), (2, 3), (2, 3, 4), (2, 3, 4, 2)):
        a = np.resize(x, shape)
        with pytest.warns(UserWarning, match="Implicit dimension"):
            ours = F.softmax(minidl.tensor(a), None)
        with pytest.warns(UserWarning):
            theirs = torch.nn.functional.softmax(torch.tensor(a), None)
        _close(ours.numpy(), theirs.numpy(), np.float64)
    out = F.log_softmax(minidl.tensor(x.astype(np.float32)), 1, dtype=np.float64)
    assert out.dtype == np.float64
    assert F.softmax(minidl.tensor(2.0), 0).item() == 1.0


def test_activation_errors():
    x = minidl.tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("exact")
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(x, approximate="fast")
    with pytest.raises(IndexError, match="dim 2 out of range"):
        F.softmax(x, 2)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.leaky_relu(minidl.tensor([1, 2]))


# ---- flatten and identity --------------------------------------------------------------------
def test_flatten_rules(torch):
    x = np.zeros((2, 3, 4, 5), np.float32)
    for start, end in ((0, -1), (1, 2), (2, 2), (-3, -2), (3, 3)):
        assert F.flatten(minidl.tensor(x), start, end).shape == tuple(
            torch.flatten(torch.tensor(x), start, end).shape
        )
    assert F.flatten(minidl.tensor(1.0)).shape == (1,)
    assert nn.Flatten()(minidl.tensor(x)).shape == (2, 60)
    with pytest.raises(ValueError, match="start_dim cannot come after end_dim"):
        F.flatten(minidl.tensor(x), 2, 1)
    with pytest.raises(IndexError, match="start_dim=4 is out of range"):
        F.flatten(minidl.tensor(x), 4)
    t = minidl.tensor(x)
    assert nn.Identity()(t) is t


# ---- dropout ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics_and_gradient(p, dtype):
    minidl.manual_seed(0)
    x = minidl.tensor(np.random.default_rng(0).uniform(1, 2, (200, 250)).astype(dtype),
                      requires_grad=True)
    y = F.dropout(x, p)
    assert y.dtype == dtype
    kept = y.numpy() != 0
    # the kept fraction is Binomial(n, 1 - p): allow 5 standard deviations
    n = kept.size
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    scale = dtype(1 / (1 - p))
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] * scale, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept * scale, rtol=1e-6)


def test_dropout_modes_and_seed():
    x = minidl.tensor(np.ones((50, 40), np.float32))
    layer = nn.Dropout(0.3)
    minidl.manual_seed(11)
    a = layer(x).numpy()
    minidl.manual_seed(11)
    np.testing.assert_array_equal(a, layer(x).numpy())
    assert not np.array_equal(a, layer(x).numpy())  # a fresh mask each call
    layer.eval()
    assert layer(x) is x
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    zero = minidl.tensor(np.ones((3, 3), np.float32), requires_grad=True)
    out = F.dropout(zero, 1.0)
    np.testing.assert_array_equal(out.numpy(), 0)
    out.sum().backward()
    np.testing.assert_array_equal(zero.grad.numpy(), 0)
    assert repr(layer) == "Dropout(p=0.3, inplace=False)"
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.Dropout(bad)
        with pytest.raises(ValueError, match="between 0 and 1"):
            F.dropout(x, bad)


def test_dropout_torch_statistics(torch):
    """Same mean and variance of the output as torch's dropout (the masks differ)."""
    x = np.full((400, 500), 2.0, np.float32)
    torch.manual_seed(0)
    minidl.manual_seed(0)
    theirs = torch.nn.functional.dropout(torch.tensor(x), 0.25).numpy()
    ours = F.dropout(minidl.tensor(x), 0.25).numpy()
    assert set(np.unique(ours)) == set(np.unique(theirs))
    assert abs(ours.mean() - theirs.mean()) < 0.01
