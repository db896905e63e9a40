"""ModuleList, ModuleDict, Module.to/cpu/cuda, channel-wise dropout, LayerNorm, Embedding,
interpolate / Upsample and one_hot against PyTorch: values, gradients, state_dict names,
errors."""

import warnings

import numpy as np
import pytest
from gradcheck import gradcheck

import minidl
import minidl.nn.functional as F
from minidl import nn


def _t(torch, a, grad=False):
    return torch.tensor(a, requires_grad=grad)


# ---- ModuleList / ModuleDict ---------------------------------------------------------------------
def _stack(lib):
    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = lib.nn.ModuleList([lib.nn.Linear(3, 3) for _ in range(3)])
            self.blocks.append(lib.nn.ReLU())
            self.blocks.extend([lib.nn.Linear(3, 2)])
            self.blocks.insert(1, lib.nn.Linear(3, 3, bias=False))
            self.heads = lib.nn.ModuleDict({"b": lib.nn.Linear(2, 1), "a": lib.nn.Linear(2, 4)})
            self.heads.update([("c", lib.nn.Identity())])

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return [self.heads[k](x) for k in self.heads]

    return Net()


def test_module_containers_match_torch(torch):
    ours, theirs = _stack(minidl), _stack(torch)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert repr(ours) == repr(theirs)
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    for a, b in zip(ours(minidl.tensor(x)), theirs(torch.tensor(x))):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-6)
    assert len(list(ours.parameters())) == len(list(theirs.parameters()))


def test_module_list_operations_match_torch(torch):
    def run(lib):
        layers = lib.nn.ModuleList([lib.nn.Linear(i + 1, 1) for i in range(6)])
        trace = [type(layers[-1]).__name__, layers[-2].in_features, len(layers[1:4])]
        del layers[1]
        del layers[::2]
        popped = layers.pop(0)
        layers[0] = lib.nn.Linear(9, 9)
        layers += [lib.nn.Tanh()]
        both = layers + lib.nn.ModuleList([lib.nn.ReLU()])
        trace += [popped.in_features, [type(m).__name__ for m in both], len(both)]
        trace += [[getattr(m, "in_features", None) for m in layers], list(layers._modules)]
        return trace

    assert run(minidl) == run(torch)


def test_module_dict_operations_match_torch(torch):
    def run(lib):
        heads = lib.nn.ModuleDict([("x", lib.nn.ReLU()), ("y", lib.nn.Tanh())])
        heads["z"] = lib.nn.Linear(1, 1)
        trace = [list(heads), list(heads.keys()), "y" in heads, "q" in heads, len(heads)]
        trace.append(type(heads.pop("x")).__name__)
        trace.append([(k, type(v).__name__) for k, v in heads.items()])
        heads.clear()
        trace.append(len(heads))
        return trace

    assert run(minidl) == run(torch)


@pytest.mark.parametrize("make", [
    lambda lib: lib.nn.ModuleList([lib.nn.ReLU()])[3],
    lambda lib: lib.nn.ModuleList([lib.nn.ReLU()])[-2],
    lambda lib: lib.nn.ModuleList(5),
    lambda lib: lib.nn.ModuleList([lib.nn.ReLU()]).extend(3),
    lambda lib: lib.nn.ModuleList([3]),
    lambda lib: lib.nn.ModuleDict({"a.b": lib.nn.ReLU()}),
    lambda lib: lib.nn.ModuleDict({"": lib.nn.ReLU()}),
    lambda lib: lib.nn.ModuleDict({"train": lib.nn.ReLU()}),
    lambda lib: lib.nn.ModuleDict({1: lib.nn.ReLU()}),
    lambda lib: lib.nn.ModuleDict(3),
    lambda lib: lib.nn.ModuleDict([("a", lib.nn.ReLU(), 1)]),
    lambda lib: lib.nn.ModuleDict([3]),
    lambda lib: lib.nn.ModuleDict()["missing"],
])
def test_container_errors_as_torch(torch, make):
    with pytest.raises(Exception) as theirs:
        make(torch)
    with pytest.raises(type(theirs.value)):
        make(minidl)


