"""The 'torch' profile against live PyTorch: outputs and gradients with copied weights for
every padding form and mode, initialisation distributions (Kolmogorov-Smirnov), errors."""

import math

import numpy as np
import pytest
from scipy import stats

import minidl
from minidl import nn

TOL = dict(rtol=1e-4, atol=1e-5)

# (layer, kwargs, input shape): every padding form and mode, groups, strides, dilations
CONV_CASES = [
    ("Conv1d", dict(in_channels=4, out_channels=6, kernel_size=3), (2, 4, 9)),
    ("Conv1d", dict(in_channels=4, out_channels=6, kernel_size=4, padding="same"), (2, 4, 9)),
    (
        "Conv1d",
        dict(
            in_channels=4,
            out_channels=4,
            kernel_size=3,
            padding=2,
            groups=4,
            padding_mode="reflect",
        ),
        (2, 4, 7),
    ),
    (
        "Conv1d",
        dict(
            in_channels=4,
            out_channels=6,
            kernel_size=3,
            stride=2,
            padding=1,
            padding_mode="circular",
            bias=False,
        ),
        (2, 4, 8),
    ),
    ("Conv2d", dict(in_channels=4, out_channels=6, kernel_size=3, padding=1), (2, 4, 7, 6)),
    (
        "Conv2d",
        dict(
            in_channels=4,
            out_channels=6,
            kernel_size=(2, 3),
            padding=(1, 2),
            stride=(2, 1),
            dilation=(1, 2),
            groups=2,
        ),
        (2, 4, 7, 9),
    ),
    (
        "Conv2d",
        dict(in_channels=4, out_channels=6, kernel_size=4, padding="same", dilation=(1, 2)),
        (2, 4, 7, 8),
    ),
    (
        "Conv2d",
        dict(in_channels=4, out_channels=6, kernel_size=2, padding="same", padding_mode="reflect"),
        (1, 4, 5, 6),
    ),
    (
        "Conv2d",
        dict(in_channels=4, out_channels=6, kernel_size=3, padding="valid", stride=2),
        (2, 4, 7, 8),
    ),
    (
        "Conv2d",
        dict(in_channels=4, out_channels=6, kernel_size=3, padding=(1, 2), padding_mode="reflect"),
        (2, 4, 5, 6),
    ),
    (
        "Conv2d",
        dict(
            in_channels=4,
            out_channels=6,
            kernel_size=3,
            padding=2,
            padding_mode="replicate",
            groups=2,
        ),
        (2, 4, 5, 6),
    ),
    (
        "Conv2d",
        dict(
            in_channels=4,
            out_channels=6,
            kernel_size=3,
            padding=(2, 1),
            stride=2,
            padding_mode="circular",
        ),
        (2, 4, 5, 6),
    ),
    (
        "Conv2d",
        dict(
            in_channels=4,
            out_channels=8,
            kernel_size=3,
            padding="same",
            groups=4,
            padding_mode="replicate",
        ),
        (2, 4, 6, 6),
    ),
    ("Conv3d", dict(in_channels=2, out_channels=4, kernel_size=3, padding=1), (1, 2, 4, 5, 6)),
    (
        "Conv3d",
        dict(
            in_channels=2,
            out_channels=4,
            kernel_size=(2, 3, 2),
            padding="same",
            padding_mode="circular",
        ),
        (1, 2, 4, 5, 6),
    ),
    (
        "Conv3d",
        dict(
            in_channels=4,
            out_channels=4,
            kernel_size=3,
            padding=(1, 0, 2),
            stride=2,
            groups=2,
            padding_mode="reflect",
        ),
        (1, 4, 5, 5, 6),
    ),
    (
        "Conv3d",
        dict(
            in_channels=2,
            out_channels=4,
            kernel_size=2,
            dilation=2,
            padding="valid",
            padding_mode="replicate",
        ),
        (1, 2, 5, 5, 6),
    ),
    (
        "ConvTranspose1d",
        dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1),
        (2, 4, 5),
    ),
    (
        "ConvTranspose1d",
        dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, dilation=2, bias=False),
        (2, 4, 5),
    ),
    ("ConvTranspose2d", dict(in_channels=4, out_channels=6, kernel_size=3, stride=2), (2, 4, 4, 5)),
    (
        "ConvTranspose2d",
        dict(
            in_channels=4,
            out_channels=6,
            kernel_size=(3, 4),
            stride=(2, 3),
            padding=(1, 2),
            output_padding=(1, 2),
            groups=2,
        ),
        (2, 4, 4, 5),
    ),
    (
        "ConvTranspose2d",
        dict(
            in_channels=4,
            out_channels=4,
            kernel_size=3,
            stride=1,
            dilation=2,
            output_padding=1,
            padding=2,
        ),
        (2, 4, 4, 5),
    ),
    (
        "ConvTranspose3d",
        dict(
            in_channels=2,
            out_channels=4,
            kernel_size=3,
            stride=2,
            padding=1,
            output_padding=(1, 0, 1),
        ),
        (1, 2, 3, 4, 3),
    ),
]


