"""Linear/Dense, BatchNorm, the pools, Dropout and Flatten under every profile: PyTorch live,
MegEngine by its source (v1.13, imperative/python/megengine/module/*.py, cited per test), the
checkpoint layouts, profiles.convert and profiles.diff. The MindSpore facts are checked against
the recorded run in tests/test_profile_mindspore_layers.py."""

from collections import OrderedDict

import numpy as np
import pytest
from scipy import stats

import minidl
from minidl import nn, profiles
from minidl.profiles.spec import (
    BatchNormSpec,
    DropoutSpec,
    FlattenSpec,
    LinearSpec,
    PoolSpec,
)

PROFILES = ["torch", "megengine", "mindspore", "mindspore-2.1"]


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---- the canonical specs (the contract with minidl.export) -----------------------------------
def test_every_layer_keeps_a_canonical_spec_in_pytorchs_terms():
    bn = nn.BatchNorm2d(4, momentum=0.8, profile="mindspore")
    assert bn._spec == BatchNormSpec("BatchNorm2d", 4, 1e-5, pytest.approx(0.2), True, True)
    assert nn.BatchNorm1d(3, profile="megengine")._spec.momentum == pytest.approx(0.1)
    assert nn.BatchNorm2d(3, use_batch_statistics=False, profile="mindspore")._spec == (
        BatchNormSpec("BatchNorm2d", 3, 1e-5, pytest.approx(0.1), True, True,
                      use_batch_statistics=False)
    )
    assert nn.Dense(5, 3, activation="relu", profile="mindspore")._spec == LinearSpec(
        "Linear", 5, 3, True, "relu"
    )
    pool = nn.MaxPool2d(3, 2, pad_mode="same", profile="mindspore")._spec
    assert isinstance(pool, PoolSpec) and pool.kernel_size == (3, 3) and pool.stride == (2, 2)
    assert type(pool.padding).__name__ == "SamePadding"
    assert nn.AvgPool2d(2, profile="megengine")._spec.count_include_pad is False
    assert nn.Dropout(0.8, profile="mindspore")._spec == DropoutSpec("Dropout", pytest.approx(0.2))
    assert nn.Flatten(profile="mindspore")._spec == FlattenSpec("Flatten", 1, -1)


@pytest.mark.parametrize("profile", PROFILES)
def test_canonical_arrays_have_pytorchs_names_and_shapes(profile):
    bn = nn.BatchNorm2d(3, profile=profile)
    arrays = bn._canonical_arrays()
    assert {k: v.shape for k, v in arrays.items() if k != "num_batches_tracked"} == {
        "weight": (3,), "bias": (3,), "running_mean": (3,), "running_var": (3,)
    }
    assert {k: v.shape for k, v in nn.Linear(4, 2, profile="torch")._canonical_arrays().items()} \
        == {"weight": (2, 4), "bias": (2,)}


def test_torch_profile_signatures_are_real_pytorchs(torch):
    import inspect

    for kind, module in profiles.get_profile("torch").modules.items():
        theirs = inspect.signature(getattr(torch.nn, kind).__init__).parameters.values()
        theirs = [(p.name, p.default, p.kind == p.KEYWORD_ONLY) for p in theirs if p.name != "self"]
        ours = [(a.name, a.default, a.keyword_only) for a in module.layer.signature]
        ours = [(n, inspect.Parameter.empty if d is profiles.signature.REQUIRED else d, k)
                for n, d, k in ours]
        assert ours == theirs, kind


# ---- MegEngine, by its source ------------------------------------------------------------------
def test_megengine_batch_norm_stores_1c11_and_sorts_its_keys():
    """module/batchnorm.py: ``tshape = (1, num_features, 1, 1)`` for weight, bias,
    running_mean and running_var; Module.state_dict sorts the names."""
    bn = nn.BatchNorm2d(5, profile="megengine")
    state = bn.state_dict()
    assert list(state) == ["bias", "running_mean", "running_var", "weight"]
    assert all(v.shape == (1, 5, 1, 1) for v in state.values())
    assert bn.weight.shape == (1, 5, 1, 1)
    assert list(nn.Linear(3, 2, profile="megengine").state_dict()) == ["bias", "weight"]


@pytest.mark.parametrize("profile, momentum", [("megengine", 0.9), ("mindspore", 0.9),
                                               ("megengine", 0.7), ("torch", 0.1)])
