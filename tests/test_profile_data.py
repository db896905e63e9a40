"""Profiles are data that minidl.nn reads: no import of minidl.nn in minidl/profiles, the
initialisers are minidl.nn.init calls (whose explicit ``fans`` are checked here, and whose
formulas against torch.nn.init), the padding rules are frozen data."""

import ast
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import minidl
from minidl import nn, profiles
from minidl.nn import init
from minidl.profiles import mindspore as ms
from minidl.profiles import padding
from minidl.profiles import spec as spec_module
from minidl.profiles.init import ArrayInit, Initializer
from minidl.profiles.signature import REQUIRED

PROFILES_DIR = Path(minidl.__file__).parent / "profiles"


def _imported_modules(path: Path) -> list[str]:
    """Absolute names of what a module of minidl.profiles imports."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ["minidl", "profiles"][: 2 - (node.level - 1)] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return names


def test_profiles_import_nothing_from_nn():
    files = sorted(PROFILES_DIR.glob("*.py"))
    assert len(files) >= 9  # the split modules and the three frameworks
    for path in files:
        imported = _imported_modules(path)
        assert imported, path
        assert not [m for m in imported if m == "minidl.nn" or m.startswith("minidl.nn.")], path
    assert "minidl.profiles.spec.ConvSpec" in _imported_modules(PROFILES_DIR / "padding.py")


def test_padding_rules_are_frozen_data():
    for rule in (padding.ConvPadding, padding.SamePadding, padding.TransposeWindow):
        assert dataclasses.is_dataclass(rule) and rule.__dataclass_params__.frozen
        assert not hasattr(rule, "forward")
    rule = padding.ConvPadding((1, 0), (1, 2), "reflect")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.mode = "zeros"
    assert rule.describe() == "before (1, 0), after (1, 2), reflect"


def _initializers():
    found = []
    for profile in profiles.registered():
        found += [profile.init.weight, profile.init.bias]
    found += [make() for make in ms.INITIALIZERS.values()]
    for profile in profiles.registered():  # the non-conv layers' defaults
        for kind, module in profile.modules.items():
            if module.init is not None:
                required = {a.name: 3 for a in module.layer.signature if a.default is REQUIRED}
                found += list(module.init(profile.bind(kind, (), required)).values())
    return found


def test_layer_specs_are_frozen_data_in_pytorchs_terms():
    for spec in (spec_module.LinearSpec, spec_module.BatchNormSpec, spec_module.PoolSpec,
                 spec_module.DropoutSpec, spec_module.FlattenSpec):
        assert dataclasses.is_dataclass(spec) and spec.__dataclass_params__.frozen
        assert spec.__doc__ and "PyTorch" in spec.__doc__
        assert not hasattr(spec, "forward")


def test_every_initializer_names_an_nn_init_function():
    for initializer in _initializers():
        assert isinstance(initializer, Initializer)
        assert callable(getattr(init, initializer.function)), initializer
        assert initializer.describe()


@pytest.mark.parametrize("name", sorted(ms.INITIALIZERS))
def test_layers_fill_parameters_by_calling_nn_init(name):
    """A layer's parameter is what the named nn.init function draws, with the layer's fans
    (MindSpore's rule: those of the stored weight)."""
    initializer = ms.INITIALIZERS[name]()
    minidl.manual_seed(7)
    layer = nn.Conv2d(4, 6, 3, group=2, weight_init=name, profile="mindspore")
    minidl.manual_seed(7)
    expected = minidl.tensor(np.zeros((6, 2, 3, 3), np.float32))
    extra = {"fans": (2 * 9, 6 * 9)} if initializer.uses_fans else {}
    getattr(init, initializer.function)(expected, **dict(initializer.arguments), **extra)
    np.testing.assert_array_equal(layer.weight.numpy(), expected.numpy())


def test_torch_profile_defaults_are_pytorch_reset_parameters():
    """torch.nn's _ConvNd.reset_parameters: kaiming_uniform_(a=sqrt(5)) on the weight, then
    U(+-1/sqrt(fan_in)) on the bias, fan_in from the weight (out/g * k for a transposed conv)."""
    for layer, shape in (("Conv2d", (6, 2, 3, 3)), ("ConvTranspose2d", (4, 3, 3, 3))):
        minidl.manual_seed(3)
        conv = getattr(nn, layer)(4, 6, 3, groups=2)
        minidl.manual_seed(3)
        weight = init.kaiming_uniform_(minidl.tensor(np.zeros(shape, np.float32)), a=math.sqrt(5))
        fan_in = shape[1] * 9
        bound = 1 / math.sqrt(fan_in)
        bias = init.uniform_(minidl.tensor(np.zeros(6, np.float32)), -bound, bound)
        np.testing.assert_array_equal(conv.weight.numpy(), weight.numpy())
        np.testing.assert_array_equal(conv.bias.numpy(), bias.numpy())


def test_megengine_weights_are_normal_with_its_fan_in():
    """MegEngine's reset_parameters: normal_(weight, 0, sqrt(1 / fanin)), fanin = in * kh * kw
    whatever the groups, and a zero bias."""
    minidl.manual_seed(5)
    conv = nn.Conv2d(8, 4, 3, groups=2, profile="megengine")
    minidl.manual_seed(5)
    expected = init.normal_(minidl.tensor(np.zeros((2, 2, 4, 3, 3))), 0.0, math.sqrt(1 / 72))
    np.testing.assert_allclose(conv.weight.numpy(), expected.numpy(), rtol=1e-6)
    assert not conv.bias.numpy().any()


# ---- minidl.nn.init: explicit fans, and the formulas against torch.nn.init ---------------------
FAN_FUNCTIONS = [
    ("kaiming_uniform_", dict(a=0.5, mode="fan_in")),
    ("kaiming_uniform_", dict(mode="fan_out", nonlinearity="relu")),
    ("kaiming_normal_", dict(a=0.1)),
    ("kaiming_normal_", dict(mode="fan_out", nonlinearity="tanh")),
    ("xavier_uniform_", dict(gain=2.0)),
    ("xavier_normal_", dict()),
    ("fan_in_uniform_", dict()),
]


@pytest.mark.parametrize("name, kwargs", FAN_FUNCTIONS)
def test_explicit_fans_replace_the_tensors_own(name, kwargs):
    """fans=(fan_in, fan_out) draws what the function draws on a tensor with those fans."""
    function = getattr(init, name)
    minidl.manual_seed(1)
    shaped = function(minidl.tensor(np.zeros((20, 10, 3))), **kwargs)  # fans (30, 60)
    minidl.manual_seed(1)
    flat = function(minidl.tensor(np.zeros(600)), **kwargs, fans=(30, 60))
    np.testing.assert_array_equal(flat.numpy(), shaped.numpy().ravel())
    minidl.manual_seed(1)
    other = function(minidl.tensor(np.zeros((20, 10, 3))), **kwargs, fans=(7, 11))
    assert not np.array_equal(other.numpy(), shaped.numpy())


def test_fan_in_uniform_is_the_bias_rule():
    minidl.manual_seed(0)
    values = init.fan_in_uniform_(minidl.tensor(np.zeros(20000)), fans=(50, 8)).numpy()
    bound = 1 / math.sqrt(50)
    assert np.abs(values).max() <= bound
    assert stats.kstest(values, "uniform", args=(-bound, 2 * bound)).pvalue > 0.01
    assert not init.fan_in_uniform_(minidl.tensor(np.ones(5)), fans=(0, 3)).numpy().any()


@pytest.mark.parametrize("fans", [(3,), (3, -1), (2.5, 4), "ab"])
def test_bad_fans(fans):
    with pytest.raises(ValueError, match="fans must be"):
        init.kaiming_uniform_(minidl.tensor(np.zeros((4, 4))), fans=fans)


@pytest.mark.parametrize("name, kwargs", FAN_FUNCTIONS[:-1])
def test_init_functions_match_torch(torch, name, kwargs):
    """Without fans, PyTorch's semantics: the same distribution as torch.nn.init's."""
    shape = (40, 30, 3, 3)
    torch.manual_seed(0)
    minidl.manual_seed(0)
    theirs = getattr(torch.nn.init, name)(torch.empty(shape), **kwargs).numpy().ravel()
    mine = getattr(init, name)(minidl.tensor(np.zeros(shape, np.float32)), **kwargs).numpy()
    assert stats.ks_2samp(mine.ravel(), theirs).pvalue > 0.01
    np.testing.assert_allclose(mine.std(), theirs.std(), rtol=0.03)


@pytest.mark.parametrize(
    "nonlinearity, param",
    [("linear", None), ("relu", None), ("tanh", None), ("leaky_relu", None),
     ("leaky_relu", math.sqrt(5)), ("selu", None), ("conv2d", None), ("sigmoid", None)],
)
def test_calculate_gain_matches_torch(torch, nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(
        nonlinearity, param
    )


def test_array_initializer_checks_the_shape():
    values = ArrayInit(np.ones((8, 4, 3)), "weight_init")
    assert values.array((8, 4, 1, 3), np.dtype(np.float64)).shape == (8, 4, 1, 3)
    with pytest.raises(ValueError, match=r"shape \(8, 4, 3\).*\(8, 4, 3, 3\)"):
        values.array((8, 4, 3, 3), np.dtype(np.float32))
