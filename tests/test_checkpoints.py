"""Checkpoints across frameworks: layout conversion round trips, real PyTorch state dicts and
.pt files, MegEngine and MindSpore dicts, minidl.save/load, and models rebuilt under another
profile (minidl.profiles.convert) giving the same outputs."""

import itertools
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl import nn, profiles

PROFILES = ["torch", "megengine", "mindspore", "mindspore-2.1"]
TOL = dict(rtol=1e-5, atol=1e-6)


def _x(*shape, seed=0):
    return minidl.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _torch_layer(kind, groups, bias):
    return getattr(nn, kind)(4, 8, 3, groups=groups, bias=bias, profile="torch")


LAYER_CONFIGS = [(k, g, b) for k in profiles.LAYER_KINDS for g in (1, 2) for b in (True, False)]


@pytest.mark.parametrize("kind, groups, bias", LAYER_CONFIGS)
@pytest.mark.parametrize("src, dst", list(itertools.permutations(PROFILES, 2)))
def test_layout_round_trips_are_exact(kind, groups, bias, src, dst):
    """Export in dst's layout, load it back from dst's layout: bit-identical; the exported
    shapes are the ones a dst layer stores."""
    if "megengine" in (src, dst) and kind == "ConvTranspose1d":
        with pytest.raises(NotImplementedError, match="MegEngine 1.13 has no ConvTranspose1d"):
            layer = getattr(nn, kind)(4, 8, 3, profile=src)
            layer.state_dict(profile=dst)
        return
    layer = profiles.convert(_torch_layer(kind, groups, bias), src)
    before = layer.state_dict()
    exported = layer.state_dict(profile=dst)
    twin = profiles.convert(layer, dst)
    assert [(k, v.shape) for k, v in exported.items()] == [
        (k, v.shape) for k, v in twin.state_dict().items()
    ]
    for key in exported:
        np.testing.assert_array_equal(exported[key], twin.state_dict()[key])
    layer.load_state_dict({k: v * 0 for k, v in before.items()})
    layer.load_state_dict(exported, profile=dst)
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_megengine_export_orders_bias_first():
    layer = nn.Conv2d(4, 8, 3, groups=2)
    assert list(layer.state_dict(profile="megengine")) == ["bias", "weight"]
    assert layer.state_dict(profile="megengine")["weight"].shape == (2, 4, 2, 3, 3)
    assert list(layer.state_dict(profile="mindspore")) == ["weight", "bias"]


def test_wrong_layout_names_the_shapes():
    model = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2))
    megengine_sd = model.state_dict(profile="megengine")
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(2, 4, 2, 3, 3\)"):
        model.load_state_dict(megengine_sd)  # forgot profile='megengine'
    model.load_state_dict(megengine_sd, profile="megengine")


# ---- real PyTorch -------------------------------------------------------------------------------
def _torch_model(torch):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, 3, padding=1, groups=2),
        torch.nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1),
        torch.nn.Conv2d(6, 4, 3, padding=2, padding_mode="reflect", bias=False),
    )


def _minidl_model(profile):
    """The same network, written with each framework's arguments."""
    if profile.startswith("mindspore"):
        return nn.Sequential(
            nn.Conv2d(4, 8, 3, pad_mode="pad", padding=1, group=2, has_bias=True, profile=profile),
            nn.Conv2dTranspose(
                8,
                6,
                3,
                stride=2,
                pad_mode="pad",
                padding=(1, 0, 1, 0),
                has_bias=True,
                profile=profile,
            ),
            nn.Conv2d(6, 4, 3, pad_mode="pad", padding=0, profile=profile),  # after F.pad below
        )
    return nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1, groups=2, profile=profile),
        nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1, profile=profile),
        nn.Conv2d(6, 4, 3, padding=2, padding_mode="reflect", bias=False, profile=profile),
    )


def _run(model, x, profile):
    if not profile.startswith("mindspore"):
        return model(x)
    y = model[1](model[0](x))  # MindSpore has no reflect padding: nn.Pad, then the conv
    return model[2](minidl.nn.functional.pad(y, (2, 2, 2, 2), mode="reflect"))