def test_batch_norm_momentum_meanings_against_torch(torch, profile, momentum):
    """MegEngine (module/batchnorm.py: running = momentum * running + (1 - momentum) * batch,
    dnn/src/naive/batch_normalization/opr_impl.cpp: the unbiased variance) and MindSpore keep
    ``momentum`` of the old value: PyTorch's ``1 - momentum``."""
    ours = nn.BatchNorm2d(3, momentum=momentum, profile=profile)
    torch_momentum = momentum if profile == "torch" else 1 - momentum
    theirs = torch.nn.BatchNorm2d(3, momentum=torch_momentum)
    for step in range(3):
        x = _x(4, 3, 5, 5, seed=step) * 2 + 1
        y = ours(minidl.tensor(x)).numpy()
        np.testing.assert_allclose(y, theirs(torch.tensor(x)).detach().numpy(), atol=1e-5)
    canonical = ours._canonical_arrays()
    np.testing.assert_allclose(canonical["running_mean"], theirs.running_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(canonical["running_var"], theirs.running_var.numpy(), rtol=1e-5)
    ours.eval(), theirs.eval()
    x = _x(2, 3, 4, 4, seed=9)
    np.testing.assert_allclose(
        ours(minidl.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), atol=1e-5
    )


def test_megengine_batch_norm_gradients_reach_the_1c11_parameters(torch):
    x = _x(4, 3, 5, 5)
    ours, theirs = nn.BatchNorm2d(3, profile="megengine"), torch.nn.BatchNorm2d(3)
    xm, xt = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (ours(xm) ** 2).sum().backward()
    (theirs(xt) ** 2).sum().backward()
    assert ours.weight.grad.shape == (1, 3, 1, 1)
    np.testing.assert_allclose(ours.weight.grad.numpy().ravel(), theirs.weight.grad.numpy(),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.bias.grad.numpy().ravel(), theirs.bias.grad.numpy(),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), atol=1e-5)


def test_megengine_linear_init_is_normal_with_variance_one_over_fan_in():
    """module/linear.py: ``init.normal_(weight, 0.0, sqrt(1 / in_features))``, bias zeros."""
    minidl.manual_seed(1)
    layers = [nn.Linear(64, 50, profile="megengine") for _ in range(4)]
    w = np.concatenate([layer.weight.numpy().ravel() for layer in layers])
    assert stats.kstest(w, "norm", args=(0.0, np.sqrt(1 / 64))).pvalue > 1e-3
    assert not any(layer.bias.numpy().any() for layer in layers)


def test_megengine_avg_pool_excludes_the_padding_by_default(torch):
    """module/pooling.py: ``AvgPool2d(..., mode='average_count_exclude_padding')``."""
    x = _x(2, 3, 7, 6)
    ours = nn.AvgPool2d(3, 2, 1, profile="megengine")(minidl.tensor(x)).numpy()
    theirs = torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    counted = nn.AvgPool2d(3, 2, 1, mode="average", profile="megengine")(minidl.tensor(x))
    np.testing.assert_allclose(
        counted.numpy(), torch.nn.AvgPool2d(3, 2, 1)(torch.tensor(x)).numpy(), rtol=1e-6
    )


def test_megengine_dropout_takes_drop_prob_and_lacks_flatten_and_1d_pools():
    """module/dropout.py: ``Dropout(drop_prob=0.0)``; module/__init__.py exports no Flatten
    and only the 2-D pools."""
    assert nn.Dropout(profile="megengine")._spec.p == 0.0
    assert nn.Dropout(drop_prob=0.3, profile="megengine").drop_prob == 0.3
    with pytest.raises(TypeError, match="'p' is spelled 'drop_prob'"):
        nn.Dropout(p=0.3, profile="megengine")
    with pytest.raises(NotImplementedError, match=r"no Flatten module.*F\.flatten\(x, 1\)"):
        nn.Flatten(profile="megengine")
    with pytest.raises(NotImplementedError, match="only MaxPool2d and AvgPool2d"):
        nn.MaxPool1d(2, profile="megengine")
    with pytest.raises(ValueError, match="freeze=True"):
        nn.BatchNorm2d(3, freeze=True, profile="megengine")


