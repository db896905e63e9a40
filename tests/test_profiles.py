"""Profiles: switching, signatures and their errors, the frameworks' documented examples,
parameter shapes, MegEngine's conventions, MindSpore's initializers, repr, diff and float64
gradients."""

import math

import numpy as np
import pytest
from gradcheck import gradcheck
from scipy import stats

import minidl
import minidl.nn.functional as F
from minidl import nn, profiles
from minidl.profiles import mindspore as ms


@pytest.fixture(autouse=True)
def _restore_profile():
    yield
    minidl.set_profile("torch")


# ---- switching ----------------------------------------------------------------------------------
def test_set_profile_and_use_profile_choose_the_profile_of_new_layers():
    assert minidl.get_profile().name == "torch"
    assert set(profiles.available()) == {"torch", "megengine", "mindspore", "mindspore-2.1"}
    minidl.set_profile("mindspore")
    assert nn.Conv2d(4, 8, 3).profile == "mindspore"
    with minidl.use_profile("megengine") as active:
        assert active.name == "megengine"
        inner = nn.Conv2d(4, 8, 3, groups=2)
        with minidl.use_profile("torch"):
            assert nn.Conv2d(4, 8, 3).profile == "torch"
        assert minidl.get_profile().name == "megengine"
    assert minidl.get_profile().name == "mindspore"
    assert inner.profile == "megengine" and inner.weight.shape == (2, 4, 2, 3, 3)
    assert nn.Conv2d(4, 8, 3, profile="torch").profile == "torch"  # profile= wins


def test_use_profile_restores_after_an_error_and_works_as_decorator():
    with pytest.raises(RuntimeError), minidl.use_profile("mindspore"):
        raise RuntimeError
    assert minidl.get_profile().name == "torch"

    @minidl.use_profile("megengine")
    def build():
        return nn.Conv2d(2, 4, 3)

    assert build().profile == "megengine" and minidl.get_profile().name == "torch"


def test_unknown_profile_raises_value_error_listing_the_available_ones():
    with pytest.raises(ValueError, match="unknown profile 'jax'.*available"):
        minidl.set_profile("jax")
    with pytest.raises(ValueError, match="unknown profile"):
        nn.Conv2d(2, 4, 3, profile="pytorch")


# ---- signatures ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "profile, layer, kwargs, words",
    [
        (
            "mindspore",
            "Conv2d",
            dict(groups=2),
            "'groups' is spelled 'group' under the mindspore profile",
        ),
        (
            "mindspore",
            "Conv2d",
            dict(bias=True),
            "'bias' is spelled 'has_bias' under the mindspore",
        ),
        ("mindspore", "Conv2d", dict(padding_mode="reflect"), "pad_mode='valid'"),
        (
            "mindspore",
            "ConvTranspose1d",
            dict(output_padding=1),
            "no equivalent in Conv1dTranspose",
        ),
        ("mindspore", "Conv2d", dict(dtype="float64"), "mindspore-2.1"),
        ("torch", "Conv2d", dict(group=2), "'group' is spelled 'groups' under the torch profile"),
        ("torch", "Conv2d", dict(has_bias=False), "'has_bias' is spelled 'bias' under the torch"),
        ("torch", "Conv2d", dict(pad_mode="same"), "padding='same'"),
        ("torch", "Conv2d", dict(weight_init="normal"), "minidl.nn.init"),
        ("torch", "Conv2d", dict(conv_mode="cross_correlation"), "cross-correlation"),
        ("megengine", "Conv3d", dict(padding_mode="reflect"), "only MegEngine's Conv1d and Conv2d"),
        ("megengine", "ConvTranspose2d", dict(has_bias=True), "'has_bias' is spelled 'bias'"),
        ("megengine", "Conv2d", dict(pad_mode="same"), "padding=<amounts>"),
        ("megengine", "Conv2d", dict(data_format="NCHW"), "channels-first"),
        ("torch", "Conv2d", dict(foo=1), "no profile knows an argument 'foo'"),
    ],
)
def test_foreign_argument_names_the_equivalent(profile, layer, kwargs, words):
    with pytest.raises(TypeError) as raised:
        getattr(nn, layer)(4, 8, 3, profile=profile, **kwargs)
    assert words in str(raised.value)
    assert "unexpected keyword argument" in str(raised.value)