# ---- Module.to / cpu / cuda ---------------------------------------------------------------------
def test_module_to_device_and_dtype():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    model(minidl.tensor(np.ones((4, 2), np.float32))).sum().backward()
    assert model.to("cpu") is model and model.cpu() is model
    assert model.to(minidl.device("cpu")) is model and model.to(device="cpu") is model
    assert model[0].weight.dtype == np.float32
    model.to("cpu", np.float64)
    assert model[0].weight.dtype == np.float64 and model[0].weight.grad.dtype == np.float64
    assert model[1].running_mean.dtype == np.float64
    assert model[1].num_batches_tracked.dtype == np.int64  # integer buffers keep their dtype
    model.to(minidl.tensor(np.zeros(1, np.float32)))
    assert model[0].weight.dtype == np.float32
    model.to(dtype=np.float64, non_blocking=True)
    assert model[0].bias.dtype == np.float64
    model.to(np.float32, False)
    assert model[0].bias.dtype == np.float32


@pytest.mark.parametrize("call", [
    lambda m: m.cuda(),
    lambda m: m.cuda(0),
    lambda m: m.to("cuda"),
    lambda m: m.to("cuda:1"),
    lambda m: m.to(minidl.device("mps")),
    lambda m: m.to(device="cuda", dtype=np.float64),
])
def test_module_to_an_accelerator_says_cpu_only(call):
    model = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="CPU only"):
        call(model)
    assert model.weight.dtype == np.float32  # nothing changed


def test_module_to_integer_dtype_raises_as_torch(torch):
    with pytest.raises(TypeError):
        torch.nn.Linear(2, 2).to(torch.int64)
    with pytest.raises(TypeError, match="floating point"):
        nn.Linear(2, 2).to(np.int64)


# ---- dropout ------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.15, 0.3, 0.45, 0.5, 0.9])
def test_dropout_scale_equals_torch(torch, p):
    """Kept values are x / (1 - p) rounded as torch rounds it (1-p in float32 first)."""
    minidl.manual_seed(0)
    x = np.ones((64, 16, 2, 2), np.float32)
    for ours_fn, their_fn in [(F.dropout, torch.nn.functional.dropout),
                              (F.dropout2d, torch.nn.functional.dropout2d)]:
        ours = ours_fn(minidl.tensor(x), p).numpy()
        theirs = their_fn(torch.tensor(x), p).numpy()
        assert set(np.unique(ours)) == set(np.unique(theirs)) == {0.0, theirs.max()}


@pytest.mark.filterwarnings("ignore:dropout2d. Received a 3D input")
@pytest.mark.parametrize("fn,shape,channel_axes", [
    (F.dropout1d, (40, 30, 5), (0, 1)),
    (F.dropout1d, (300, 5), (0,)),  # unbatched (C, L)
    (F.dropout2d, (20, 30, 3, 4), (0, 1)),
    (F.dropout2d, (20, 30, 6), (0, 1)),  # 3-D: (N, C, L), as torch
    (F.dropout3d, (10, 30, 2, 3, 2), (0, 1)),
    (F.dropout3d, (300, 2, 3, 2), (0,)),  # unbatched (C, D, H, W)
])
def test_channel_dropout_zeroes_whole_channels(fn, shape, channel_axes):
    minidl.manual_seed(1)
    x = minidl.tensor(np.random.default_rng(0).uniform(1, 2, shape), requires_grad=True)
    y = fn(x, p=0.4)
    kept = y.numpy() != 0
    reduce = tuple(i for i in range(len(shape)) if i not in channel_axes)
    assert np.array_equal(kept.all(axis=reduce), kept.any(axis=reduce))  # all or nothing
    assert 0.3 < 1 - kept.mean() < 0.5
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] / 0.6, rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.6, rtol=1e-12)
    assert fn(x, p=0.4, training=False) is x
    assert fn(x, p=0.0) is x
    assert not fn(x, p=1.0).numpy().any()