@pytest.mark.parametrize("profile", PROFILES)
def test_real_torch_state_dict_in_every_profile(torch, profile):
    reference = _torch_model(torch)
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 6)).astype(np.float32)
    expected = reference(torch.tensor(x)).detach().numpy()
    model = _minidl_model(profile)
    model.load_state_dict(reference.state_dict(), profile="torch")
    np.testing.assert_allclose(
        _run(model, minidl.tensor(x), profile).numpy(), expected, rtol=1e-4, atol=1e-5
    )
    back = model.state_dict(profile="torch")
    for key, value in reference.state_dict().items():
        np.testing.assert_array_equal(back[key], value.numpy())


def test_real_torch_pt_file(torch, tmp_path):
    reference = _torch_model(torch)
    torch.save(reference.state_dict(), tmp_path / "model.pt")
    torch.save({"model": reference.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pth")
    state = minidl.load(tmp_path / "model.pt")
    assert all(isinstance(v, np.ndarray) for v in state.values())
    model = _minidl_model("megengine")
    model.load_state_dict(state, profile="torch")
    nested = minidl.load(tmp_path / "checkpoint.pth")
    assert nested["epoch"] == 3
    model.load_state_dict(nested["model"], profile="torch")
    x = np.ones((1, 4, 5, 5), np.float32)
    np.testing.assert_allclose(
        model(minidl.tensor(x)).numpy(),
        reference(torch.tensor(x)).detach().numpy(),
        rtol=1e-4,
        atol=1e-5,
    )


def test_torch_state_dict_with_an_extra_0d_tensor_loads_with_strict_false(torch):
    sd = OrderedDict(weight=torch.ones(4, 2, 3), bias=torch.zeros(4), step=torch.tensor(7))
    layer = nn.Conv1d(2, 4, 3)
    with pytest.raises(KeyError, match="unexpected keys \\['step'\\]"):
        layer.load_state_dict(sd)
    layer.load_state_dict(sd, strict=False)
    assert layer.weight.numpy().sum() == 4 * 2 * 3


# ---- MegEngine and MindSpore dicts --------------------------------------------------------------
def test_megengine_state_dict_loads_natively_and_into_torch_layers(tmp_path):
    """As MegEngine's state_dict gives it: name -> numpy, bias before weight, 5-D grouped
    weight, (1, out, 1, 1) bias."""
    rng = np.random.default_rng(0)
    mge = OrderedDict(
        [
            ("conv1.bias", rng.standard_normal((1, 8, 1, 1)).astype(np.float32)),
            ("conv1.weight", rng.standard_normal((2, 4, 2, 3, 3)).astype(np.float32)),
            ("deconv.bias", rng.standard_normal((1, 4, 1, 1)).astype(np.float32)),
            ("deconv.weight", rng.standard_normal((2, 4, 2, 3, 3)).astype(np.float32)),
        ]
    )

    def build(profile, **grouping):
        return nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(4, 8, 3, padding=1, profile=profile, **grouping),
                deconv=nn.ConvTranspose2d(
                    8, 4, 3, stride=2, padding=1, profile=profile, **grouping
                ),
            )
        )

    native = build("megengine", groups=2)
    native.load_state_dict(mge)  # its own layout: no profile= needed
    ported = build("torch", groups=2)
    ported.load_state_dict(mge, profile="megengine")
    assert ported[0].weight.shape == (8, 2, 3, 3) and ported[1].weight.shape == (8, 2, 3, 3)
    x = _x(1, 4, 5, 5)
    np.testing.assert_allclose(ported(x).numpy(), native(x).numpy(), **TOL)
    minidl.save(native.state_dict(), tmp_path / "mge.npz")
    assert list(minidl.load(tmp_path / "mge.npz")) == list(mge)


