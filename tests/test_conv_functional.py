"""F.conv*d, F.conv_transpose*d and F.pad: PyTorch parity, finite differences, bad input."""

import numpy as np
import pytest
from gradcheck import gradcheck

import minidl
import minidl.nn.functional as F

TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-9, atol=1e-11)}


def _random_conv_case(rng, transposed):
    """A random valid configuration: 1-3 spatial dims, stride/dilation 1-3, groups."""
    nd = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 1, 2, 3]))
    depthwise = not transposed and rng.random() < 0.2
    in_per_group = 1 if depthwise else int(rng.integers(1, 4))
    out_per_group = int(rng.integers(1, 3)) if depthwise else int(rng.integers(1, 4))
    if depthwise:
        groups = int(rng.integers(2, 6))
    cin, cout = in_per_group * groups, out_per_group * groups
    kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
    stride = tuple(int(s) for s in rng.integers(1, 4, nd))
    dilation = tuple(int(d) for d in rng.integers(1, 4, nd))
    max_size = {1: 12, 2: 9, 3: 6}[nd]
    size = tuple(int(n) for n in rng.integers(1, max_size + 1, nd))
    batch = int(rng.choice([1, 2, 3]))
    dtype = str(rng.choice(["float32", "float64"]))
    case = dict(nd=nd, groups=groups, stride=stride, dilation=dilation, dtype=dtype,
                batch=batch, kernel=kernel, cin=cin, cout=cout, size=size)
    if transposed:
        case["padding"] = tuple(int(rng.integers(0, k * d)) for k, d in zip(kernel, dilation))
        case["output_padding"] = tuple(
            int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation)
        )
    else:
        form = rng.choice(["int", "tuple", "same", "valid"])
        if form == "same":
            case["stride"] = (1,) * nd
        case["padding"] = {"int": int(rng.integers(0, 3)), "same": "same", "valid": "valid",
                           "tuple": tuple(int(p) for p in rng.integers(0, 3, nd))}[form]
    return case