def test_dropout_layers_follow_train_and_eval():
    minidl.manual_seed(2)
    for layer, shape in ((nn.Dropout2d(0.5), (8, 6, 3, 3)), (nn.Dropout(0.5), (8, 6)),
                         (nn.Dropout1d(0.5), (8, 6, 3)), (nn.Dropout3d(0.5), (8, 6, 3, 3, 3))):
        x = minidl.tensor(np.ones(shape, np.float32))
        assert layer.extra_repr() == "p=0.5, inplace=False"
        assert set(np.unique(layer(x).numpy())) == {0.0, 2.0}
        layer.eval()
        assert layer(x) is x
    x = minidl.tensor(np.ones((8, 6, 3, 3), np.float32))
    layer = nn.Dropout2d(0.5)
    out = layer(x).numpy()
    assert set(np.unique(out)) == {0.0, 2.0}


def test_dropout2d_warnings_and_errors_as_torch(torch):
    x = np.ones((2, 3, 4), np.float32)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        torch.nn.functional.dropout2d(torch.tensor(x), 0.5)
        torch.nn.functional.dropout2d(torch.ones(2, 3), 0.5)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        F.dropout2d(minidl.tensor(x), 0.5)
        F.dropout2d(minidl.tensor(np.ones((2, 3), np.float32)), 0.5)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    for p in (-0.1, 1.5):
        for fn in ("dropout", "dropout1d", "dropout2d", "dropout3d"):
            with pytest.raises(ValueError, match="between 0 and 1"):
                getattr(torch.nn.functional, fn)(torch.ones(2, 3, 4, 5), p)
            with pytest.raises(ValueError, match="between 0 and 1"):
                getattr(F, fn)(minidl.tensor(np.ones((2, 3, 4, 5), np.float32)), p)
        with pytest.raises(ValueError):
            nn.Dropout2d(p)
    with pytest.raises(ValueError, match="2D or 3D"):
        F.dropout1d(minidl.tensor(np.ones((2, 3, 4, 5), np.float32)))


# ---- LayerNorm ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,normalized", [
    ((4, 6), 6), ((2, 3, 5), (5,)), ((2, 3, 4, 5), (4, 5)), ((3, 2, 2, 3), (2, 2, 3)), ((7,), 7),
])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_matches_torch(torch, dtype, shape, normalized, affine):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    nshape = (normalized,) if isinstance(normalized, int) else normalized
    w = rng.standard_normal(nshape).astype(dtype) if affine != "none" else None
    b = rng.standard_normal(nshape).astype(dtype) if affine == "both" else None
    g = rng.standard_normal(shape).astype(dtype)
    ours = [minidl.tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
    theirs = [_t(torch, a, True) if a is not None else None for a in (x, w, b)]
    y = F.layer_norm(ours[0], normalized, ours[1], ours[2], eps=1e-4)
    ty = torch.nn.functional.layer_norm(theirs[0], nshape, theirs[1], theirs[2], eps=1e-4)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    (y * minidl.tensor(g)).sum().backward()
    (ty * torch.from_numpy(g)).sum().backward()
    for a, ta in zip(ours, theirs):
        if a is not None:
            np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), **tol)


def test_layer_norm_gradcheck():
    rng = np.random.default_rng(1)
    gradcheck(lambda x, w, b: F.layer_norm(x, (3, 4), w, b),
              rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 4)),
              rng.standard_normal((3, 4)))
    gradcheck(lambda x: F.layer_norm(x, 5, eps=1e-3), rng.standard_normal((3, 5)))


def test_layer_norm_module_matches_torch(torch):
    for kwargs in [dict(), dict(elementwise_affine=False), dict(bias=False), dict(eps=1e-3)]:
        ours, theirs = nn.LayerNorm((3, 4), **kwargs), torch.nn.LayerNorm((3, 4), **kwargs)
        assert repr(ours) == repr(theirs)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {
            k: tuple(v.shape) for k, v in theirs.state_dict().items()
        }
        for key, value in theirs.state_dict().items():
            np.testing.assert_array_equal(ours.state_dict()[key], value.numpy())
    with pytest.raises(ValueError, match=r"normalized_shape=\[4\].*\[2, 3\]"):
        F.layer_norm(minidl.tensor(np.ones((2, 3), np.float32)), 4)
    with pytest.raises(ValueError, match=r"weight has shape \[3\]"):
        F.layer_norm(minidl.tensor(np.ones((2, 4), np.float32)), 4,
                     minidl.tensor(np.ones(3, np.float32)))