def test_positional_arguments_follow_each_signature():
    # torch: (in, out, k, stride, padding); mindspore: (in, out, k, stride, pad_mode, padding)
    assert nn.Conv2d(2, 4, 3, 1, 1).padding == (1, 1)  # kept as a pair, as torch.nn does
    ms_layer = nn.Conv2d(2, 4, 3, 1, "pad", 1, profile="mindspore")
    assert (ms_layer.pad_mode, ms_layer.padding) == ("pad", 1)
    # megengine ConvTranspose2d: (..., padding, output_padding, dilation, groups)
    meg = nn.ConvTranspose2d(4, 4, 3, 2, 1, 1, 1, 2, profile="megengine")
    assert meg.groups == 2 and meg.output_padding == (1, 1)  # MegEngine's _pair
    # mindspore Conv3dTranspose: output_padding after group
    ms3 = nn.Conv3dTranspose(2, 4, 3, 2, "pad", 1, 1, 2, 1, profile="mindspore")
    assert (ms3.group, ms3.output_padding) == (2, (1, 1, 1))  # MindSpore keeps a triple
    with pytest.raises(TypeError, match="too many positional arguments. Under the torch profile"):
        nn.Conv1d(*range(1, 13))
    with pytest.raises(TypeError, match="missing a required argument: 'kernel_size'"):
        nn.Conv2d(2, 4, profile="mindspore")


def test_layers_keep_their_frameworks_argument_names_as_attributes():
    layer = nn.Conv2d(
        4, 8, 3, group=2, has_bias=True, pad_mode="pad", padding=(1, 0, 2, 1), profile="mindspore"
    )
    assert (layer.group, layer.groups, layer.has_bias, layer.pad_mode) == (2, 2, True, "pad")
    assert layer.padding == (1, 0, 2, 1) and layer.kernel_size == (3, 3)
    meg = nn.Conv2d(4, 8, 3, name="conv1", profile="megengine")
    assert meg.name == "conv1" and meg.conv_mode == "cross_correlation"


# ---- the frameworks' documented examples -------------------------------------------------------
def test_megengine_grouped_weight_is_5d_and_bias_is_1_out_1_1():
    """The example of MegEngine's page on Conv differences from PyTorch."""
    m_conv = nn.Conv2d(10, 20, kernel_size=3, padding=1, groups=2, profile="megengine")
    t_conv = nn.Conv2d(10, 20, kernel_size=3, padding=1, groups=2, profile="torch")
    assert m_conv.weight.shape == (2, 10, 5, 3, 3)
    assert t_conv.weight.shape == (20, 5, 3, 3)
    m_conv = nn.Conv2d(10, 20, kernel_size=3, profile="megengine")
    t_conv = nn.Conv2d(10, 20, kernel_size=3, profile="torch")
    assert m_conv.bias.shape == (1, 20, 1, 1)
    assert t_conv.bias.shape == (20,)


def test_megengine_conv2d_without_padding_maps_4x4_to_2x2():
    """The example of MegEngine's Conv2d API page."""
    m = nn.Conv2d(in_channels=3, out_channels=1, kernel_size=3, profile="megengine")
    inp = minidl.tensor(np.arange(0, 96).astype("float32").reshape(2, 3, 4, 4))
    assert m(inp).numpy().shape == (2, 1, 2, 2)


@pytest.fixture(scope="module")
def input_1024x640():
    """The 1024 x 640 input of the four examples on MindSpore r2.0's page comparing its
    nn.Conv2d with torch.nn.Conv2d, with 2 channels instead of 120 (same shape arithmetic)."""
    return minidl.tensor(np.ones((1, 2, 1024, 640), np.float32))