def _arrays(case, rng):
    nd, g = case["nd"], case["groups"]
    x = rng.standard_normal((case["batch"], case["cin"]) + case["size"]).astype(case["dtype"])
    if "output_padding" in case:
        w_shape = (case["cin"], case["cout"] // g) + case["kernel"]
    else:
        w_shape = (case["cout"], case["cin"] // g) + case["kernel"]
    w = rng.standard_normal(w_shape).astype(case["dtype"])
    b = rng.standard_normal(case["cout"]).astype(case["dtype"])
    assert len(case["kernel"]) == nd
    return x, w, b


def _run_torch(case, torch, x, w, b, r=None):
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    nd = case["nd"]
    if "output_padding" in case:
        fn = getattr(torch.nn.functional, f"conv_transpose{nd}d")
        y = fn(tx, tw, tb, case["stride"], case["padding"], case["output_padding"],
               case["groups"], case["dilation"])
    else:
        fn = getattr(torch.nn.functional, f"conv{nd}d")
        y = fn(tx, tw, tb, case["stride"], case["padding"], case["dilation"], case["groups"])
    if r is None:
        return y
    (y * torch.tensor(r)).sum().backward()
    return y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


def _run_minidl(case, x, w, b, r):
    mx, mw, mb = (minidl.tensor(a, requires_grad=True) for a in (x, w, b))
    nd = case["nd"]
    if "output_padding" in case:
        y = getattr(F, f"conv_transpose{nd}d")(
            mx, mw, mb, case["stride"], case["padding"], case["output_padding"],
            case["groups"], case["dilation"])
    else:
        y = getattr(F, f"conv{nd}d")(
            mx, mw, mb, case["stride"], case["padding"], case["dilation"], case["groups"])
    if r is None:
        return y
    (y * minidl.tensor(r)).sum().backward()
    return y.numpy(), mx.grad.numpy(), mw.grad.numpy(), mb.grad.numpy()


def _parity_cases(transposed, count, seed):
    rng = np.random.default_rng(seed)
    return [_random_conv_case(rng, transposed) for _ in range(count)]


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_random_configurations_match_torch(torch, transposed):
    """Hundreds of random configurations: output and every gradient equal PyTorch's, and
    what PyTorch rejects (kernel larger than the padded input, ...) minidl rejects too."""
    rng = np.random.default_rng(1 + transposed)
    checked = rejected = 0
    for case in _parity_cases(transposed, 300, seed=10 + transposed):
        x, w, b = _arrays(case, rng)
        try:
            y_t = _run_torch(case, torch, x, w, b)
            # torch's 2-D transposed conv returns an empty tensor for an output size of 0
            # where its 3-D one raises "Output size is too small"; minidl always raises.
            if y_t.numel() == 0 and x.shape[0] > 0:
                raise RuntimeError("output size is too small")
        except RuntimeError:
            with pytest.raises(ValueError):
                _run_minidl(case, x, w, b, None)
            rejected += 1
            continue
        r = rng.standard_normal(tuple(y_t.shape)).astype(case["dtype"])
        expected = _run_torch(case, torch, x, w, b, r)
        got = _run_minidl(case, x, w, b, r)
        for name, e, g in zip(("y", "dx", "dw", "db"), expected, got):
            assert g.shape == e.shape, (name, case)
            np.testing.assert_allclose(g, e, **TOL[case["dtype"]], err_msg=f"{name} {case}")
        checked += 1
    assert checked >= 200, f"only {checked} configurations were valid ({rejected} rejected)"


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_unbatched_empty_batch_and_noncontiguous_inputs_match_torch(torch, nd):
    rng = np.random.default_rng(nd)
    x = rng.standard_normal((3,) + (5,) * nd).astype(np.float32)
    w = rng.standard_normal((4, 3) + (2,) * nd).astype(np.float32)
    conv = getattr(F, f"conv{nd}d")
    expected = getattr(torch.nn.functional, f"conv{nd}d")(torch.tensor(x), torch.tensor(w))
    np.testing.assert_allclose(conv(minidl.tensor(x), minidl.tensor(w)).numpy(),
                               expected.numpy(), rtol=1e-5, atol=1e-5)
    empty = conv(minidl.tensor(np.zeros((0, 3) + (5,) * nd, np.float32)), minidl.tensor(w))
    assert empty.shape == (0, 4) + (4,) * nd
    # a transposed view is not contiguous
    xt = np.swapaxes(rng.standard_normal((2,) + (5,) * nd + (3,)), 1, -1)
    wt = minidl.tensor(w.astype(np.float64))
    got = conv(minidl.tensor(xt), wt).numpy()
    want = getattr(torch.nn.functional, f"conv{nd}d")(torch.tensor(xt), torch.tensor(w.astype(
        np.float64)))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-10)


def test_nan_in_the_input_propagates_to_every_output_it_touches():
    x = np.ones((1, 1, 5, 5), np.float32)
    x[0, 0, 2, 2] = np.nan
    y = F.conv2d(minidl.tensor(x), minidl.tensor(np.ones((1, 1, 3, 3), np.float32))).numpy()
    assert np.isnan(y).all()


# ---- finite differences in float64 for every conv variant -----------------------------
GRAD_CASES = [
    ("conv1d", dict(stride=2, padding=1, dilation=2), (2, 4, 9), (4, 2, 3), 2),
    ("conv1d", dict(padding="same", dilation=2), (1, 2, 6), (3, 2, 2), 1),
    ("conv2d", dict(stride=(1, 2), padding=(1, 0)), (2, 2, 5, 6), (3, 2, 3, 2), 1),
    ("conv2d", dict(padding="same"), (1, 3, 4, 5), (3, 1, 2, 3), 3),  # depthwise
    ("conv2d", dict(stride=2, dilation=(2, 1), padding=((1, 0), (0, 2))), (1, 2, 6, 5),
     (2, 2, 2, 2), 1),
    ("conv3d", dict(stride=(1, 2, 1), padding=1), (1, 2, 3, 4, 3), (2, 1, 2, 2, 2), 2),
    ("conv_transpose1d", dict(stride=3, padding=1, output_padding=2), (2, 2, 4), (2, 3, 3), 1),
    ("conv_transpose2d", dict(stride=2, padding=(1, 0), output_padding=(1, 0), dilation=2),
     (1, 4, 3, 3), (4, 1, 2, 3), 2),
    ("conv_transpose2d", dict(stride=1, dilation=3, output_padding=1), (1, 1, 3, 3),
     (1, 2, 2, 2), 1),
    ("conv_transpose3d", dict(stride=2, padding=1, output_padding=1), (1, 2, 2, 3, 2),
     (2, 1, 3, 2, 2), 2),
]


@pytest.mark.parametrize("name,kwargs,x_shape,w_shape,groups", GRAD_CASES)
def test_conv_gradients_by_finite_differences(name, kwargs, x_shape, w_shape, groups):
    rng = np.random.default_rng(3)
    fn = getattr(F, name)
    out_channels = w_shape[1] * groups if "transpose" in name else w_shape[0]
    gradcheck(
        lambda x, w, b: fn(x, w, b, groups=groups, **kwargs),
        rng.standard_normal(x_shape), rng.standard_normal(w_shape),
        rng.standard_normal(out_channels),
    )


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_gradients_and_torch_parity(torch, mode):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 5, 4))
    pads = (2, 1, 0, 3) if mode != "constant" else (2, -1, 1, 3)
    gradcheck(lambda t: F.pad(t, pads, mode=mode, value=0.5), x)
    expected = torch.nn.functional.pad(torch.tensor(x), pads, mode=mode,
                                       **({"value": 0.5} if mode == "constant" else {}))
    np.testing.assert_array_equal(F.pad(minidl.tensor(x), pads, mode, 0.5).numpy(),
                                  expected.numpy())


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape,pads", [((2, 7), (3, 2)), ((1, 2, 4, 5, 6), (1, 2, 3, 0, 2, 1))])
def test_pad_modes_match_torch_in_1d_and_3d(torch, mode, shape, pads):
    x = np.random.default_rng(5).standard_normal(shape)
    expected = torch.nn.functional.pad(torch.tensor(x), pads, mode=mode)
    np.testing.assert_array_equal(F.pad(minidl.tensor(x), pads, mode).numpy(), expected.numpy())


