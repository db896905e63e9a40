"""Tensor factories, dtype names and devices against PyTorch."""

import numpy as np
import pytest

import minidl


def tdtype(torch, dtype):
    return getattr(torch, np.dtype(dtype).name)


def same(ours, theirs, exact=True):
    """Same shape, same dtype (by name), same values."""
    assert ours.shape == tuple(theirs.shape)
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
    if exact:
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# ---- dtype names ------------------------------------------------------------------------------
DTYPE_NAMES = ["float32", "float", "float64", "double", "int64", "long", "int32", "int", "int16",
               "short", "int8", "uint8", "bool"]


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_dtype_names_match_torch(torch, name):
    assert getattr(minidl, name).name == str(getattr(torch, name)).removeprefix("torch.")
    t = torch.zeros(2, dtype=getattr(torch, name))
    m = minidl.zeros(2, dtype=getattr(minidl, name))
    assert m.type() == t.type()
    assert m.dtype == getattr(minidl, name)


# ---- filled factories -------------------------------------------------------------------------
FILLED = [
    ("zeros", (2, 3), {}),
    ("zeros", ((2, 3),), {}),
    ("zeros", ([4],), {"dtype": "int64"}),
    ("zeros", ((),), {}),
    ("ones", (3,), {}),
    ("ones", (2, 2), {"dtype": "float64"}),
    ("ones", (2,), {"dtype": "bool"}),
    ("full", ((2, 2), 7), {}),
    ("full", ((2,), 1.5), {}),
    ("full", ((3,), True), {}),
    ("full", ((2, 1), 2), {"dtype": "float64"}),
    ("full", ((2,), 2.7), {"dtype": "int64"}),
]


@pytest.mark.parametrize("name,args,kwargs", FILLED)
def test_filled_factories_match_torch(torch, name, args, kwargs):
    ours = getattr(minidl, name)(*args, **{k: getattr(minidl, v) for k, v in kwargs.items()})
    theirs = getattr(torch, name)(*args, **{k: getattr(torch, v) for k, v in kwargs.items()})
    same(ours, theirs)


@pytest.mark.parametrize("name", ["zeros", "ones", "empty", "randn", "rand"])
def test_factories_take_requires_grad_and_device(torch, name):
    ours = getattr(minidl, name)(2, 3, requires_grad=True, device="cpu")
    theirs = getattr(torch, name)(2, 3, requires_grad=True, device="cpu")
    assert ours.requires_grad and ours.is_leaf and ours.shape == (2, 3)
    assert theirs.requires_grad and theirs.is_leaf
    assert ours.dtype == minidl.float32 and theirs.dtype == torch.float32
    with pytest.raises(RuntimeError, match="CPU only"):
        getattr(minidl, name)(2, device="cuda")


def test_empty_has_shape_and_dtype(torch):
    same(minidl.empty(2, 3, dtype=minidl.int64), torch.empty(2, 3, dtype=torch.int64),
         exact=False)


def test_integer_tensor_cannot_require_grad_from_a_factory(torch):
    with pytest.raises(RuntimeError):
        torch.zeros(2, dtype=torch.int64, requires_grad=True)
    with pytest.raises(TypeError, match="floating point"):
        minidl.zeros(2, dtype=minidl.int64, requires_grad=True)


# ---- ranges -----------------------------------------------------------------------------------
ARANGES = [(5,), (1, 7, 2), (0, 1, 0.1), (10, 0, -3), (0.5, 3), (-1.0, 1.0, 0.25), (0, 1, 0.3),
           (1, 2.5, 0.1), (0,), (3, 3)]


@pytest.mark.parametrize("args", ARANGES, ids=str)
def test_arange_matches_torch(torch, args):
    same(minidl.arange(*args), torch.arange(*args))


@pytest.mark.parametrize("dtype", ["float64", "int32", "float32"])
def test_arange_with_dtype(torch, dtype):
    same(minidl.arange(1, 9, 3, dtype=getattr(minidl, dtype)),
         torch.arange(1, 9, 3, dtype=getattr(torch, dtype)))


@pytest.mark.parametrize("args", [(0, 5, 0), (5, 0, 1), (0, -3)])
def test_arange_errors_match_torch(torch, args):
    with pytest.raises(RuntimeError) as theirs:
        torch.arange(*args)
    with pytest.raises(RuntimeError) as ours:
        minidl.arange(*args)
    assert str(ours.value) == str(theirs.value)