# ---- MindSpore spellings ---------------------------------------------------------------------
def test_mindspore_names_and_hints():
    dense = nn.Dense(4, 3, has_bias=False, profile="mindspore")
    assert dense.bias is None and dense.in_channels == 4 and dense.in_features == 4
    assert repr(dense) == (
        "Dense(in_channels=4, out_channels=3, has_bias=False, profile='mindspore')"
    )
    with pytest.raises(TypeError, match="'bias' is spelled 'has_bias'"):
        nn.Dense(4, 3, bias=False, profile="mindspore")
    with pytest.raises(ValueError, match=r"activation 'swish'"):
        nn.Dense(4, 3, activation="swish", profile="mindspore")
    bn = nn.BatchNorm2d(3, profile="mindspore")
    assert [name for name, _ in bn.named_parameters()] == ["gamma", "beta"]
    assert list(bn.state_dict()) == ["moving_mean", "moving_variance", "gamma", "beta"]
    assert nn.BatchNorm2d(3, affine=False, profile="mindspore").state_dict()["gamma"].tolist() == [
        1.0, 1.0, 1.0
    ]  # MindSpore keeps gamma and beta (untrained) without affine
    with pytest.raises(ValueError, match="data_format must be 'NCHW'"):
        nn.BatchNorm2d(3, data_format="NHWC", profile="mindspore")


def test_mindspore_arguments_get_hints_elsewhere():
    with pytest.raises(TypeError, match=r"Dropout\(p=1 - keep_prob\)"):
        nn.Dropout(keep_prob=0.8)
    with pytest.raises(TypeError, match=r"Dropout\(drop_prob=1 - keep_prob\)"):
        nn.Dropout(keep_prob=0.8, profile="megengine")
    with pytest.raises(TypeError, match="take no pad_mode"):
        nn.MaxPool2d(2, pad_mode="same")
    with pytest.raises(TypeError, match="'pad_mode' is spelled|padding='same'"):
        nn.Conv2d(1, 1, 3, pad_mode="same")  # the conv's own hint is kept
    with pytest.raises(TypeError, match="track_running_stats=False"):
        nn.BatchNorm2d(3, use_batch_statistics=True, profile="megengine")


def test_set_train_is_train():
    model = nn.Sequential(nn.BatchNorm1d(3, profile="mindspore"), nn.Dropout(profile="mindspore"))
    assert model.training and model[0].training  # minidl layers start in training mode
    model.set_train(False)
    assert not model[0].training and not model[1].training
    model.set_train()
    assert model[1].training


# ---- live attributes ---------------------------------------------------------------------------
def test_attributes_are_live_and_checked(torch):
    pool = nn.MaxPool2d(3)
    pool.stride = 1
    x = _x(1, 2, 7, 7)
    np.testing.assert_array_equal(
        pool(minidl.tensor(x)).numpy(), torch.nn.MaxPool2d(3, 1)(torch.tensor(x)).numpy()
    )
    ms_pool = nn.MaxPool2d(3, 2, profile="mindspore")
    ms_pool.pad_mode = "same"
    assert ms_pool(minidl.tensor(x)).shape == (1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"after setting MaxPool2d.pad_mode = 'full'.*'pad_mode'"):
        ms_pool.pad_mode = "full"
    assert ms_pool.pad_mode == "same"  # the rejected value is not kept
    bn = nn.BatchNorm2d(3)
    bn.momentum = None  # PyTorch's cumulative average
    assert bn._spec.momentum is None
    with pytest.raises(AttributeError, match="num_features cannot change"):
        bn.num_features = 4
    with pytest.raises(AttributeError, match="keeps the profile it was built with"):
        bn.profile = "mindspore"


