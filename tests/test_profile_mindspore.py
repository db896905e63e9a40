"""The 'mindspore' profiles against real MindSpore 2.10 (recorded in
tests/mindspore_ref/mindspore_ref.npz; see the README there): outputs and gradients of 78
cases, default-initialisation samples (Kolmogorov-Smirnov) and 16 error cases."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import minidl
from minidl import nn

REF = Path(__file__).parent / "mindspore_ref" / "mindspore_ref.npz"
DATA = np.load(REF)  # committed with the repo: a missing file is an error, not a skip
TOL = dict(rtol=1e-4, atol=1e-5)


def _group(prefix: str, count_key: str) -> list[str]:
    return [f"{prefix}{i}/" for i in range(int(DATA[count_key]))]


def _kwargs(key: str) -> dict:
    return {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in json.loads(str(DATA[key + "kwargs"])).items()
    }


def _build(key: str, profile: str):
    """The recorded MindSpore class and kwargs, built by minidl (Conv2dTranspose & co. are
    minidl aliases)."""
    return getattr(nn, str(DATA[key + "layer"]))(**_kwargs(key), profile=profile)


CASES = _group("case", "meta/n_cases")


def test_reference_file_is_complete():
    assert str(DATA["meta/mindspore_version"]) == "2.10.0"
    assert len(CASES) == 78
    assert all(
        str(DATA[c + "status"]) == "ok" and str(DATA[c + "grad_status"]) == "ok" for c in CASES
    )


@pytest.mark.parametrize("profile", ["mindspore", "mindspore-2.1"])
@pytest.mark.parametrize("case", CASES)
def test_outputs_and_gradients_match_mindspore(case, profile):
    layer = _build(case, profile)
    assert layer.weight.shape == DATA[case + "weight"].shape  # MindSpore's stored shape
    has_bias = bool(DATA[case + "has_bias"])
    assert (layer.bias is not None) == has_bias
    layer.weight.data = DATA[case + "weight"].copy()
    if has_bias:
        layer.bias.data = DATA[case + "bias"].copy()
    x = minidl.tensor(DATA[case + "x"], requires_grad=True)
    y = layer(x)
    assert y.shape == DATA[case + "y"].shape
    np.testing.assert_allclose(y.numpy(), DATA[case + "y"], **TOL)
    (y * minidl.tensor(DATA[case + "r"])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), DATA[case + "grad_x"], **TOL)
    np.testing.assert_allclose(layer.weight.grad.numpy(), DATA[case + "grad_weight"], **TOL)
    if has_bias:
        np.testing.assert_allclose(layer.bias.grad.numpy(), DATA[case + "grad_bias"], **TOL)


@pytest.mark.parametrize("sample", _group("init", "meta/n_init"))
def test_default_initialisation_matches_mindspore(sample):
    """'mindspore-2.1' draws what MindSpore 2.10 draws by default (HeUniform(sqrt(5)) and
    U(+-1/sqrt(fan_in)), fan_in from the stored, 4-D for Conv1d, weight); weight_init='normal'
    is N(0, 0.01^2) under both profiles."""
    expected = json.loads(str(DATA[sample + "expected"]))
    theirs = DATA[sample + "values"].astype(np.float64)
    profiles = ["mindspore-2.1"]
    if _kwargs(sample).get("weight_init") == "normal":
        profiles.append("mindspore")
    for seed, profile in enumerate(profiles):
        minidl.manual_seed(seed)
        layers = [_build(sample, profile) for _ in range(int(DATA[sample + "n_instances"]))]
        param = str(DATA[sample + "param"])
        assert getattr(layers[0], param).shape == tuple(DATA[sample + "shape"])
        mine = np.concatenate([getattr(m, param).numpy().ravel() for m in layers])
        args = tuple(expected["scipy_args"])
        assert stats.kstest(mine, expected["dist"], args=args).pvalue > 0.01
        assert stats.ks_2samp(mine, theirs).pvalue > 0.01


def test_r2_0_defaults_are_normal_weight_and_zero_bias():
    minidl.manual_seed(0)
    layers = [nn.Conv2d(8, 16, 3, has_bias=True, profile="mindspore") for _ in range(4)]
    weights = np.concatenate([m.weight.numpy().ravel() for m in layers])
    assert stats.kstest(weights, "norm", args=(0.0, 0.01)).pvalue > 0.01
    assert all(not m.bias.numpy().any() for m in layers)


def test_conv1d_fan_in_uses_the_stored_4d_weight():
    minidl.manual_seed(0)
    w = np.concatenate(
        [nn.Conv1d(8, 16, 3, profile="mindspore-2.1").weight.numpy().ravel() for _ in range(8)]
    )
    bound = 1 / math.sqrt(8 * 3)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.97 * bound


# error index -> (exception minidl raises, words its message must contain). MindSpore raises
# some of these only when called (output_padding checks: minidl raises at construction) and
# a RuntimeError for the channel mismatch, where minidl raises ValueError like every profile.
ERRORS = {
    0: (ValueError, ["'pad' must be zero", "pad_mode"]),
    1: (ValueError, ["'pad' must be zero", "pad_mode"]),
    2: (ValueError, ["divisible", "group"]),
    3: (ValueError, ["divisible", "group"]),
    4: (ValueError, ["output_padding", "pad_mode must be 'pad'"]),
    5: (ValueError, ["output_padding", "pad_mode must be 'pad'"]),
    6: (ValueError, ["output_padding must be in range of [0, max(stride, dilation))"]),
    7: (ValueError, ["output_padding must be in range of [0, max(stride, dilation))"]),
    8: (ValueError, ["output_padding", "pad_mode must be 'pad'"]),
    9: (ValueError, ["5 channels", "expects 4"]),
    10: (ValueError, ["kernel size"]),
    11: (ValueError, ["'pad_mode' must be", "'zeros'"]),
    12: (ValueError, ["'padding' must be >= 0"]),
    13: (ValueError, ["tuple of 4 ints"]),
    14: (TypeError, ["type of 'padding' should be 'int'"]),
    15: (ValueError, ["'pad_mode' must be", "'PAD'"]),
}
ERROR_CASES = _group("error", "meta/n_errors")


def test_every_recorded_error_is_covered():
    assert len(ERROR_CASES) == len(ERRORS)
    assert all(bool(DATA[e + "raised"]) for e in ERROR_CASES)


@pytest.mark.parametrize("index", sorted(ERRORS))
def test_errors_match_mindspore(index):
    case = f"error{index}/"
    exc_type, words = ERRORS[index]
    recorded = str(DATA[case + "exc_type"])
    assert recorded == exc_type.__name__ or (recorded, exc_type) == ("RuntimeError", ValueError)
    with pytest.raises(exc_type) as raised:
        layer = _build(case, "mindspore")
        layer(minidl.tensor(np.zeros(tuple(DATA[case + "input_shape"]), np.float32)))
    for word in words:
        assert word in str(raised.value)