LINSPACES = [(0, 1, 5), (-3, 7.5, 11), (2, -1, 7), (0, 1, 1), (0.1, 0.7, 13), (0, 1, 0),
             (-1e3, 3.3, 101), (0, 1, 1000)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("args", LINSPACES, ids=str)
def test_linspace_matches_torch(torch, args, dtype):
    """PyTorch's vectorised kernel takes some values from the other end than its scalar rule
    (by the machine's vector width): equal to rounding of the end points' magnitude."""
    ours = minidl.linspace(*args, dtype=getattr(minidl, dtype))
    theirs = torch.linspace(*args, dtype=getattr(torch, dtype))
    same(ours, theirs, exact=False)
    scale = max(abs(args[0]), abs(args[1])) * np.finfo(dtype).eps * 4
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=0, atol=scale)
    if len(ours):
        assert ours[0].item() == theirs[0].item() and ours[-1].item() == theirs[-1].item()


def test_linspace_default_dtype_and_errors(torch):
    assert minidl.linspace(0, 1, 3).dtype == minidl.float32
    with pytest.raises(RuntimeError, match="non-negative"):
        minidl.linspace(0, 1, -1)
    with pytest.raises(RuntimeError, match="non-negative"):
        torch.linspace(0, 1, -1)


# ---- random -----------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: minidl.randn(3, 4),
    lambda: minidl.rand(5),
    lambda: minidl.randint(0, 10, (6,)),
    lambda: minidl.randn_like(minidl.zeros(2, 2)),
    lambda: minidl.rand_like(minidl.zeros(3, dtype=minidl.float64)),
    lambda: minidl.randint_like(minidl.zeros(4), 7),
], ids=["randn", "rand", "randint", "randn_like", "rand_like", "randint_like"])
def test_random_factories_follow_manual_seed(make):
    minidl.manual_seed(123)
    first = make().numpy().copy()
    second = make().numpy().copy()
    minidl.manual_seed(123)
    again = make().numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)


def test_random_distributions_and_dtypes(torch):
    minidl.manual_seed(0)
    n = minidl.randn(20000)
    assert n.dtype == minidl.float32 == np.dtype(str(torch.randn(1).dtype)[6:])
    assert abs(n.numpy().mean()) < 0.03 and abs(n.numpy().std() - 1) < 0.03
    u = minidl.rand(20000, dtype=minidl.float64)
    assert u.dtype == minidl.float64 and 0 <= u.numpy().min() and u.numpy().max() < 1
    assert abs(u.numpy().mean() - 0.5) < 0.02
    r = minidl.randint(3, 10, (5000,))
    assert r.dtype == minidl.int64 == np.dtype(str(torch.randint(3, 10, (2,)).dtype)[6:])
    assert set(r.tolist()) == set(range(3, 10))
    assert set(minidl.randint(4, size=(500,)).tolist()) == {0, 1, 2, 3}
    same(minidl.randint(10, (2, 3), dtype=minidl.float32),
         torch.randint(10, (2, 3), dtype=torch.float32), exact=False)
    like = minidl.randint_like(minidl.zeros(300, dtype=minidl.int32), 2, 5)
    assert like.dtype == minidl.int32 and set(like.tolist()) == {2, 3, 4}


@pytest.mark.parametrize("name", ["randn", "rand"])
def test_random_float_factories_refuse_integer_dtypes(torch, name):
    with pytest.raises(NotImplementedError):
        getattr(torch, name)(2, dtype=torch.int64)
    with pytest.raises(NotImplementedError):
        getattr(minidl, name)(2, dtype=minidl.int64)


def test_randint_needs_low_below_high(torch):
    with pytest.raises(RuntimeError):
        torch.randint(5, 5, (2,))
    with pytest.raises(RuntimeError, match="from"):
        minidl.randint(5, 5, (2,))


# ---- *_like -----------------------------------------------------------------------------------
LIKE = [
    ("zeros_like", (), {}),
    ("ones_like", (), {}),
    ("ones_like", (), {"dtype": "float64"}),
    ("full_like", (3,), {}),
    ("full_like", (2.5,), {"dtype": "float32"}),
    ("empty_like", (), {}),
]


@pytest.mark.parametrize("source", ["float64", "int64", "float32"])
@pytest.mark.parametrize("name,args,kwargs", LIKE, ids=lambda v: str(v))
def test_like_factories_match_torch(torch, name, args, kwargs, source):
    data = np.arange(6).reshape(2, 3).astype(source)
    ours = getattr(minidl, name)(minidl.from_numpy(data), *args,
                                 **{k: getattr(minidl, v) for k, v in kwargs.items()})
    theirs = getattr(torch, name)(torch.from_numpy(data), *args,
                                  **{k: getattr(torch, v) for k, v in kwargs.items()})
    same(ours, theirs, exact=name != "empty_like")


def test_like_factories_keep_dtype_of_random_input(torch):
    x = np.zeros((2, 2), np.float64)
    same(minidl.randn_like(minidl.from_numpy(x)), torch.randn_like(torch.from_numpy(x)),
         exact=False)
    same(minidl.rand_like(minidl.from_numpy(x)), torch.rand_like(torch.from_numpy(x)),
         exact=False)
    assert minidl.zeros_like(minidl.ones(2), requires_grad=True).requires_grad