def test_mindspore_has_no_bias_unless_has_bias_is_true(input_1024x640):
    x = input_1024x640
    assert nn.Conv2d(2, 1, 4)(x).shape == (1, 1, 1021, 637)
    net = nn.Conv2d(2, 1, 4, has_bias=True, pad_mode="valid", profile="mindspore")
    assert net(x).shape == (1, 1, 1021, 637) and net.bias is not None
    assert nn.Conv2d(2, 1, 4, profile="mindspore").bias is None  # has_bias=False by default


def test_mindspore_pad_mode_pad_gives_torchs_zero_padding_shape(input_1024x640):
    x = input_1024x640
    assert nn.Conv2d(2, 1, 4, padding=1, padding_mode="zeros")(x).shape == (1, 1, 1023, 639)
    net = nn.Conv2d(2, 1, 4, padding=1, pad_mode="pad", profile="mindspore")
    assert net(x).shape == (1, 1, 1023, 639)


def test_mindspore_reflect_padding_is_f_pad_before_a_valid_conv(input_1024x640):
    x = input_1024x640
    assert nn.Conv2d(2, 1, 4, padding=1, padding_mode="reflect")(x).shape == (1, 1, 1023, 639)
    # MindSpore: nn.Pad(paddings=((0,0),(1,1),(1,1),(1,1)), mode="REFLECT") pads channels too
    x_pad = F.pad(x, (1, 1, 1, 1, 1, 1), mode="reflect")
    assert x_pad.shape == (1, 4, 1026, 642)
    net = nn.Conv2d(4, 1, 4, padding=0, pad_mode="valid", profile="mindspore")
    assert net(x_pad).shape == (1, 1, 1023, 639)


def test_mindspore_default_pad_mode_same_keeps_the_size_torch_shrinks_it(input_1024x640):
    x = input_1024x640
    assert nn.Conv2d(2, 1, 4)(x).shape == (1, 1, 1021, 637)
    assert nn.Conv2d(2, 1, 4, pad_mode="valid", profile="mindspore")(x).shape == (1, 1, 1021, 637)
    # MindSpore's default pad_mode='same' keeps the size
    assert nn.Conv2d(2, 1, 4, profile="mindspore")(x).shape == (1, 1, 1024, 640)


# ---- parameter shapes ---------------------------------------------------------------------------
SHAPES = [  # (profile, layer, groups) -> weight, bias
    ("torch", "Conv1d", 1, (8, 4, 3), (8,)),
    ("torch", "Conv2d", 2, (8, 2, 3, 3), (8,)),
    ("torch", "ConvTranspose3d", 2, (4, 4, 3, 3, 3), (8,)),
    ("megengine", "Conv1d", 2, (2, 4, 2, 3), (1, 8, 1)),
    ("megengine", "Conv2d", 1, (8, 4, 3, 3), (1, 8, 1, 1)),
    ("megengine", "Conv3d", 2, (2, 4, 2, 3, 3, 3), (1, 8, 1, 1, 1)),
    ("megengine", "ConvTranspose2d", 1, (4, 8, 3, 3), (1, 8, 1, 1)),
    ("megengine", "ConvTranspose2d", 2, (2, 2, 4, 3, 3), (1, 8, 1, 1)),
    ("megengine", "ConvTranspose3d", 2, (2, 2, 4, 3, 3, 3), (1, 8, 1, 1, 1)),
    ("mindspore", "Conv1d", 2, (8, 2, 1, 3), (8,)),
    ("mindspore", "Conv2d", 1, (8, 4, 3, 3), (8,)),
    ("mindspore", "Conv1dTranspose", 2, (4, 4, 1, 3), (8,)),
    ("mindspore", "Conv2dTranspose", 2, (4, 4, 3, 3), (8,)),
    ("mindspore-2.1", "Conv3d", 2, (8, 2, 3, 3, 3), (8,)),
]