# ---- checkpoints across profiles ----------------------------------------------------------------
def test_mindspore_batch_norm_checkpoint_loads_into_torch_names_and_back_bit_exact():
    rng = np.random.default_rng(2)
    ms_state = OrderedDict(
        (f"bn.{name}", rng.standard_normal(4).astype(np.float32))
        for name in ("moving_mean", "moving_variance", "gamma", "beta")
    )
    ms_state["fc.weight"] = rng.standard_normal((2, 4)).astype(np.float32)
    ms_state["fc.bias"] = rng.standard_normal(2).astype(np.float32)
    model = nn.Sequential(OrderedDict(bn=nn.BatchNorm1d(4), fc=nn.Linear(4, 2)))
    model.load_state_dict(ms_state, profile="mindspore")
    assert np.array_equal(model.bn.weight.numpy(), ms_state["bn.gamma"])
    assert np.array_equal(model.bn.running_mean.numpy(), ms_state["bn.moving_mean"])
    back = model.state_dict(profile="mindspore")
    assert list(back) == list(ms_state)
    assert all(np.array_equal(back[k], ms_state[k]) for k in ms_state)
    mge = model.state_dict(profile="megengine")
    assert list(mge)[:4] == ["bn.bias", "bn.running_mean", "bn.running_var", "bn.weight"]
    assert mge["bn.weight"].shape == (1, 4, 1, 1)
    native = nn.Sequential(OrderedDict(bn=nn.BatchNorm1d(4, profile="megengine"),
                                       fc=nn.Linear(4, 2, profile="megengine")))
    native.load_state_dict(mge)
    assert np.array_equal(native.state_dict(profile="mindspore")["bn.gamma"], ms_state["bn.gamma"])


def _small_cnn(profile: str) -> nn.Module:
    with minidl.use_profile(profile):
        if profile.startswith("mindspore"):
            conv = nn.Conv2d(1, 4, 3, pad_mode="pad", padding=1, has_bias=True)
            pool, drop = nn.MaxPool2d(2, 2), nn.Dropout(p=0.25)
        else:
            conv, pool, drop = nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.Dropout(0.25)
        return nn.Sequential(conv, nn.BatchNorm2d(4), nn.ReLU(), pool, nn.Flatten(), drop,
                             nn.Linear(64, 3))


@pytest.mark.parametrize("source", ["mindspore", "mindspore-2.1"])
def test_convert_whole_model_to_torch_matches_real_torch(torch, source):
    model = _small_cnn(source)
    x = _x(5, 1, 8, 8)
    model(minidl.tensor(x))  # one training step moves the running statistics
    model.eval()
    converted = profiles.convert(model, "torch")
    assert converted[1].profile == "torch" and "running_mean" in converted[1].state_dict()
    reference = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Dropout(0.25), torch.nn.Linear(64, 3),
    )
    state = converted.state_dict()
    reference.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    reference.eval()
    expected = reference(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(converted(minidl.tensor(x)).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(model(minidl.tensor(x)).numpy(), expected, atol=1e-5)
    back = profiles.convert(converted, source)
    assert list(back.state_dict()) == list(model.state_dict())
    assert all(np.array_equal(a, b) for a, b in
               zip(back.state_dict().values(), model.state_dict().values(), strict=True))


def test_convert_says_what_cannot_be_expressed():
    with pytest.raises(ValueError, match=r"4 \(Flatten.*megengine.*no Flatten module"):
        profiles.convert(_small_cnn("torch"), "megengine")
    same_pool = nn.Sequential(nn.MaxPool2d(3, 2, pad_mode="same", profile="mindspore"))
    with pytest.raises(ValueError, match="0 .*cannot be rebuilt under the torch profile"):
        profiles.convert(same_pool, "torch")
    with pytest.raises(ValueError, match="Linear has no activation"):
        profiles.convert(nn.Dense(3, 2, activation="relu", profile="mindspore"), "torch")


# ---- diff ------------------------------------------------------------------------------------
def test_diff_covers_the_new_layers_and_shows_itself():
    table = profiles.diff("torch", "mindspore", ["BatchNorm2d", "Dense", "MaxPool2d", "Dropout"])
    rows = {(r.layer, r.category, r.item): r for r in table}
    assert rows["BatchNorm2d", "checkpoint", "running_var"].b.startswith("moving_variance")
    assert rows["BatchNorm2d", "argument", "momentum"].b == "momentum=0.9"
    assert "fraction of the old value" in rows["BatchNorm2d", "rule", "momentum"].b
    assert rows["Linear", "layer", "class"].b == "Dense"
    assert rows["Linear", "init", "weight"].b == "N(0, 0.01^2)"
    assert rows["MaxPool2d", "argument", "kernel_size"].b == "kernel_size=1"
    assert rows["Dropout", "argument", "keep_prob"].b == "keep_prob=0.5"
    assert repr(table) == str(table) and "moving_variance" in repr(table)
    mge = {(r.category, r.item): r for r in profiles.diff("torch", "megengine", "BatchNorm2d")}
    assert mge["checkpoint", "weight"].b == "weight (1, C, 1, 1)"