def _ids(cases):
    return [f"{layer}-{i}" for i, (layer, _, _) in enumerate(cases)]


@pytest.mark.parametrize("layer, kwargs, shape", CONV_CASES, ids=_ids(CONV_CASES))
def test_outputs_and_gradients_match_torch(torch, layer, kwargs, shape):
    reference = getattr(torch.nn, layer)(**kwargs)
    ours = getattr(nn, layer)(**kwargs, profile="torch")
    ours.load_state_dict(reference.state_dict())
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = reference(tx)
    r = np.random.default_rng(1).standard_normal(tuple(ty.shape)).astype(np.float32)
    (ty * torch.tensor(r)).sum().backward()

    mx = minidl.tensor(x, requires_grad=True)
    my = ours(mx)
    (my * minidl.tensor(r)).sum().backward()
    np.testing.assert_allclose(my.numpy(), ty.detach().numpy(), **TOL)
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), **TOL)
    np.testing.assert_allclose(ours.weight.grad.numpy(), reference.weight.grad.numpy(), **TOL)
    if reference.bias is not None:
        np.testing.assert_allclose(ours.bias.grad.numpy(), reference.bias.grad.numpy(), **TOL)


@pytest.mark.parametrize(
    "layer, kwargs",
    [
        ("Conv2d", dict(in_channels=8, out_channels=16, kernel_size=3, groups=2)),
        ("Conv1d", dict(in_channels=6, out_channels=4, kernel_size=5)),
        ("ConvTranspose2d", dict(in_channels=10, out_channels=20, kernel_size=3, groups=2)),
        ("ConvTranspose3d", dict(in_channels=4, out_channels=6, kernel_size=2)),
    ],
)
def test_initialisation_matches_torch(torch, layer, kwargs):
    """Same distribution as torch (two-sample KS) and the analytic U(+-1/sqrt(fan_in)),
    fan_in = weight.shape[1] * prod(k): out/g * prod(k) for a transposed conv."""
    torch.manual_seed(0)
    minidl.manual_seed(0)
    ref = [getattr(torch.nn, layer)(**kwargs) for _ in range(20)]
    ours = [getattr(nn, layer)(**kwargs) for _ in range(20)]
    shape = tuple(ref[0].weight.shape)
    assert ours[0].weight.shape == shape
    bound = 1 / math.sqrt(shape[1] * math.prod(shape[2:]))
    for name in ("weight", "bias"):
        theirs = np.concatenate([getattr(m, name).detach().numpy().ravel() for m in ref])
        mine = np.concatenate([getattr(m, name).numpy().ravel() for m in ours])
        assert np.abs(mine).max() <= bound
        assert stats.kstest(mine, "uniform", args=(-bound, 2 * bound)).pvalue > 0.01
        assert stats.ks_2samp(mine, theirs).pvalue > 0.01


def test_conv_transpose_fan_in_is_out_channels_per_group_times_kernel(torch):
    """ConvTranspose2d(10, 20, 3, groups=2) draws from U(+-1/sqrt(90)): fan_in is
    weight.shape[1] * prod(k) = out/g * 9 = 90 (docs/conventions.md, Initialisation)."""
    minidl.manual_seed(1)
    weights = np.concatenate(
        [nn.ConvTranspose2d(10, 20, 3, groups=2).weight.numpy().ravel() for _ in range(10)]
    )
    assert weights.max() == pytest.approx(1 / math.sqrt(90), rel=0.02)
    torch_max = max(
        float(torch.nn.ConvTranspose2d(10, 20, 3, groups=2).weight.detach().max())
        for _ in range(10)
    )
    assert torch_max == pytest.approx(1 / math.sqrt(90), rel=0.02)


@pytest.mark.parametrize(
    "layer, kwargs",
    [
        ("Conv2d", dict(padding="same", stride=2)),
        ("Conv2d", dict(padding="foo")),
        ("Conv2d", dict(padding_mode="bar")),
        ("Conv2d", dict(groups=3)),
        ("Conv2d", dict(groups=0)),
        ("ConvTranspose2d", dict(padding_mode="reflect")),
    ],
)
def test_constructor_raises_value_error_where_torch_does(torch, layer, kwargs):
    """Where torch raises ValueError at construction, minidl raises it too."""
    args = dict(in_channels=4, out_channels=6, kernel_size=3, **kwargs)
    with pytest.raises(ValueError) as theirs:
        getattr(torch.nn, layer)(**args)
    with pytest.raises(ValueError) as ours:
        getattr(nn, layer)(**args)
    words = str(theirs.value).split(",")[0].replace("'", "").split()[:4]
    assert all(word in str(ours.value).replace("'", "") for word in words)