@pytest.mark.parametrize("profile, layer, groups, weight, bias", SHAPES)
def test_parameter_shapes(profile, layer, groups, weight, bias):
    group = "group" if profile.startswith("mindspore") else "groups"
    has_bias = "has_bias" if profile.startswith("mindspore") else "bias"
    conv = getattr(nn, layer)(4, 8, 3, profile=profile, **{group: groups, has_bias: True})
    assert conv.weight.shape == weight and conv.bias.shape == bias
    assert [v.shape for v in conv.state_dict().values()] in ([weight, bias], [bias, weight])


def test_bias_false_leaves_no_bias_parameter_and_no_bias_key():
    assert nn.Conv2d(2, 4, 3, bias=False).bias is None
    assert list(nn.Conv2d(2, 4, 3, bias=False, profile="megengine").state_dict()) == ["weight"]
    assert nn.Conv2d(2, 4, 3, profile="mindspore").state_dict().keys() == {"weight"}


def test_megengine_has_no_conv_transpose1d():
    with pytest.raises(NotImplementedError, match="MegEngine 1.13 has no ConvTranspose1d"):
        nn.ConvTranspose1d(4, 8, 3, profile="megengine")


# ---- MegEngine ----------------------------------------------------------------------------------
def test_megengine_conv_transpose2d_output_size_follows_its_formula():
    """MegEngine's documented size (in - 1) * s - 2p + d * (k - 1) + output_padding + 1 per
    dim: (16, 50, 100) -> (33, 94, 300)."""
    m = nn.ConvTranspose2d(
        16, 33, (3, 5), output_padding=(1, 2), stride=(2, 3), padding=(4, 2), profile="megengine"
    )
    assert m(minidl.tensor(np.zeros((2, 16, 50, 100), np.float32))).shape == (2, 33, 94, 300)


@pytest.mark.parametrize(
    "layer, args, fan_in",
    [
        ("Conv1d", (4, 6, 5), 4 * 5),
        ("Conv2d", (8, 16, 3, 1, 0, 1, 2), 8 * 9),  # groups=2 not divided out
        ("Conv3d", (4, 4, 2, 1, 0, 1, 4), 4 * 8),
        ("ConvTranspose2d", (4, 6, 3, 1, 0, 0, 1, 2), 6 * 9),  # out * kh * kw
        ("ConvTranspose3d", (4, 6, 2, 1, 0, 0, 1, 2), 4 * 8),  # in * kd * kh * kw
    ],
)
def test_megengine_init_is_normal_with_fan_in_ignoring_groups_and_zero_bias(layer, args, fan_in):
    minidl.manual_seed(0)
    layers = [getattr(nn, layer)(*args, profile="megengine") for _ in range(30)]
    weights = np.concatenate([m.weight.numpy().ravel() for m in layers])
    assert stats.kstest(weights, "norm", args=(0.0, math.sqrt(1 / fan_in))).pvalue > 0.01
    assert all(not m.bias.numpy().any() for m in layers)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(padding="same"), TypeError, "no padding strings"),
        (
            dict(conv_mode="convolution"),
            ValueError,
            "conv_mode must be one of ['cross_correlation']",
        ),
        (dict(compute_mode="float16"), ValueError, "compute_mode must be one of"),
        (dict(padding_mode="circular"), ValueError, "padding_mode must be one of"),
        (dict(groups=3), ValueError, "in_channels must be divisible by groups"),
        (dict(padding=(1, 2, 3)), ValueError, "tuple of 2 ints"),
        (dict(padding=-1), ValueError, "padding must be >= 0"),
    ],
)
def test_megengine_constructor_rejects_what_megengine_rejects(kwargs, error, words):
    with pytest.raises(error) as raised:
        nn.Conv2d(4, 8, 3, profile="megengine", **kwargs)
    assert words in str(raised.value)


