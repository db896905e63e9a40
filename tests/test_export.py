"""minidl.export: to_torch gives PyTorch modules computing minidl's outputs and gradients, and
to_onnx ONNX models that ONNX Runtime runs to minidl's eval outputs, under every profile.

The oracles are real PyTorch and ONNX Runtime: each test builds a model in minidl, exports it,
and compares what the exported model computes (on fresh inputs) with what minidl computes.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from extras import import_extra

import minidl
from minidl import nn
from minidl.export import OPSET, to_onnx, to_torch

PROFILES = ("torch", "megengine", "mindspore", "mindspore-2.1")
MINDSPORE = ("mindspore", "mindspore-2.1")


# ---- models, built with each profile's own arguments --------------------------------------------
def conv(profile: str, kind: str, cin: int, cout: int, k, stride=1, padding=0, groups=1,
         dilation=1, output_padding=0, mode=None) -> nn.Module:
    """A conv layer with a bias, in the words of ``profile``'s framework."""
    if profile in MINDSPORE:
        kw = {"group": groups, "has_bias": True}
        if padding in ("same", "valid"):
            kw["pad_mode"] = padding
        else:
            kw.update(pad_mode="pad", padding=padding)
    else:
        kw = {"groups": groups, "padding": padding, "bias": True}
        if mode:
            kw["padding_mode"] = mode
    if output_padding:
        kw["output_padding"] = output_padding
    return getattr(nn, kind)(cin, cout, k, stride=stride, dilation=dilation, profile=profile,
                             **kw)


def with_head(features: nn.Sequential, shape: tuple, head: list) -> nn.Sequential:
    """``features`` then ``head``, the first Linear sized by a probe through ``features``."""
    n = int(np.prod(features(minidl.zeros(*shape)).shape[1:]))
    return nn.Sequential(features, nn.Flatten(), nn.Linear(n, head[0]), *head[1:])