def test_mindspore_parameter_dict_loads_natively_and_into_torch_layers():
    """name -> numpy with the cell path as prefix and a 4-D Conv1d weight."""
    rng = np.random.default_rng(0)
    ms_params = {
        "backbone.conv1.weight": rng.standard_normal((8, 4, 1, 3)).astype(np.float32),
        "backbone.conv1.bias": rng.standard_normal(8).astype(np.float32),
    }

    def build(**layer):
        return nn.Sequential(OrderedDict(backbone=nn.Sequential(OrderedDict(conv1=layer["conv"]))))

    native = build(
        conv=nn.Conv1d(4, 8, 3, pad_mode="pad", padding=1, has_bias=True, profile="mindspore")
    )
    native.load_state_dict(ms_params)
    ported = build(conv=nn.Conv1d(4, 8, 3, padding=1))
    ported.load_state_dict(ms_params, profile="mindspore")
    x = _x(2, 4, 9)
    np.testing.assert_allclose(ported(x).numpy(), native(x).numpy(), **TOL)
    assert ported.state_dict(profile="mindspore")["backbone.conv1.weight"].shape == (8, 4, 1, 3)


# ---- save / load --------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    model = nn.Sequential(
        nn.Conv3d(2, 4, 2, groups=2, profile="megengine"),
        nn.Conv2dTranspose(4, 2, 3, has_bias=True, profile="mindspore"),
    )
    state = model.state_dict()
    state["meta.step"] = np.array(5)
    path = tmp_path / "model.weights"  # written exactly there, no suffix added
    minidl.save(state, path)
    loaded = minidl.load(path)
    assert path.exists() and list(loaded) == list(state)
    for key in state:
        assert loaded[key].dtype == state[key].dtype
        np.testing.assert_array_equal(loaded[key], state[key])
    model.double()
    minidl.save(model.state_dict(profile="torch"), tmp_path / "f64.npz")
    assert minidl.load(tmp_path / "f64.npz")["0.weight"].dtype == np.float64


def test_save_load_errors(tmp_path):
    model = nn.Conv2d(2, 4, 3)
    with pytest.raises(TypeError, match="state_dict"):
        minidl.save(model, tmp_path / "m.npz")
    with pytest.raises(TypeError, match="nested"):
        minidl.save({"a": {"b": np.ones(2)}}, tmp_path / "m.npz")
    with pytest.raises(TypeError, match="keys must be strings"):
        minidl.save({1: np.ones(2)}, tmp_path / "m.npz")
    (tmp_path / "junk.bin2").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="neither an .npz file nor a PyTorch checkpoint"):
        minidl.load(tmp_path / "junk.bin2")


# ---- rebuilding under another profile -----------------------------------------------------------
def _network():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, groups=1),
        nn.Conv2d(8, 8, 3, stride=2, groups=4, bias=False),
        nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1),
        nn.Conv2d(4, 4, 3, padding="same"),
        nn.Conv2d(4, 2, 1),
    )


@pytest.mark.parametrize("target", PROFILES)
def test_convert_gives_the_same_outputs(target):
    minidl.manual_seed(0)
    model = _network()
    x = _x(2, 3, 7, 8)
    converted = profiles.convert(model, target)
    assert all(m.profile == target for m in converted if hasattr(m, "profile"))
    np.testing.assert_allclose(converted(x).numpy(), model(x).numpy(), **TOL)
    back = profiles.convert(converted, "torch")
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=k)
    assert model[0].profile == "torch"  # the original is untouched


def test_convert_mindspore_model_to_others():
    minidl.manual_seed(1)
    with minidl.use_profile("mindspore"):
        first = nn.Conv2d(3, 4, 3, pad_mode="pad", padding=(1, 0, 2, 1), has_bias=True)
        rest = [
            nn.Conv2dTranspose(4, 4, 4, stride=2, pad_mode="same"),
            nn.Conv2d(4, 2, 3, pad_mode="valid", group=2),
        ]
        symmetric = nn.Conv2d(3, 4, 3, pad_mode="pad", padding=1)
    model = nn.Sequential(first, *rest)
    x = _x(1, 3, 6, 6)
    np.testing.assert_allclose(
        profiles.convert(model, "mindspore-2.1")(x).numpy(), model(x).numpy(), **TOL
    )
    with pytest.raises(ValueError, match=r"^0 \(Conv2d.*cannot be rebuilt under the torch profile"):
        profiles.convert(model, "torch")  # asymmetric padding
    model = nn.Sequential(symmetric, *rest)
    for target in ("torch", "megengine"):
        np.testing.assert_allclose(
            profiles.convert(model, target)(x).numpy(), model(x).numpy(), **TOL
        )