def test_megengine_accepts_upper_case_modes_and_reflect():
    layer = nn.Conv2d(
        2,
        4,
        3,
        padding=1,
        padding_mode="reflect",
        conv_mode="CROSS_CORRELATION",
        compute_mode="FLOAT32",
        profile="megengine",
    )
    assert layer(minidl.tensor(np.ones((1, 2, 5, 5), np.float32))).shape == (1, 4, 5, 5)


# ---- PyTorch and MindSpore errors (no torch needed) ---------------------------------------------
@pytest.mark.parametrize(
    "profile, layer, kwargs, error, words",
    [
        (
            "torch",
            "Conv2d",
            dict(padding="same", stride=2),
            ValueError,
            "not supported for strided",
        ),
        (
            "torch",
            "Conv2d",
            dict(padding_mode="symmetric"),
            ValueError,
            "padding_mode must be one of",
        ),
        ("torch", "ConvTranspose2d", dict(padding="same"), TypeError, "no 'same'"),
        ("torch", "ConvTranspose2d", dict(stride=2, output_padding=2), ValueError, "smaller than"),
        ("torch", "Conv2d", dict(kernel_size=(3, 3, 3)), ValueError, "tuple of 2 ints"),
        ("torch", "Conv2d", dict(stride=0), ValueError, "stride must be >= 1"),
        ("torch", "Conv2d", dict(device="cuda"), ValueError, "CPU only"),
        ("torch", "Conv2d", dict(dtype="int32"), TypeError, "float32 or float64"),
        ("mindspore", "Conv2d", dict(data_format="NHWC"), ValueError, "only supported on GPU"),
        (
            "mindspore",
            "Conv3d",
            dict(data_format="NCHW"),
            ValueError,
            "'data_format' must be 'NCDHW'",
        ),
        ("mindspore", "Conv1d", dict(kernel_size=(3,)), TypeError, "'kernel_size' should be 'int'"),
        ("mindspore", "Conv3d", dict(pad_mode="pad", padding=(1, 1, 1, 1)), ValueError, "6 ints"),
        (
            "mindspore",
            "Conv2d",
            dict(weight_init="gaussian"),
            ValueError,
            "not a MindSpore initializer",
        ),
        ("mindspore", "Conv2d", dict(weight_init=np.zeros((8, 4, 3))), ValueError, "(8, 4, 3, 3)"),
        (
            "mindspore",
            "Conv2dTranspose",
            dict(output_padding=1),
            ValueError,
            "pad_mode must be 'pad'",
        ),
    ],
)
def test_torch_and_mindspore_constructor_errors_name_the_rule(profile, layer, kwargs, error, words):
    args = dict(in_channels=4, out_channels=8, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(error) as raised:
        getattr(nn, layer)(profile=profile, **args)
    assert words in str(raised.value)


# ---- MindSpore initializers ---------------------------------------------------------------------
def test_mindspore_weight_init_accepts_arrays_numbers_initializers_and_names():
    w = np.arange(8 * 4 * 3, dtype=np.float32).reshape(8, 4, 3)
    layer = nn.Conv1d(4, 8, 3, weight_init=w, has_bias=True, bias_init="ones", profile="mindspore")
    np.testing.assert_array_equal(layer.weight.numpy(), w[:, :, None, :])  # 3-D -> 4-D
    np.testing.assert_array_equal(layer.bias.numpy(), np.ones(8))
    layer = nn.Conv2d(4, 8, 3, weight_init=0.5, profile="mindspore")
    assert (layer.weight.numpy() == 0.5).all()
    layer = nn.Conv2d(4, 8, 3, weight_init=ms.Normal(sigma=2.0, mean=1.0), profile="mindspore")
    assert abs(layer.weight.numpy().mean() - 1.0) < 0.3 and layer.weight.numpy().std() > 1.5
    for name in (
        "zeros",
        "xavier_uniform",
        "XavierUniform",
        "he_normal",
        "truncatedNormal",
        "uniform",
        "one",
    ):
        assert nn.Conv2d(4, 8, 3, weight_init=name, profile="mindspore").weight.shape
    he = nn.Conv2d(64, 64, 3, weight_init="he_uniform", profile="mindspore").weight.numpy()
    assert np.abs(he).max() <= math.sqrt(6 / (64 * 9))
    torch_weight = minidl.tensor(np.ones((4, 8, 3, 3), np.float32))
    assert nn.Conv2dTranspose(4, 8, 3, weight_init=torch_weight, profile="mindspore").weight.shape


# MindSpore's defaults for its initializer names (mindspore.common.initializer):
# Uniform(scale=0.07), TruncatedNormal(sigma=0.01) cut at +-2, HeNormal(negative_slope=0,
# 'fan_in', 'leaky_relu') = N(0, 2 / fan_in), XavierUniform(gain=1) =
# U(+-sqrt(6 / (fan_in + fan_out))). Conv2d(16, 32, 3): fan_in = 16 * 9, fan_out = 32 * 9.
INITIALIZER_DISTRIBUTIONS = [
    ("uniform", "uniform", (-0.07, 0.14)),
    ("TruncatedNormal", "norm", (0.0, 0.01)),
    ("he_normal", "norm", (0.0, math.sqrt(2 / (16 * 9)))),
    ("XavierUniform", "uniform", (-math.sqrt(6 / (48 * 9)), 2 * math.sqrt(6 / (48 * 9)))),
]


@pytest.mark.parametrize("name, dist, args", INITIALIZER_DISTRIBUTIONS)
def test_mindspore_initializer_names_draw_with_mindspores_default_parameters(name, dist, args):
    minidl.manual_seed(0)
    layer = nn.Conv2d(16, 32, 3, weight_init=name, profile="mindspore")
    assert stats.kstest(layer.weight.numpy().ravel(), dist, args=args).pvalue > 0.01


def test_dtype_arguments_and_double_give_float64_parameters():
    assert nn.Conv2d(2, 4, 3, dtype=np.float64).weight.dtype == np.float64
    layer = nn.Conv2d(2, 4, 3, dtype="float64", has_bias=True, profile="mindspore-2.1")
    assert layer.weight.dtype == layer.bias.dtype == np.float64
    layer = nn.Conv2d(2, 4, 3, profile="megengine").double()
    x = minidl.tensor(np.ones((1, 2, 5, 5)))
    assert layer(x).dtype == np.float64


# ---- repr ---------------------------------------------------------------------------------------
def test_repr_shows_the_profile_and_non_default_arguments():
    assert repr(nn.Conv2d(3, 16, 3, profile="mindspore")) == (
        "Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), profile='mindspore', pad_mode='same')"
    )
    assert repr(nn.Conv2d(3, 16, 3, padding=1, bias=False, padding_mode="reflect")) == (
        "Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), profile='torch', padding=1, "
        "bias=False, padding_mode='reflect')"
    )
    assert "output_padding=1" in repr(nn.ConvTranspose2d(2, 4, 3, stride=2, output_padding=1))
    assert "weight_init=<array of shape (4, 2, 3, 3)>" in repr(
        nn.Conv2d(2, 4, 3, weight_init=np.zeros((4, 2, 3, 3)), profile="mindspore")
    )
    model = nn.Sequential(nn.Conv2d(2, 4, 3, profile="megengine"))
    assert "(0): Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1), profile='megengine')" in repr(
        model
    )


# ---- diff ---------------------------------------------------------------------------------------
def test_diff_torch_mindspore_names_renamed_and_differing_arguments():
    table = profiles.diff("torch", "mindspore")
    rows = {(r.category, r.item): r for r in table}
    assert rows["argument", "groups"].a == "groups=1" and rows["argument", "groups"].b == "group=1"
    assert rows["argument", "groups"].note.startswith("renamed")
    assert rows["argument", "bias"].note.startswith("renamed, default differs")
    assert rows["argument", "pad_mode"].note == "only mindspore"
    assert rows["argument", "padding_mode"].note == "only torch"
    assert rows["argument", "in_channels"].note == "-"
    assert "N(0, 0.01^2)" in rows["init", "weight"].b and "'normal'" in rows["init", "weight"].b
    assert rows["init", "bias"].b.startswith("bias_init='zeros'")
    assert rows["padding", "modes"].b == "zeros"
    text = str(table)
    assert text.startswith("torch (PyTorch 2.13) vs mindspore (MindSpore r2.0)")
    assert "| argument" in text and "renamed" in text
    assert "| argument | groups" in table.to_markdown()


def test_diff_shows_shapes_fans_key_order_and_missing_layers():
    table = profiles.diff("torch", "megengine", layer=["Conv2d", "ConvTranspose1d"])
    rows = {(r.layer, r.category, r.item): r for r in table}
    assert rows["Conv2d", "shape", "weight, groups > 1"].b == "(g, out/g, in/g, kh, kw)"
    assert rows["Conv2d", "shape", "bias"].b == "(1, out, 1, 1)"
    assert rows["Conv2d", "init", "fan_in"].b == "in * kh * kw (groups ignored)"
    assert rows["Conv2d", "checkpoint", "key order"].b == "bias, weight"
    assert rows["ConvTranspose1d", "layer", "class"].b.startswith("missing: MegEngine 1.13")
    ms = {(r.category, r.item): r for r in profiles.diff("torch", "mindspore", "Conv1dTranspose")}
    assert ms["shape", "weight"].b == "(in, out/g, 1, k)"
    assert ms["padding", "output_padding"].b == "none"
    all_rows = profiles.diff("mindspore", "mindspore-2.1", layer="all", only_differences=True)
    # the non-conv layers differ by Dense's initialisers and the dtype argument of >= 2.3
    assert {r.layer for r in all_rows} == set(profiles.LAYER_KINDS) | {
        "Linear", "BatchNorm1d", "BatchNorm2d", "Dropout"
    }
    assert all(r.note != "-" for r in all_rows)
    assert {r.item for r in all_rows} >= {"weight_init", "bias_init", "dtype", "weight", "bias"}


# ---- float64 gradients through the stored layouts and padding rules -----------------------------
GRAD_CASES = [
    (
        "megengine",
        "Conv2d",
        (4, 4, 3),
        dict(groups=2, padding=1, padding_mode="replicate"),
        (1, 4, 4, 5),
    ),
    ("mindspore", "Conv2d", (2, 4, 3), dict(stride=2, has_bias=True), (1, 2, 6, 5)),
    ("mindspore", "Conv1d", (2, 4, 3), dict(stride=2, pad_mode="pad", padding=1), (1, 2, 7)),
    (
        "mindspore",
        "Conv2dTranspose",
        (2, 4, 3),
        dict(stride=2, pad_mode="pad", padding=(1, 0, 0, 1), output_padding=1, has_bias=True),
        (1, 2, 3, 3),
    ),
    ("mindspore", "Conv2dTranspose", (2, 4, (1, 2)), dict(stride=3, has_bias=True), (1, 2, 2, 3)),
    (
        "mindspore",
        "Conv3dTranspose",
        (2, 2, 2),
        dict(stride=2, pad_mode="pad", padding=1, output_padding=1, has_bias=True),
        (1, 2, 2, 2, 2),
    ),
    ("torch", "Conv2d", (2, 4, 2), dict(padding="same", padding_mode="circular"), (1, 2, 4, 4)),
]


@pytest.mark.parametrize("profile, layer, args, kwargs, shape", GRAD_CASES)
def test_float64_gradients_through_stored_layouts_match_finite_differences(
    profile, layer, args, kwargs, shape
):
    conv = getattr(nn, layer)(*args, profile=profile, **kwargs).double()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    names = [name for name, _ in conv.named_parameters()]
    values = [p.numpy().copy() for _, p in conv.named_parameters()]

    def run(x, *params):
        for name, param in zip(names, params, strict=True):
            conv._parameters[name] = param  # route the checked tensors through the layer
        return conv(x)

    gradcheck(run, x, *values, rtol=1e-5, atol=1e-7)