def lenet5(profile: str):
    c = conv
    model = nn.Sequential(
        c(profile, "Conv2d", 1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        c(profile, "Conv2d", 6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )
    return model, (4, 1, 32, 32)


def cnn(profile: str):
    """BatchNorm, strided convs, transposed convs with output_padding, groups, dilation; the
    padding conventions particular to each profile."""
    c, ms = conv, profile in MINDSPORE
    if ms:  # TF-style 'same' at stride 2 (odd extra after), asymmetric pads, MindSpore windows
        first = c(profile, "Conv2d", 3, 8, 3, stride=2, padding="same")
        second = c(profile, "Conv2d", 8, 8, 3, padding=(0, 1, 2, 1), groups=2, dilation=2)
        last = c(profile, "ConvTranspose2d", 4, 4, 2, stride=3, padding="valid")
    elif profile == "torch":  # 'same' with an even kernel pads asymmetrically
        first = c(profile, "Conv2d", 3, 8, 3, stride=2, padding=1)
        second = c(profile, "Conv2d", 8, 8, 4, padding="same", groups=2, mode="reflect")
        last = c(profile, "ConvTranspose2d", 4, 4, 3, stride=2, padding=2, output_padding=1,
                 dilation=2)
    else:
        first = c(profile, "Conv2d", 3, 8, 3, stride=2, padding=1)
        second = c(profile, "Conv2d", 8, 8, 3, padding=2, groups=2, dilation=2, mode="replicate")
        last = c(profile, "ConvTranspose2d", 4, 4, 3, stride=2, padding=2, output_padding=1,
                 dilation=2)
    features = nn.Sequential(
        first, nn.BatchNorm2d(8), nn.ReLU(),
        nn.Sequential(second, nn.BatchNorm2d(8), nn.LeakyReLU(0.1)),
        c(profile, "ConvTranspose2d", 8, 4, 3, stride=2, padding=1, output_padding=1, groups=2),
        nn.Tanh(), last, nn.GELU(), nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        nn.AvgPool2d(2, count_include_pad=False, padding=1), nn.Sigmoid(),
    )
    shape = (3, 3, 16, 16)
    return with_head(features, shape, [10, nn.Dropout(0.25), nn.Softmax(dim=1)]), shape


def conv1d(profile: str):
    c = conv
    padding = "same" if profile in MINDSPORE else 1
    if profile == "megengine":  # MegEngine has no ConvTranspose1d
        second = c(profile, "Conv1d", 4, 3, 3, padding=2, dilation=2, mode="reflect")
    else:
        second = c(profile, "ConvTranspose1d", 4, 3, 4, stride=2, padding=1)
    features = nn.Sequential(
        c(profile, "Conv1d", 2, 4, 3, stride=2, padding=padding), nn.BatchNorm1d(4), nn.ReLU(),
        second, nn.MaxPool1d(2),
        nn.AvgPool1d(3, stride=2, padding=1),
    )
    shape = (3, 2, 21)
    return with_head(features, shape, [5, nn.GELU(approximate="tanh"), nn.LogSoftmax(1)]), shape


def conv3d(profile: str):
    c = conv
    padding = "same" if profile in MINDSPORE else 1
    features = nn.Sequential(
        c(profile, "Conv3d", 2, 4, 3, stride=2, padding=padding, groups=2), nn.ReLU(),
        c(profile, "ConvTranspose3d", 4, 2, 3, stride=2, padding=1, output_padding=1),
        nn.MaxPool3d(2), nn.AvgPool3d(2, stride=1),
    )
    shape = (2, 2, 7, 6, 5)
    return with_head(features, shape, [3]), shape


MODELS = {"lenet5": lenet5, "cnn": cnn, "conv1d": conv1d, "conv3d": conv3d}
CASES = [(p, m) for p in PROFILES for m in MODELS]


def build(profile: str, name: str, seed: int = 0):
    minidl.manual_seed(seed)
    return MODELS[name](profile)


def batch(shape: tuple, n: int | None = None, seed: int = 1) -> np.ndarray:
    shape = shape if n is None else (n, *shape[1:])
    return np.random.default_rng(seed).standard_normal(shape)


def grads_in_torch_layout(model: nn.Module) -> dict[str, np.ndarray]:
    """The parameters' gradients under PyTorch's names and shapes (through the checkpoint
    export, so any profile's stored layout is converted as its weights are)."""
    params = list(model.parameters())
    saved = [p.data for p in params]
    try:
        for p in params:
            p.data = p.grad.data
        grads = model.state_dict(profile="torch")
    finally:
        for p, data in zip(params, saved):
            p.data = data
    return grads


def train_but_dropout(model: nn.Module) -> None:
    """Training mode (batch statistics, running statistics updated), dropout off: masks come
    from different generators in the two frameworks."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()


# ---- to_torch -----------------------------------------------------------------------------------
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize(("profile", "name"), CASES)
def test_to_torch_outputs_and_gradients(torch, profile, name, training):
    model, shape = build(profile, name)
    model.double()
    train_but_dropout(model) if training else model.eval()
    exported = to_torch(model)

    x = batch(shape, n=5)
    xm = minidl.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    y, yt = model(xm), exported(xt)
    np.testing.assert_allclose(yt.detach().numpy(), y.data, rtol=1e-10, atol=1e-12)

    upstream = np.random.default_rng(2).standard_normal(y.shape)
    (y * minidl.tensor(upstream)).sum().backward()
    (yt * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), xm.grad.data, rtol=1e-9, atol=1e-12)
    expected = grads_in_torch_layout(model)
    named = dict(exported.named_parameters())
    assert set(named) <= set(expected) and named
    for key, param in named.items():
        np.testing.assert_allclose(param.grad.numpy(), expected[key], rtol=1e-9, atol=1e-11,
                                   err_msg=key)
    # the running statistics moved alike (train) or not at all (eval)
    after = model.state_dict(profile="torch")
    for key, value in exported.state_dict().items():
        np.testing.assert_allclose(value.numpy(), after[key], rtol=1e-12, atol=1e-14,
                                   err_msg=key)


@pytest.mark.parametrize(("profile", "name"), CASES)
def test_to_torch_names_weights_and_modes(torch, profile, name):
    model, _ = build(profile, name)
    model[0].eval()  # per-module modes carry over
    exported = to_torch(model)
    state = model.state_dict(profile="torch")
    assert list(exported.state_dict()) == list(state)
    for key, value in exported.state_dict().items():
        assert value.dtype == torch.from_numpy(np.asarray(state[key])).dtype, key
        assert np.array_equal(value.numpy(), state[key]), key
    modes = {n: m.training for n, m in model.named_modules()}
    assert {n: m.training for n, m in exported.named_modules()} == modes
    assert isinstance(exported, torch.nn.Sequential)
    # the weights come back into minidl after training in PyTorch
    with torch.no_grad():
        for p in exported.parameters():
            p.mul_(2)
    model.load_state_dict({k: v.numpy() for k, v in exported.state_dict().items()},
                          profile="torch")
    for key, value in model.state_dict(profile="torch").items():
        np.testing.assert_array_equal(value, exported.state_dict()[key].numpy())


def test_to_torch_layer_classes(torch):
    """Conventions PyTorch's layers cannot express become subclasses of them that pad first."""
    from minidl.export import _torch

    tf_same = to_torch(nn.Conv2d(3, 4, 3, stride=2, profile="mindspore"))
    assert type(tf_same) is _torch.TFSameConv2d and isinstance(tf_same, torch.nn.Conv2d)
    asymmetric = to_torch(nn.Conv2d(3, 4, 3, pad_mode="pad", padding=(0, 1, 2, 0),
                                    profile="mindspore"))
    assert type(asymmetric) is _torch.PadConv2d and asymmetric.pad == (2, 0, 0, 1)
    window = to_torch(nn.Conv2dTranspose(3, 4, 3, stride=2, pad_mode="pad", padding=1,
                                         output_padding=1, profile="mindspore"))
    assert type(window) is _torch.WindowConvTranspose2d
    plain = to_torch(nn.Conv2d(3, 4, 3, stride=2, pad_mode="pad", padding=1,
                               profile="mindspore"))
    assert type(plain) is torch.nn.Conv2d and plain.padding == (1, 1)
    assert type(to_torch(nn.ConvTranspose2d(3, 4, 3, 2, 1, 1))) is torch.nn.ConvTranspose2d


@pytest.mark.parametrize("size", [9, 10, 11, 12])
def test_to_torch_tf_same_follows_the_input_size(torch, size):
    """MindSpore's 'same' at a stride pads by the input's size: one export, any size."""
    minidl.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 3, 4, stride=3, has_bias=True, profile="mindspore"),
                          nn.ReLU()).double()
    exported = to_torch(model)
    x = np.random.default_rng(size).standard_normal((2, 2, size, size + 3))
    y = model(minidl.tensor(x)).data
    assert y.shape[-2:] == (-(-size // 3), -(-(size + 3) // 3))
    np.testing.assert_allclose(exported(torch.tensor(x)).detach().numpy(), y, rtol=1e-12,
                               atol=1e-13)


# ---- what cannot be exported --------------------------------------------------------------------
class TwoPaths(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.conv(x) + self.conv(x)


class ReversedSequential(nn.Sequential):
    def forward(self, x):
        for module in reversed(list(self)):
            x = module(x)
        return x


class DoubledReLU(nn.ReLU):
    def forward(self, x):
        return super().forward(x) * 2


@pytest.mark.parametrize(("model", "named"), [
    (TwoPaths(), "TwoPaths"),
    (nn.Sequential(nn.ReLU(), nn.Sequential(TwoPaths())), "TwoPaths (at '1.0')"),
    (ReversedSequential(nn.ReLU()), "ReversedSequential"),
    (nn.Sequential(DoubledReLU()), "DoubledReLU (at '0')"),
])
def test_a_custom_forward_is_refused(torch, model, named, tmp_path):
    for export in (lambda: to_torch(model),
                   lambda: to_onnx(model, np.zeros((1, 1, 5, 5), np.float32),
                                   tmp_path / "m.onnx")):
        with pytest.raises(NotImplementedError, match="cannot export") as error:
            export()
        assert named in str(error.value) and "forward()" in str(error.value)
    assert not (tmp_path / "m.onnx").exists()


def test_not_a_module():
    with pytest.raises(TypeError, match="minidl.nn.Module"):
        to_torch(lambda x: x)


def test_import_minidl_imports_no_extra():
    code = ("import sys, minidl, minidl.export; "
            "print(sorted({'torch', 'onnx', 'onnxruntime', 'safetensors'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "minidl\[export\]"'):
        to_onnx(nn.ReLU(), np.zeros((1, 2), np.float32), "unused.onnx")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"to_torch needs the 'torch' package.*minidl\[export"):
        to_torch(nn.ReLU())


# ---- to_onnx ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ort():
    return import_extra("onnxruntime")


def run_onnx(ort, path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def check_onnx(path) -> None:
    onnx = import_extra("onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]


@pytest.mark.parametrize(("profile", "name"), CASES)
def test_to_onnx_matches_minidl_eval(ort, profile, name, tmp_path):
    model, shape = build(profile, name)
    train_but_dropout(model)
    modes = [m.training for m in model.modules()]
    path = tmp_path / "model.onnx"
    to_onnx(model, batch(shape).astype(np.float32), path)
    assert [m.training for m in model.modules()] == modes  # left as it was
    check_onnx(path)
    model.eval()
    x = batch(shape, n=7, seed=5).astype(np.float32)  # another batch size
    expected = model(minidl.tensor(x)).data
    got = run_onnx(ort, path, x)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-6)


def conv_cases():
    ms = "mindspore"
    return {
        "circular": nn.Conv2d(2, 4, 3, padding=(1, 2), padding_mode="circular"),
        "reflect-even-same": nn.Conv2d(2, 4, 4, padding="same", padding_mode="reflect"),
        "replicate-1d": nn.Conv1d(2, 4, 3, padding=2, padding_mode="replicate", dilation=2),
        "transpose-bias-only-rows": nn.Conv2dTranspose(2, 4, 2, stride=3, pad_mode="valid",
                                                       has_bias=True, profile=ms),
        "transpose-zeros-after-bias": nn.Conv2dTranspose(
            2, 4, 3, stride=2, pad_mode="pad", padding=(1, 0, 2, 1), output_padding=1,
            has_bias=True, profile=ms),
        "transpose-3d-same": nn.Conv3dTranspose(2, 2, 3, stride=2, has_bias=True, profile=ms),
        "transpose-groups-dilation": nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1,
                                                        output_padding=1, groups=2, dilation=2),
        "tf-same-dilated": nn.Conv2d(2, 4, 3, stride=2, dilation=2, has_bias=True, profile=ms),
    }


@pytest.mark.parametrize("case", list(conv_cases()))
def test_to_onnx_conv_padding_rules(ort, torch, case, tmp_path):
    """Every padding rule, through ONNX Runtime and through to_torch."""
    minidl.manual_seed(4)
    layer = conv_cases()[case]
    nd = layer._spec.nd
    x = batch((2, layer._spec.in_channels) + (9, 8, 7)[:nd], seed=6).astype(np.float32)
    path = tmp_path / "conv.onnx"
    to_onnx(layer, x, path)
    check_onnx(path)
    expected = layer(minidl.tensor(x)).data
    np.testing.assert_allclose(run_onnx(ort, path, x), expected, rtol=1e-4, atol=2e-6)
    exported = to_torch(layer)
    np.testing.assert_allclose(exported(torch.tensor(x)).detach().numpy(), expected,
                               rtol=1e-4, atol=2e-6)


@pytest.mark.parametrize("layer", [
    nn.AdaptiveAvgPool2d((3, 2)), nn.AvgPool2d(3, stride=2, padding=1, divisor_override=5),
    nn.AvgPool1d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
    nn.MaxPool2d(3, stride=2, padding=1, dilation=2), nn.Flatten(0, 2), nn.Flatten(2, 3),
    nn.Softmax(dim=-1), nn.Identity(), nn.BatchNorm1d(4, affine=False),
], ids=repr)
def test_to_onnx_other_layers(ort, torch, layer, tmp_path):
    minidl.manual_seed(5)
    shape = (2, 4, 9) if isinstance(layer, (nn.AvgPool1d, nn.BatchNorm1d)) else (2, 4, 9, 7)
    if isinstance(layer, nn.BatchNorm1d):  # running statistics away from their start
        layer(minidl.tensor(batch(shape, seed=8) * 3 + 1))
    layer.eval()
    x = batch(shape, seed=7).astype(np.float32)
    path = tmp_path / "layer.onnx"
    to_onnx(layer, x, path)
    expected = layer(minidl.tensor(x)).data
    np.testing.assert_allclose(run_onnx(ort, path, x), expected, rtol=1e-5, atol=1e-6)
    exported = to_torch(layer)
    np.testing.assert_allclose(exported(torch.tensor(x)).detach().numpy(), expected,
                               rtol=1e-5, atol=1e-6)


def test_to_onnx_refuses_what_onnx_cannot_express(tmp_path):
    x = np.zeros((1, 2, 6, 6), np.float32)
    with pytest.raises(NotImplementedError, match="return_indices"):
        to_onnx(nn.MaxPool2d(2, return_indices=True), x, tmp_path / "a.onnx")
    with pytest.raises(NotImplementedError, match="running statistics"):
        to_onnx(nn.BatchNorm2d(2, track_running_stats=False), x, tmp_path / "b.onnx")
    with pytest.raises(TypeError, match="float32 or float64"):
        to_onnx(nn.ReLU(), x.astype(np.int64), tmp_path / "c.onnx")


# ---- the layers beyond the small CNN ------------------------------------------------------------
def test_to_torch_channel_dropout_layer_norm_embedding_upsample(torch):
    minidl.manual_seed(9)
    exported = to_torch(nn.Sequential(nn.Dropout1d(0.1), nn.Dropout2d(0.2), nn.Dropout3d(0.3),
                                      nn.Dropout(0.4)))
    assert [type(m) for m in exported] == [torch.nn.Dropout1d, torch.nn.Dropout2d,
                                           torch.nn.Dropout3d, torch.nn.Dropout]
    assert [m.p for m in exported] == [0.1, 0.2, 0.3, 0.4]

    model = nn.Sequential(nn.Embedding(10, 6, padding_idx=2), nn.LayerNorm(6),
                          nn.Linear(6, 4)).double()
    for p in model[1].parameters():  # away from ones and zeros
        p.data = p.data + np.random.default_rng(3).standard_normal(p.shape)
    exported = to_torch(model)
    tokens = np.array([[1, 2, 9], [2, 0, 4]])
    y, yt = model(minidl.tensor(tokens)), exported(torch.tensor(tokens))
    np.testing.assert_allclose(yt.detach().numpy(), y.data, rtol=1e-12, atol=1e-13)
    y.sum().backward()
    yt.sum().backward()
    expected = grads_in_torch_layout(model)
    for key, param in exported.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), expected[key], rtol=1e-10, atol=1e-12)

    frozen = to_torch(nn.Embedding.from_pretrained(np.eye(3), freeze=True))
    assert not frozen.weight.requires_grad and exported[0].weight.requires_grad

    upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    x = batch((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(to_torch(upsample)(torch.tensor(x)).numpy(),
                               upsample(minidl.tensor(x)).data, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("affine", [True, False])
def test_to_onnx_layer_norm(ort, affine, tmp_path):
    minidl.manual_seed(10)
    model = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm((6,), elementwise_affine=affine))
    if affine:
        model[1].weight.data = np.linspace(0.5, 2, 6, dtype=np.float32)
        model[1].bias.data = np.linspace(-1, 1, 6, dtype=np.float32)
    x = batch((3, 4, 5)).astype(np.float32)
    to_onnx(model, x, tmp_path / "ln.onnx")
    np.testing.assert_allclose(run_onnx(ort, tmp_path / "ln.onnx", x),
                               model(minidl.tensor(x)).data, rtol=1e-5, atol=1e-6)


def test_to_onnx_refuses_layers_it_does_not_export(tmp_path):
    model = nn.Sequential(nn.ReLU(), nn.Upsample(scale_factor=2))
    with pytest.raises(NotImplementedError, match=r"cannot export Upsample \(at '1'\)"):
        to_onnx(model, np.zeros((1, 2, 3, 3), np.float32), tmp_path / "u.onnx")


def test_a_container_without_forward_is_refused():
    with pytest.raises(NotImplementedError, match="ModuleList.*no forward"):
        to_torch(nn.Sequential(nn.ModuleList([nn.ReLU()])))


# ---- layers that keep a canonical spec (issue 12's contract) ------------------------------------
def test_a_canonical_spec_wins_over_the_layers_own_attributes(torch, monkeypatch):
    """A layer keeping ``_spec`` in PyTorch's terms is exported from it, not from attributes
    in its framework's meaning (MindSpore's BatchNorm momentum=0.9 is PyTorch's 0.1)."""
    from types import SimpleNamespace

    from minidl.profiles.padding import ConvPadding

    def give_spec(cls, **fields) -> SimpleNamespace:
        spec = SimpleNamespace(kind=cls.__name__, **fields)
        monkeypatch.setattr(cls, "_spec", property(lambda self: spec), raising=False)
        return spec

    bn = nn.BatchNorm2d(3, momentum=0.9)
    spec = give_spec(nn.BatchNorm2d, num_features=3, eps=1e-3, momentum=0.1, affine=True,
                     track_running_stats=True, bias=True, use_batch_statistics=None)
    exported = to_torch(bn)
    assert (exported.momentum, exported.eps) == (0.1, 1e-3)
    spec.use_batch_statistics = True
    with pytest.raises(NotImplementedError, match=r"BatchNorm2d \(at '1'\): .*"
                                                  "use_batch_statistics=True"):
        to_torch(nn.Sequential(nn.ReLU(), bn))

    pool = nn.MaxPool2d(3)
    spec = give_spec(nn.MaxPool2d, kernel_size=(3, 3), stride=(1, 1),
                     padding=ConvPadding((1, 1), (1, 1)), dilation=(1, 1), ceil_mode=False,
                     return_indices=False, count_include_pad=True, divisor_override=None)
    exported = to_torch(pool)
    assert (exported.kernel_size, exported.stride, exported.padding) == ((3, 3), (1, 1), (1, 1))
    spec.padding, spec.ceil_mode = ConvPadding((0, 0), (1, 1)), True
    with pytest.raises(NotImplementedError, match="together with ceil_mode"):
        to_torch(pool)

    dense = nn.Linear(4, 2)
    give_spec(nn.Linear, in_features=4, out_features=2, bias=True, activation="relu")
    with pytest.raises(NotImplementedError, match="activation='relu'"):
        to_torch(dense)


def pool_oracle(x: np.ndarray, kind: str, k, s, before, after, in_bounds: bool) -> np.ndarray:
    """2-D pooling over explicitly padded input, by loops: padded positions never win a max;
    an average divides by the in-bounds count (``in_bounds``) or by the window size."""
    n, c, h, w = x.shape
    padded = np.full((n, c, h + before[0] + after[0], w + before[1] + after[1]),
                     -np.inf if kind == "max" else 0.0)
    padded[..., before[0]:before[0] + h, before[1]:before[1] + w] = x
    mask = np.zeros(padded.shape[-2:])
    mask[before[0]:before[0] + h, before[1]:before[1] + w] = 1
    rows = (padded.shape[-2] - k[0]) // s[0] + 1
    cols = (padded.shape[-1] - k[1]) // s[1] + 1
    out = np.empty((n, c, rows, cols))
    for i in range(rows):
        for j in range(cols):
            window = np.s_[..., i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
            if kind == "max":
                out[..., i, j] = padded[window].max(axis=(-2, -1))
            else:
                count = mask[window[1:]].sum() if in_bounds else k[0] * k[1]
                out[..., i, j] = padded[window].sum(axis=(-2, -1)) / count
    return out


def tf_same(size, k, s):
    """TF's 'same' by its definition: out = ceil(in / s), the odd extra padding after."""
    needed = [max(0, (-(-n // st) - 1) * st + kk - n) for n, kk, st in zip(size, k, s)]
    return tuple(p // 2 for p in needed), tuple(p - p // 2 for p in needed)


@pytest.mark.parametrize(("kind", "padding", "include"), [
    ("max", ((0, 1), (1, 0)), True),
    ("avg", ((1, 0), (2, 1)), True),
    ("avg", ((1, 0), (2, 1)), False),
    ("max", "same", True),
    ("avg", "same", True),  # 'same' averages over the in-bounds positions whatever the flag
])
def test_pools_with_padding_pytorch_lacks(torch, ort, monkeypatch, tmp_path, kind, padding,
                                          include):
    """Pools whose spec pads differently before and after, or TF-style 'same' (MindSpore),
    against a loop oracle, through to_torch and to_onnx."""
    from types import SimpleNamespace

    from minidl.profiles.padding import ConvPadding, SamePadding

    k, s = (3, 2), (2, 2)
    x = batch((2, 3, 9, 8), seed=11)
    before, after = tf_same(x.shape[-2:], k, s) if padding == "same" else padding
    expected = pool_oracle(x, kind, k, s, before, after, kind == "avg" and (
        padding == "same" or not include))
    rule = SamePadding() if padding == "same" else ConvPadding(*padding)
    cls = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
    spec = SimpleNamespace(kind=cls.__name__, kernel_size=k, stride=s, padding=rule,
                           dilation=(1, 1), ceil_mode=False, return_indices=False,
                           count_include_pad=include, divisor_override=None)
    monkeypatch.setattr(cls, "_spec", property(lambda self: spec), raising=False)
    # minidl's own forward stands in for the layer following its spec: the oracle
    monkeypatch.setattr(cls, "forward", lambda self, t: minidl.tensor(
        pool_oracle(t.data, kind, k, s, before, after, kind == "avg" and (
            padding == "same" or not include)).astype(t.dtype)))
    layer = cls(2)
    exported = to_torch(layer)
    np.testing.assert_allclose(exported(torch.tensor(x)).numpy(), expected, rtol=1e-12)
    path = tmp_path / "pool.onnx"
    to_onnx(layer, x.astype(np.float32), path)
    check_onnx(path)
    np.testing.assert_allclose(run_onnx(ort, path, x.astype(np.float32)), expected, rtol=1e-5,
                               atol=1e-6)


def test_exported_modules_pickle(torch):
    """The explicit-padding modules travel to other processes (DDP, torch.save of the model)."""
    import pickle

    from minidl.export import _describe, _torch
    from minidl.profiles.padding import SamePadding

    pool = _torch.PadPool(_describe.Pool("max", 2, (3, 3), (2, 2), SamePadding(), (1, 1),
                                         False))
    model = torch.nn.Sequential(
        to_torch(nn.Conv2d(2, 3, 3, stride=2, profile="mindspore")),
        to_torch(nn.Conv2dTranspose(3, 2, 3, stride=2, pad_mode="pad", padding=1,
                                    output_padding=1, profile="mindspore")),
        pool,
    )
    x = torch.randn(2, 2, 9, 9)
    copy = pickle.loads(pickle.dumps(model))
    assert torch.equal(copy(x), model(x))


# ---- every layer built under its profile (issue 12's profiled layers) ---------------------------
def profiled_cnn(profile: str) -> tuple[nn.Sequential, tuple]:
    """A conv-BN-pool CNN with a dense head, every layer built with its framework's own
    arguments and conventions (BatchNorm momentum=0.8 keeps 0.8 of the old statistic under
    MegEngine and MindSpore, MindSpore's 'same' pools, MegEngine's padding-excluding average)."""
    minidl.manual_seed(12)
    shape = (4, 3, 11, 10)
    with minidl.use_profile(profile):
        if profile == "torch":
            features = [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8, momentum=0.2),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8),
                        nn.AvgPool2d(2, padding=1, count_include_pad=False)]
            tail = [nn.Flatten(), nn.Dropout(0.3)]
        elif profile == "megengine":  # no Flatten module in MegEngine: PyTorch's
            features = [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8, momentum=0.8),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8),
                        nn.AvgPool2d(2, padding=1)]
            tail = [nn.Flatten(profile="torch"), nn.Dropout(drop_prob=0.3)]
        else:
            features = [nn.Conv2d(3, 8, 3, pad_mode="same", has_bias=True),
                        nn.BatchNorm2d(8, momentum=0.8), nn.ReLU(),
                        nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same"),
                        nn.Conv2d(8, 8, 3, pad_mode="valid"), nn.BatchNorm2d(8),
                        nn.AvgPool2d(kernel_size=2, stride=2, pad_mode="same")]
            tail = [nn.Flatten(), nn.Dropout(p=0.3)]
        body = nn.Sequential(*features)
        n = int(np.prod(body(minidl.zeros(*shape)).shape[1:]))
        dense = nn.Linear(n, 10) if profile in ("torch", "megengine") else nn.Dense(n, 10)
        model = nn.Sequential(body, *tail, dense, nn.BatchNorm1d(10))
    return model, shape


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("profile", PROFILES)
def test_profiled_layers_export_to_torch(torch, profile, training):
    model, shape = profiled_cnn(profile)
    model.double()
    for _ in range(2):  # running statistics away from their start, in the profile's rule
        train_but_dropout(model)
        model(minidl.tensor(batch(shape, seed=21)))
    train_but_dropout(model) if training else model.eval()
    exported = to_torch(model)
    assert list(exported.state_dict()) == list(model.state_dict(profile="torch"))

    x = batch(shape, n=5, seed=22)
    xm, xt = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = model(xm), exported(xt)
    np.testing.assert_allclose(yt.detach().numpy(), y.data, rtol=1e-10, atol=1e-12)
    upstream = np.random.default_rng(23).standard_normal(y.shape)
    (y * minidl.tensor(upstream)).sum().backward()
    (yt * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), xm.grad.data, rtol=1e-9, atol=1e-12)
    expected = grads_in_torch_layout(model)
    for key, param in exported.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), expected[key], rtol=1e-9, atol=1e-11,
                                   err_msg=key)
    after = model.state_dict(profile="torch")  # the running statistics moved alike
    for key, value in exported.state_dict().items():
        np.testing.assert_allclose(value.numpy(), after[key], rtol=1e-12, atol=1e-14,
                                   err_msg=key)


@pytest.mark.parametrize("profile", PROFILES)
def test_profiled_layers_export_to_onnx(ort, profile, tmp_path):
    model, shape = profiled_cnn(profile)
    model.train()
    model(minidl.tensor(batch(shape, seed=24).astype(np.float32)))
    model.eval()
    path = tmp_path / "profiled.onnx"
    to_onnx(model, batch(shape).astype(np.float32), path)
    check_onnx(path)
    x = batch(shape, n=6, seed=25).astype(np.float32)
    np.testing.assert_allclose(run_onnx(ort, path, x), model(minidl.tensor(x)).data,
                               rtol=1e-4, atol=2e-6)


def test_mindspore_rules_pytorch_lacks_are_refused_by_name(tmp_path):
    x = np.zeros((1, 3, 6, 6), np.float32)
    with minidl.use_profile("mindspore"):
        cases = [
            (nn.Sequential(nn.Flatten(), nn.Dense(108, 2, activation="relu")),
             r"Linear \(at '1'\).*activation='relu'"),
            (nn.BatchNorm2d(3, use_batch_statistics=True), "use_batch_statistics=True"),
        ]
    for model, message in cases:
        with pytest.raises(NotImplementedError, match=message):
            to_torch(model)
        with pytest.raises(NotImplementedError, match=message):
            to_onnx(model, x, tmp_path / "m.onnx")
