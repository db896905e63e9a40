"""Dense, BatchNorm, the pools, Dropout, Flatten, a SequentialCell and the model zoo's LeNet-5
under the 'mindspore' profiles against real MindSpore 2.10 (the ``layers/`` keys of
tests/mindspore_ref/mindspore_ref.npz; see the README there)."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import minidl
from minidl import nn
from minidl.profiles.signature import REQUIRED

REF = Path(__file__).parent / "mindspore_ref" / "mindspore_ref.npz"
DATA = np.load(REF)  # committed with the repo: a missing file is an error, not a skip
TOL = dict(rtol=1e-4, atol=1e-5)
PROFILES = ["mindspore", "mindspore-2.1"]


def _kwargs(key: str) -> dict:
    return {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in json.loads(str(DATA[key + "kwargs"])).items()
    }


def _cases(name: str) -> list[str]:
    count = DATA[f"layers/n_{name}s" if name == "error" else f"layers/n_{name}"]
    return [f"layers/{name}{i}/" for i in range(int(count))]


def _backward(y, r):
    (y * minidl.tensor(r)).sum().backward()


def test_layer_reference_file_is_complete():
    assert str(DATA["meta/mindspore_version"]) == "2.10.0"
    counts = {name: len(_cases(name)) for name in ("dense", "bn", "pool", "dropout", "error")}
    assert counts == {"dense": 4, "bn": 7, "pool": 24, "dropout": 4, "error": 13}


def test_signatures_are_mindspores():
    """'mindspore-2.1' has 2.10's signatures (``dtype`` is spelled as a string); 'mindspore'
    r2.0's differ by Dense's initialiser defaults and have no ``dtype``."""
    recorded = json.loads(str(DATA["layers/signatures"]))
    kinds = {"Dense": "Linear"}
    for cls, arguments in recorded.items():
        expected = [
            (name, None if default is None else default.replace("mindspore.", "'") + "'"
             if default.startswith("mindspore.") else default)
            for name, default in arguments
        ]
        for profile, changes in (
            ("mindspore-2.1", {}),
            ("mindspore", {"weight_init": "'normal'", "bias_init": "'zeros'", "dtype": None}),
        ):
            layer = minidl.profiles.get_profile(profile).layer(kinds.get(cls, cls))
            ours = [(a.name, None if a.default is REQUIRED else repr(a.default))
                    for a in layer.signature]
            want = [(n, changes.get(n, d)) for n, d in expected if not (
                n == "dtype" and "dtype" in changes)]
            assert layer.cls_name == cls and ours == want, (profile, cls)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("case", _cases("dense"))
def test_dense_outputs_and_gradients_match_mindspore(case, profile):
    layer = nn.Dense(**_kwargs(case), profile=profile)
    assert nn.Dense is nn.Linear
    layer.weight.data = DATA[case + "weight"].copy()
    has_bias = case + "bias" in DATA
    assert (layer.bias is not None) == has_bias
    if has_bias:
        layer.bias.data = DATA[case + "bias"].copy()
    x = minidl.tensor(DATA[case + "x"], requires_grad=True)
    y = layer(x)
    np.testing.assert_allclose(y.numpy(), DATA[case + "y"], **TOL)
    _backward(y, DATA[case + "r"])
    np.testing.assert_allclose(x.grad.numpy(), DATA[case + "grad_x"], **TOL)
    np.testing.assert_allclose(layer.weight.grad.numpy(), DATA[case + "grad_weight"], **TOL)
    if has_bias:
        np.testing.assert_allclose(layer.bias.grad.numpy(), DATA[case + "grad_bias"], **TOL)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("case", _cases("bn"))
def test_batch_norm_training_steps_and_eval_match_mindspore(case, profile):
    """Three training steps (outputs, moving statistics, the last step's gradients), then
    eval: momentum 0.9 keeps 0.9 of the old value, the moving variance takes the unbiased
    batch variance, use_batch_statistics overrides the mode."""
    layer = getattr(nn, str(DATA[case + "class"]))(**_kwargs(case), profile=profile)
    assert [k for k in layer.state_dict()] == json.loads(str(DATA[case + "names"]))
    assert not bool(DATA[case + "initial_training"])  # MindSpore cells start in eval mode
    layer.gamma.data = DATA[case + "gamma"].copy()
    layer.beta.data = DATA[case + "beta"].copy()
    layer.train()
    for step in range(3):
        q = f"{case}step{step}/"
        x = minidl.tensor(DATA[q + "x"], requires_grad=True)
        y = layer(x)
        np.testing.assert_allclose(y.numpy(), DATA[q + "y"], **TOL)
        np.testing.assert_allclose(layer.moving_mean.numpy(), DATA[q + "moving_mean"], **TOL)
        np.testing.assert_allclose(
            layer.moving_variance.numpy(), DATA[q + "moving_variance"], **TOL
        )
        if q + "grad_x" in DATA:
            _backward(y, DATA[q + "r"])
            np.testing.assert_allclose(x.grad.numpy(), DATA[q + "grad_x"], **TOL)
            np.testing.assert_allclose(layer.gamma.grad.numpy(), DATA[q + "grad_gamma"], **TOL)
            np.testing.assert_allclose(layer.beta.grad.numpy(), DATA[q + "grad_beta"], **TOL)
    layer.set_train(False)
    y = layer(minidl.tensor(DATA[case + "eval/x"]))
    np.testing.assert_allclose(y.numpy(), DATA[case + "eval/y"], **TOL)
    np.testing.assert_allclose(layer.moving_mean.numpy(), DATA[case + "eval/moving_mean"], **TOL)
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), DATA[case + "eval/moving_variance"], **TOL
    )


@pytest.mark.parametrize("case", _cases("pool"))
def test_pools_match_mindspore_in_every_pad_mode(case):
    layer = getattr(nn, str(DATA[case + "class"]))(**_kwargs(case), profile="mindspore")
    x = minidl.tensor(DATA[case + "x"], requires_grad=True)
    y = layer(x)
    np.testing.assert_allclose(y.numpy(), DATA[case + "y"], **TOL)
    _backward(y, DATA[case + "r"])
    if str(DATA[case + "grad_status"]) == "ok":
        np.testing.assert_allclose(x.grad.numpy(), DATA[case + "grad_x"], **TOL)
    else:  # MindSpore 2.10 (CPU) fails on this gradient: AvgPool2d(ceil_mode=True), 'valid'
        kwargs = _kwargs(case)
        assert str(DATA[case + "class"]) == "AvgPool2d" and kwargs["ceil_mode"], kwargs


def test_default_pools_are_the_identity_and_keep_stride_one():
    x = minidl.tensor(np.arange(30, dtype=np.float32).reshape(1, 1, 5, 6))
    assert np.array_equal(nn.MaxPool2d(profile="mindspore")(x).numpy(), x.numpy())
    assert nn.MaxPool2d(3, profile="mindspore")(x).shape == (1, 1, 3, 4)
    assert nn.MaxPool2d(3, profile="torch")(x).shape == (1, 1, 1, 2)


@pytest.mark.parametrize("case", _cases("dropout"))
def test_dropout_keep_prob_and_p_as_mindspore(case):
    kwargs = _kwargs(case)
    layer = nn.Dropout(**kwargs, profile="mindspore")
    minidl.manual_seed(0)
    y = layer(minidl.tensor(np.ones((200, 500), np.float32))).numpy()
    # both draw 100000 Bernoulli masks: the zero fractions agree within 6 standard deviations
    assert abs((y == 0).mean() - float(DATA[case + "zero_fraction"])) < 6 * np.sqrt(0.25 / 1e5)
    np.testing.assert_allclose(np.unique(y[y != 0]), DATA[case + "kept_values"], rtol=1e-6)
    layer.eval()
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    assert np.array_equal(layer(minidl.tensor(x)).numpy(), x) == bool(
        DATA[case + "eval_is_identity"]
    )


def test_dropout_first_positional_argument_is_keep_prob():
    assert nn.Dropout(0.8, profile="mindspore")._spec.p == pytest.approx(0.2)
    assert nn.Dropout(0.8, p=0.5, profile="mindspore")._spec.p == 0.5
    assert nn.Dropout(0.8, profile="torch")._spec.p == 0.8
    assert nn.Dropout(0.8, profile="megengine")._spec.p == 0.8  # drop_prob


@pytest.mark.parametrize("case", _cases("error"))
def test_layer_constructor_errors_as_mindspore(case):
    cls, kwargs = str(DATA[case + "class"]), _kwargs(case)
    expected = {"ValueError": ValueError, "TypeError": TypeError}[str(DATA[case + "exc_type"])]
    with pytest.raises(expected) as raised:
        getattr(nn, cls)(**kwargs, profile="mindspore")
    message = str(DATA[case + "message"])
    # the argument MindSpore names is named too
    quoted = [w for w in message.split("'")[1::2] if w in kwargs or w in ("pad", "pad_mode")]
    assert quoted and all(w in str(raised.value) for w in quoted[:1])


@pytest.mark.parametrize(
    "profile, weight, bias",
    [("mindspore-2.1", "dense_weight", "dense_bias"), ("mindspore", None, None)],
)
def test_dense_default_initialisation_matches_mindspore(profile, weight, bias):
    minidl.manual_seed(3)
    ours = [nn.Dense(50, 40, profile=profile) for _ in range(5)]
    w = np.concatenate([d.weight.numpy().ravel() for d in ours])
    b = np.concatenate([d.bias.numpy().ravel() for d in ours])
    if weight is None:  # r2.0: weight_init='normal' (sigma 0.01), bias_init='zeros'
        assert stats.ks_2samp(w, DATA["layers/init/dense_normal_weight"]).pvalue > 1e-3
        assert not b.any()
        return
    assert stats.ks_2samp(w, DATA["layers/init/" + weight]).pvalue > 1e-3
    assert stats.ks_2samp(b, DATA["layers/init/" + bias]).pvalue > 1e-3


def _sequential(profile: str) -> nn.Module:
    with minidl.use_profile(profile):
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, has_bias=True), nn.BatchNorm2d(4), nn.ReLU(),
            nn.MaxPool2d(2, 2), nn.Flatten(), nn.Dropout(p=0.5), nn.Dense(4, 3),
        )


def test_sequential_parameter_names_and_order_are_mindspores():
    state = _sequential("mindspore").state_dict()
    assert list(state) == json.loads(str(DATA["layers/sequential/names"]))
    assert [list(v.shape) for v in state.values()] == json.loads(
        str(DATA["layers/sequential/shapes"])
    )


class LeNet5(nn.Module):
    """The MindSpore model zoo's LeNet-5, written with minidl under the mindspore profile."""

    def __init__(self, num_class: int = 10, num_channel: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_channel, 6, 5, pad_mode="valid")
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
        self.fc1 = nn.Dense(16 * 5 * 5, 120, weight_init="normal")
        self.fc2 = nn.Dense(120, 84, weight_init="normal")
        self.fc3 = nn.Dense(84, num_class, weight_init="normal")
        self.relu = nn.ReLU()
        self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()

    def forward(self, x):
        x = self.max_pool2d(self.relu(self.conv1(x)))
        x = self.max_pool2d(self.relu(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


def _mindspore_lenet_parameters() -> dict[str, np.ndarray]:
    names = json.loads(str(DATA["layers/lenet/names"]))
    return {name: DATA["layers/lenet/param/" + name] for name in names}


@pytest.mark.parametrize("profile", PROFILES)
def test_model_zoo_lenet5_loads_mindspores_parameters_and_gives_its_outputs(profile):
    with minidl.use_profile(profile):
        model = LeNet5()
    params = _mindspore_lenet_parameters()
    assert list(model.state_dict()) == list(params)  # names and order
    model.load_state_dict(params)
    model.eval()
    x = minidl.tensor(DATA["layers/lenet/x"], requires_grad=True)
    y = model(x)
    np.testing.assert_allclose(y.numpy(), DATA["layers/lenet/y"], **TOL)
    _backward(y, DATA["layers/lenet/r"])
    np.testing.assert_allclose(x.grad.numpy(), DATA["layers/lenet/grad_x"], **TOL)
    for name, param in model.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), DATA["layers/lenet/grad/" + name], **TOL)


def test_lenet5_checkpoint_loads_into_a_torch_profile_model_and_back_bit_exact():
    """The same network written for PyTorch (MindSpore's convs have no bias by default)."""
    model = LeNet5.__new__(LeNet5)
    nn.Module.__init__(model)
    with minidl.use_profile("torch"):
        model.conv1, model.conv2 = nn.Conv2d(1, 6, 5, bias=False), nn.Conv2d(6, 16, 5, bias=False)
        model.fc1, model.fc2, model.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)
        model.relu, model.max_pool2d, model.flatten = nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten()
    params = _mindspore_lenet_parameters()
    model.load_state_dict(params, profile="mindspore")
    y = model(minidl.tensor(DATA["layers/lenet/x"]))
    np.testing.assert_allclose(y.numpy(), DATA["layers/lenet/y"], **TOL)
    back = model.state_dict(profile="mindspore")
    assert list(back) == list(params)
    assert all(np.array_equal(back[k], params[k]) for k in params)