@pytest.mark.parametrize(
    "layer, target, words",
    [
        (
            lambda: nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"),
            "mindspore",
            "pad with zeros only",
        ),
        (
            lambda: nn.Conv2d(2, 4, 3, padding=1, padding_mode="circular"),
            "megengine",
            "pads with ['zeros', 'reflect', 'replicate'] only",
        ),
        (
            lambda: nn.Conv2d(2, 4, 3, stride=2, profile="mindspore"),
            "torch",
            "depends on the input size",
        ),
        (lambda: nn.Conv2d(2, 4, 2, padding="same"), "megengine", "pads both sides of a dim alike"),
        (lambda: nn.Conv1d(2, 4, 2, padding="same"), "mindspore", None),  # 'same' at stride 1: fine
        (lambda: nn.ConvTranspose1d(2, 4, 3), "megengine", "no ConvTranspose1d"),
        (
            lambda: nn.ConvTranspose2d(2, 4, 3, stride=2, output_padding=1),
            "mindspore",
            "cannot keep this window",
        ),
        (lambda: nn.ConvTranspose3d(2, 4, 3, stride=2, output_padding=1), "mindspore", None),
        (
            lambda: nn.Conv2dTranspose(2, 4, 3, stride=2, profile="mindspore"),
            "torch",
            "cannot select",
        ),
        (lambda: nn.Conv2dTranspose(2, 4, 2, stride=3, profile="mindspore"), "torch", None),
    ],
)
def test_convert_says_what_cannot_be_expressed(layer, target, words):
    conv = layer()
    if words is None:
        x = _x(1, conv.in_channels, *(5,) * len(conv.kernel_size))
        np.testing.assert_allclose(
            profiles.convert(conv, target)(x).numpy(), conv(x).numpy(), **TOL
        )
        return
    with pytest.raises(ValueError) as raised:
        profiles.convert(conv, target)
    assert words in str(raised.value) and f"under the {target} profile" in str(raised.value)


def test_random_torch_layers_convert_wherever_expressible():
    """Random PyTorch configurations: every conversion either gives the same output or raises
    a ValueError that says why."""
    rng = np.random.default_rng(0)
    converted = 0
    for _ in range(60):
        kind = str(rng.choice(profiles.LAYER_KINDS))
        nd, transposed = int(kind[-2]), "Transpose" in kind
        g = int(rng.choice([1, 2]))
        kw = dict(
            kernel_size=int(rng.integers(1, 4)),
            stride=int(rng.integers(1, 3)),
            dilation=int(rng.integers(1, 3)),
            groups=g,
            bias=bool(rng.integers(2)),
        )
        kw["padding"] = int(rng.integers(0, kw["kernel_size"]))
        if transposed:
            kw["output_padding"] = int(rng.integers(0, max(kw["stride"], kw["dilation"])))
        else:
            kw["padding_mode"] = str(rng.choice(["zeros", "zeros", "reflect", "replicate"]))
        layer = getattr(nn, kind)(2 * g, 2 * g, **kw)
        x = _x(1, 2 * g, *(5,) * nd, seed=converted)
        for target in PROFILES[1:]:
            try:
                twin = profiles.convert(layer, target)
            except ValueError as error:
                assert "cannot be rebuilt" in str(error)
                continue
            np.testing.assert_allclose(twin(x).numpy(), layer(x).numpy(), **TOL)
            converted += 1
    assert converted > 60