# ---- bad input: the exception type and the words ----------------------------------------
def T(*shape, dtype=np.float32):
    return minidl.tensor(np.zeros(shape, dtype))


BAD = [
    # a blog note's torch example: 1024 input channels against a weight for 1000
    (lambda: F.conv2d(T(22, 1024, 18, 19), T(22, 1000, 6, 3), padding=(1, 0)), ValueError,
     r"conv2d: input has 1024 channels but weight \(22, 1000, 6, 3\) expects 1000 with groups=1"),
    (lambda: F.conv2d(T(3, 5), T(2, 3, 3, 3)), ValueError, r"got input of shape \(3, 5\)"),
    (lambda: F.conv2d(T(1, 3, 5, 5), T(2, 3, 3)), ValueError, "4-D weight"),
    (lambda: F.conv2d(T(1, 4, 5, 5), T(3, 2, 3, 3), groups=2), ValueError,
     "not divisible by groups=2"),
    (lambda: F.conv2d(T(1, 3, 5, 5), T(2, 3, 3, 3), groups=0), ValueError, "groups must be >= 1"),
    (lambda: F.conv2d(T(1, 1, 2, 2), T(1, 1, 3, 3)), ValueError,
     r"padded input size \(2, 2\) is smaller than the effective kernel size \(3, 3\)"),
    (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), dilation=3), ValueError,
     r"effective kernel size \(7, 7\)"),
    (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), stride=0), ValueError, "stride must be >= 1"),
    (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), dilation=(1, 0)), ValueError,
     "dilation must be >= 1"),
    (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), padding=-1), ValueError,
     "padding must be >= 0"),
    (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), padding="full"), ValueError,
     "padding must be an int, a tuple of 2 ints, 'same' or 'valid'"),
    (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), padding="same", stride=2), ValueError,
     "padding='same' is not supported for strided convolutions"),
    (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), padding=(1, 1, 1)), ValueError,
     r"padding must be an int or a tuple of 2 ints, got \(1, 1, 1\)"),
    (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), bias=T(2)), ValueError,
     r"bias has shape \(2,\), expected \(1,\)"),
    (lambda: F.conv2d(T(1, 1, 5, 5, dtype=np.int64), T(1, 1, 3, 3, dtype=np.int64)), TypeError,
     "must be float32 or float64"),
    (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3, dtype=np.float64)), TypeError,
     "must share a dtype"),
    (lambda: F.conv2d(np.zeros((1, 1, 5, 5)), T(1, 1, 3, 3)), TypeError,
     "input must be a minidl Tensor"),
    (lambda: F.conv_transpose2d(T(1, 2, 4, 4), T(2, 1, 3, 3), stride=2, output_padding=2),
     ValueError, "output_padding .* must be smaller than either stride .* or dilation"),
    (lambda: F.conv_transpose2d(T(1, 3, 4, 4), T(2, 1, 3, 3)), ValueError,
     r"input has 3 channels but weight \(2, 1, 3, 3\) expects 2"),
    (lambda: F.conv_transpose2d(T(1, 2, 1, 1), T(2, 1, 1, 1), padding=1), ValueError,
     r"output size \(-1, -1\) is too small"),
    (lambda: F.conv_transpose1d(T(1, 2, 4), T(2, 1, 3), padding="same"), ValueError,
     "padding must be an int or a tuple"),
    (lambda: F.conv2d(T(1, 3, 5, 5), T(4, 3, 0, 0)), ValueError,
     r"conv2d: weight of shape \(4, 3, 0, 0\) has a zero-sized dim"),
    (lambda: F.conv1d(T(2, 0, 5), T(4, 0, 3)), ValueError,
     r"conv1d: weight of shape \(4, 0, 3\) has a zero-sized dim"),
    (lambda: F.conv3d(T(1, 2, 3, 0, 3), T(4, 2, 1, 1, 1)), ValueError,
     r"conv3d: input of shape \(1, 2, 3, 0, 3\) has a zero-sized dim"),
    (lambda: F.conv_transpose2d(T(1, 2, 4, 4), T(2, 0, 3, 3)), ValueError,
     r"conv_transpose2d: weight of shape \(2, 0, 3, 3\) has a zero-sized dim"),
    (lambda: F.conv2d(T(3, 5, 5), T(2, 3, 3, 3), stride=[1, 1, 1]), ValueError,
     r"stride must be an int or a tuple of 2 ints, got \[1, 1, 1\]"),
    (lambda: F.conv2d(T(1, 3, 5, 5), T(2, 3, 3, 3), stride=True), TypeError,
     "stride must be an int or a tuple of 2 ints, got True"),
    (lambda: F.pad(T(1, 2, 3), (1, 1), mode="mirror"), ValueError, "mode must be one of"),
    (lambda: F.pad(T(1, 2, 3), (3, 0), mode="reflect"), ValueError,
     r"reflect padding \(3, 0\) of dim 2 with size 3 is not possible"),
    (lambda: F.pad(T(1, 2, 3), (1, 1, 1)), ValueError, "even-length"),
    (lambda: F.pad(T(1, 2, 3), 1), TypeError, "pad must be a tuple of ints, got int 1"),
    (lambda: F.pad(T(1, 2, 3), (1, 1), value="a"), TypeError, "value must be a number"),
]