# ---- Embedding ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", [
    dict(), dict(padding_idx=2), dict(padding_idx=-1), dict(scale_grad_by_freq=True),
    dict(padding_idx=0, scale_grad_by_freq=True), dict(max_norm=1.0),
    dict(max_norm=0.5, norm_type=1.0),
])
def test_embedding_matches_torch(torch, dtype, kwargs):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((6, 4)).astype(dtype)
    index = np.array([[0, 2, 2, 5], [1, 0, 2, 3], [5, 5, 5, 4]])
    g = rng.standard_normal((3, 4, 4)).astype(dtype)
    w, tw = minidl.tensor(weight.copy(), requires_grad=True), _t(torch, weight.copy(), True)
    y = F.embedding(minidl.tensor(index), w, **kwargs)
    ty = torch.nn.functional.embedding(torch.from_numpy(index), tw, **kwargs)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-6)  # max_norm renorms
    (y * minidl.tensor(g)).sum().backward()
    (ty * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_embedding_module_matches_torch(torch):
    minidl.manual_seed(0)
    ours = nn.Embedding(10, 3, padding_idx=4)
    theirs = torch.nn.Embedding(10, 3, padding_idx=4)
    assert repr(ours) == repr(theirs)
    assert not ours.weight.numpy()[4].any() and ours.weight.numpy().std() > 0.5
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    ours.load_state_dict(theirs.state_dict())
    index = np.array([1, 4, 9, 4])
    np.testing.assert_array_equal(ours(minidl.tensor(index)).numpy(),
                                  theirs(torch.from_numpy(index)).detach().numpy())
    table = np.arange(6.0).reshape(3, 2)
    frozen = nn.Embedding.from_pretrained(minidl.tensor(table))
    their_frozen = torch.nn.Embedding.from_pretrained(torch.from_numpy(table))
    assert frozen.weight.requires_grad is their_frozen.weight.requires_grad is False
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    np.testing.assert_array_equal(frozen(minidl.tensor(np.array([2, 0]))).numpy(),
                                  [[4.0, 5.0], [0.0, 1.0]])


def test_embedding_errors(torch):
    w = minidl.tensor(np.ones((5, 2), np.float32))
    with pytest.raises(TypeError, match="integer"):
        F.embedding(minidl.tensor(np.array([0.0, 1.0])), w)
    with pytest.raises(IndexError):
        torch.nn.functional.embedding(torch.tensor([5]), torch.ones(5, 2))
    with pytest.raises(IndexError, match="index 5 is out of range for 5"):
        F.embedding(minidl.tensor(np.array([5])), w)
    with pytest.raises(IndexError):
        F.embedding(minidl.tensor(np.array([-1])), w)
    with pytest.raises(ValueError, match="Padding_idx"):
        nn.Embedding(5, 2, padding_idx=5)


# ---- interpolate ------------------------------------------------------------------------------
RESIZES = [
    dict(size=(8, 11)), dict(size=(3, 4)), dict(size=5), dict(scale_factor=2),
    dict(scale_factor=1.7), dict(scale_factor=(0.6, 2.3)), dict(size=(13, 5)),
    dict(scale_factor=3, recompute_scale_factor=True), dict(scale_factor=0.5),
    dict(scale_factor=1 / 3), dict(scale_factor=(1.1, 2.4)), dict(scale_factor=(2.1, 1.0)),
]


@pytest.mark.parametrize("kwargs", RESIZES, ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 4, 4), (1, 2, 9, 3)])
def test_nearest_picks_the_same_pixels_as_torch(torch, kwargs, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    g = np.random.default_rng(1).standard_normal(
        torch.nn.functional.interpolate(torch.from_numpy(x), **kwargs).shape).astype(np.float32)
    xm, xt = minidl.tensor(x, requires_grad=True), _t(torch, x, True)
    y, ty = F.interpolate(xm, **kwargs), torch.nn.functional.interpolate(xt, **kwargs)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    (y * minidl.tensor(g)).sum().backward()
    (ty * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,kwargs", [
    ((2, 3, 7), dict(size=12)), ((1, 2, 9), dict(scale_factor=0.4)),
    ((1, 2, 3), dict(scale_factor=2.3)), ((1, 2, 5), dict(scale_factor=1.1)),
    ((1, 1, 3, 5, 3), dict(scale_factor=(2.3, 1.1, 2.0))),
    ((1, 2, 3, 4, 5), dict(size=(4, 7, 2))), ((1, 1, 2, 3, 3), dict(scale_factor=(2, 1.5, 0.7))),
])
def test_nearest_in_1d_and_3d_matches_torch(torch, shape, kwargs):
    x = np.random.default_rng(0).standard_normal(shape)
    np.testing.assert_array_equal(
        F.interpolate(minidl.tensor(x), **kwargs).numpy(),
        torch.nn.functional.interpolate(torch.from_numpy(x), **kwargs).numpy(),
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("kwargs", RESIZES, ids=str)
def test_bilinear_matches_torch(torch, dtype, align_corners, kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    xm, xt = minidl.tensor(x, requires_grad=True), _t(torch, x, True)
    y = F.interpolate(xm, mode="bilinear", align_corners=align_corners, **kwargs)
    ty = torch.nn.functional.interpolate(xt, mode="bilinear", align_corners=align_corners,
                                         **kwargs)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)
    assert y.shape == tuple(ty.shape) and y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    g = rng.standard_normal(y.shape).astype(dtype)
    (y * minidl.tensor(g)).sum().backward()
    (ty * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), **tol)