# ---- from_numpy and as_tensor -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int32", "int16", "int8",
                                   "uint8", "bool"])
def test_from_numpy_shares_memory_and_keeps_dtype(torch, dtype):
    array = np.arange(6).reshape(2, 3).astype(dtype)
    ours, theirs = minidl.from_numpy(array), torch.from_numpy(array.copy())
    same(ours, theirs)
    array[0, 0] = 1
    assert ours.numpy()[0, 0] == 1  # a write to the array shows in the tensor
    ours[1, 2] = 0
    assert array[1, 2] == 0  # and the other way round


def test_from_numpy_refuses_other_inputs(torch):
    with pytest.raises(TypeError) as theirs:
        torch.from_numpy([1, 2])
    with pytest.raises(TypeError) as ours:
        minidl.from_numpy([1, 2])
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(TypeError, match="float16"):
        minidl.from_numpy(np.zeros(2, np.float16))  # minidl has no half precision


def test_as_tensor_shares_when_it_can(torch):
    array = np.arange(4, dtype=np.float64)
    for lib in (minidl, torch):
        shared = lib.as_tensor(array)
        array[0] = 9
        assert shared[0].item() == 9
        array[0] = 0
        copied = lib.as_tensor(array, dtype=lib.float32)
        array[1] = 5
        assert copied[1].item() == 1
        array[1] = 1
        t = lib.ones(2)
        assert lib.as_tensor(t) is t
        assert lib.as_tensor(t, dtype=lib.float64).dtype == lib.float64
    same(minidl.as_tensor([1, 2]), torch.as_tensor([1, 2]))
    same(minidl.as_tensor([1.5, 2]), torch.as_tensor([1.5, 2]))
    same(minidl.as_tensor(3, dtype=minidl.float64), torch.as_tensor(3, dtype=torch.float64))


def test_tensor_takes_dtype_device_and_requires_grad(torch):
    ours = minidl.tensor([1, 2], dtype=minidl.float64, device="cpu", requires_grad=True)
    theirs = torch.tensor([1, 2], dtype=torch.float64, device="cpu", requires_grad=True)
    same(ours.detach(), theirs.detach())
    assert ours.requires_grad
    with pytest.raises(RuntimeError, match="CPU only"):
        minidl.tensor([1.0], device="cuda:0")


# ---- devices ----------------------------------------------------------------------------------
DEVICES = [("cpu",), ("cpu:0",), ("cuda",), ("cuda:1",), ("cuda", 1), ("cpu", 0), ("mps",),
           ("meta",)]


@pytest.mark.parametrize("args", DEVICES, ids=str)
def test_device_matches_torch(torch, args):
    ours, theirs = minidl.device(*args), torch.device(*args)
    assert (repr(ours), str(ours), ours.type, ours.index) == (
        repr(theirs), str(theirs), theirs.type, theirs.index)
    assert ours == minidl.device(str(ours)) and hash(ours) == hash(minidl.device(str(ours)))
    assert minidl.device(ours) == ours


def test_device_equality_follows_torch(torch):
    for lib in (minidl, torch):
        assert lib.device("cpu") != lib.device("cpu", 0)
        assert lib.device("cpu") != "cpu"
        assert lib.device("cuda:1") != lib.device("cuda:0")


@pytest.mark.parametrize("args", [("gpu",), ("cuda:x",), ("cpu", -1), ("",), ("cuda:0", 1)],
                         ids=str)
def test_bad_device_names_raise_as_torch(torch, args):
    with pytest.raises(RuntimeError) as theirs:
        torch.device(*args)
    with pytest.raises(RuntimeError) as ours:
        minidl.device(*args)
    assert str(ours.value).split(":")[0] == str(theirs.value).split(":")[0]


def test_cuda_and_accelerator_report_no_device(torch):
    assert minidl.cuda.is_available() is torch.cuda.is_available() is False
    assert minidl.cuda.device_count() == torch.cuda.device_count() == 0
    assert minidl.accelerator.is_available() is torch.accelerator.is_available() is False
    assert minidl.accelerator.device_count() == 0
    assert minidl.accelerator.current_accelerator() is torch.accelerator.current_accelerator()
    minidl.cuda.manual_seed(0)
    minidl.cuda.manual_seed_all(0)


def test_device_selection_idiom_runs():
    device = minidl.device("cuda" if minidl.cuda.is_available() else "cpu")
    x = minidl.ones(2).to(device)
    assert x.device == device == minidl.device("cpu") and str(x.device) == "cpu"
    assert not x.is_cuda


def test_moving_to_cuda_is_a_clear_error():
    x = minidl.ones(2)
    for move in (lambda: x.cuda(), lambda: x.to("cuda"), lambda: x.to(minidl.device("cuda:0")),
                 lambda: x.to(device="cuda", dtype=minidl.float64)):
        with pytest.raises(RuntimeError, match="CPU only"):
            move()