@pytest.mark.parametrize("call,exc,words", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_input_raises_clear_errors(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_repeated_arguments_are_checked_each_time():
    """The geometry is remembered per distinct arguments: a valid call first must not let a
    bad one through later (True hashes like 1 but is not an int)."""
    x, w = T(1, 3, 5, 5), T(2, 3, 3, 3)
    assert F.conv2d(x, w, stride=1).shape == (1, 2, 3, 3)
    with pytest.raises(TypeError, match="stride must be an int"):
        F.conv2d(x, w, stride=True)
    with pytest.raises(ValueError, match="input has 4 channels"):
        F.conv2d(T(1, 4, 5, 5), w, stride=1)


def test_unallocatable_sizes_raise_cleanly():
    huge = minidl.tensor(np.zeros((1, 1, 1, 1), np.float32))
    w = minidl.tensor(np.zeros((1, 1, 1, 1), np.float32))
    with pytest.raises((MemoryError, ValueError)):
        F.conv_transpose2d(huge, w, stride=(2**31, 2**31), output_padding=(2**31 - 1, 2**31 - 1))


@pytest.mark.parametrize("forced", [None, "winograd", "gemm"], ids=["chosen", "winograd", "gemm"])
def test_conv_transpose_takes_the_shared_dispatch_and_matches_torch(forced, torch):
    """A 3x3 stride-1 transposed conv with many channels takes the conv's dispatch: its
    forward, dx and dw run on a conv's backward-data, forward and backward-weight (Winograd,
    or where its 64 channels are too few for it, the direct kernels in either layout, unless
    forced), and equal PyTorch."""
    from minidl import runtime
    from minidl._ext import dispatch

    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 64, 9, 11)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    r = rng.standard_normal((2, 64, 9, 11)).astype(np.float32)
    mx, mw = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    with dispatch.force(forced), dispatch.record() as log:
        (F.conv_transpose2d(mx, mw, padding=1) * minidl.tensor(r)).sum().backward()
    beaten = 64 < dispatch.WINOGRAD_OVER_DIRECT_MIN_CHANNELS.get(runtime.isa(), 0)
    expected = {forced} if forced else ({"direct", "compact"} if beaten else {"winograd"})
    assert [p for p, _ in log] == ["data", "forward", "weight"]
    assert all(algorithm in expected for _, algorithm in log), log
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv_transpose2d(tx, tw, padding=1)
    (ty * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(
        F.conv_transpose2d(minidl.tensor(x), minidl.tensor(w), padding=1).numpy(),
        ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mw.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-5)