@pytest.mark.parametrize("mode,shape,kwargs", [
    ("linear", (2, 3, 6), dict(size=11)), ("linear", (1, 2, 9), dict(scale_factor=0.45)),
    ("linear", (1, 2, 5), dict(scale_factor=1.1)),
    ("trilinear", (1, 2, 3, 4, 5), dict(size=(5, 3, 8))),
    ("trilinear", (1, 1, 2, 3, 3), dict(scale_factor=(2, 1.5, 0.7))),
])
@pytest.mark.parametrize("align_corners", [False, True])
def test_linear_and_trilinear_match_torch(torch, mode, shape, kwargs, align_corners):
    x = np.random.default_rng(0).standard_normal(shape)
    np.testing.assert_allclose(
        F.interpolate(minidl.tensor(x), mode=mode, align_corners=align_corners, **kwargs).numpy(),
        torch.nn.functional.interpolate(torch.from_numpy(x), mode=mode,
                                        align_corners=align_corners, **kwargs).numpy(),
        rtol=1e-13, atol=1e-14,
    )


def test_interpolate_gradcheck():
    x = np.random.default_rng(2).standard_normal((1, 2, 3, 4))
    gradcheck(lambda t: F.interpolate(t, size=(5, 6), mode="bilinear"), x)
    gradcheck(lambda t: F.interpolate(t, scale_factor=0.7, mode="bilinear", align_corners=True),
              np.random.default_rng(3).standard_normal((1, 1, 5, 6)))
    gradcheck(lambda t: F.interpolate(t, size=(7, 3)), x)


@pytest.mark.parametrize("make", [
    lambda F_, x: F_.interpolate(x, size=4, align_corners=True),
    lambda F_, x: F_.interpolate(x, size=4, scale_factor=2),
    lambda F_, x: F_.interpolate(x),
    lambda F_, x: F_.interpolate(x, size=(4, 4, 4)),
    lambda F_, x: F_.interpolate(x, size=(4.0, 4)),
    lambda F_, x: F_.interpolate(x, scale_factor=(2, 2, 2)),
    lambda F_, x: F_.interpolate(x, size=4, recompute_scale_factor=True),
    lambda F_, x: F_.interpolate(x, size=4, mode="linear"),
    lambda F_, x: F_.interpolate(x, size=4, mode="trilinear"),
    lambda F_, x: F_.interpolate(x, size=4, mode="nearest", antialias=True),
    lambda F_, x: F_.interpolate(x[0, 0], size=4),
])
def test_interpolate_argument_errors_as_torch(torch, make):
    x = np.ones((1, 1, 3, 3), np.float32)
    with pytest.raises(Exception) as theirs:
        make(torch.nn.functional, torch.tensor(x))
    with pytest.raises(type(theirs.value)):
        make(F, minidl.tensor(x))


def test_upsample_layer_matches_torch(torch):
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 5)).astype(np.float32)
    for kwargs in [dict(scale_factor=2), dict(size=(4, 9), mode="bilinear"),
                   dict(scale_factor=(1.5, 0.5), mode="bilinear", align_corners=True)]:
        ours, theirs = nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs)
        assert repr(ours) == repr(theirs)
        np.testing.assert_allclose(ours(minidl.tensor(x)).numpy(),
                                   theirs(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-6)


# ---- one_hot ----------------------------------------------------------------------------------
@pytest.mark.parametrize("values,num_classes", [
    ([0, 2, 1, 2], -1), ([[0, 3], [1, 1]], 5), (3, 4), ([], 3), ([[4]], -1),
])
def test_one_hot_matches_torch(torch, values, num_classes):
    a = np.array(values, dtype=np.int64)
    ours = F.one_hot(minidl.tensor(a), num_classes)
    theirs = torch.nn.functional.one_hot(torch.from_numpy(a), num_classes)
    assert ours.dtype == np.int64 and ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_one_hot_errors():
    with pytest.raises(ValueError, match="non-negative"):
        F.one_hot(minidl.tensor(np.array([-1, 0])))
    with pytest.raises(ValueError, match="smaller than num_classes=2"):
        F.one_hot(minidl.tensor(np.array([2])), 2)
    with pytest.raises(ValueError, match="empty"):
        F.one_hot(minidl.tensor(np.array([], np.int64)))
    with pytest.raises(TypeError, match="integer"):
        F.one_hot(minidl.tensor(np.array([1.0])))


# ---- the ops of a PyTorch-style MNIST net, composed ------------------------------------------
def test_mnist_style_forward_and_backward_match_torch(torch):
    """conv -> relu -> conv -> relu -> max_pool2d -> dropout (eval) -> flatten -> fc -> relu ->
    fc -> log_softmax -> nll_loss(reduction='sum') / argmax, all in both frameworks."""
    rng = np.random.default_rng(0)
    shapes = {"c1": (4, 1, 3, 3), "c2": (6, 4, 3, 3), "f1": (8, 6 * 3 * 3), "f2": (10, 8)}
    weights = {k: rng.standard_normal(s) * 0.3 for k, s in shapes.items()}
    x = rng.standard_normal((5, 1, 10, 10))
    target = np.array([1, 0, 9, 3, 3])

    def run(lib, Fn, tensor):
        w = {k: tensor(v) for k, v in weights.items()}
        h = Fn.relu(Fn.conv2d(tensor(x), w["c1"]))
        h = Fn.max_pool2d(Fn.relu(Fn.conv2d(h, w["c2"])), 2)
        h = lib.flatten(Fn.dropout(h, 0.25, training=False), 1)
        h = Fn.linear(Fn.relu(Fn.linear(h, w["f1"])), w["f2"])
        out = Fn.log_softmax(h, dim=1)
        loss = Fn.nll_loss(out, tensor(target, grad=False), reduction="sum")
        loss.backward()
        pred = out.argmax(dim=1, keepdim=True)
        return loss.item(), pred.numpy(), {k: v.grad.numpy() for k, v in w.items()}

    ours = run(F, F, lambda a, grad=True: minidl.tensor(a, requires_grad=grad))
    theirs = run(torch, torch.nn.functional,
                 lambda a, grad=True: torch.tensor(a, requires_grad=grad))
    assert ours[0] == pytest.approx(theirs[0], rel=1e-12)
    np.testing.assert_array_equal(ours[1], theirs[1])
    for key in shapes:
        np.testing.assert_allclose(ours[2][key], theirs[2][key], rtol=1e-10, atol=1e-12)
