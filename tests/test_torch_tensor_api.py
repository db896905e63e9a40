"""Tensor methods and top-level functions that PyTorch scripts use, against live PyTorch:
values, gradients (and float64 finite differences), dtypes, shapes and error types."""

import numpy as np
import pytest
from gradcheck import gradcheck

import minidl

rng = np.random.default_rng(7)


def distinct(*shape):
    """Values without ties (sort, topk and max have one answer), none at 0 (``x > 0`` masks
    stay put under finite differences)."""
    n = np.prod(shape, dtype=int)
    return (rng.permutation(n).reshape(shape) - n / 2 + 0.3) / 7.0


def outputs(result):
    """The tensors of a result: a tensor, or a tuple of them (namedtuples too)."""
    return list(result) if isinstance(result, tuple) else [result]


def check_against_torch(torch, ours_fn, theirs_fn, *arrays, tol=1e-12):
    """Same values, dtypes and shapes for every output; the same gradients for every float
    input of ``ours_fn(*tensors)`` weighted by fixed random weights."""
    ms = [minidl.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    ts = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    ours, theirs = outputs(ours_fn(*ms)), outputs(theirs_fn(*ts))
    assert len(ours) == len(theirs)
    m_loss, t_loss = 0, 0
    for o, t in zip(ours, theirs):
        assert o.shape == tuple(t.shape), (o.shape, t.shape)
        assert o.dtype.name == str(t.dtype).removeprefix("torch.")
        np.testing.assert_allclose(o.numpy(), t.detach().numpy(), rtol=tol, atol=tol)
        if t.requires_grad:
            assert o.requires_grad
            w = rng.standard_normal(o.shape)
            m_loss = m_loss + (o * minidl.tensor(w)).sum()
            t_loss = t_loss + (t * torch.tensor(w)).sum()
        else:
            assert not o.requires_grad
    if isinstance(t_loss, int):
        return
    m_loss.backward()
    t_loss.backward()
    for m, t in zip(ms, ts):
        if t.grad is not None:
            np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol)


# ---- differentiable methods: values and gradients ---------------------------------------------
METHODS = {
    "clone": lambda x: x.clone() * 2,
    "view_as": lambda x: x.view_as(x.reshape(4, 3)),
    "reshape_as": lambda x: x.reshape_as(x.reshape(2, 6)),
    "expand_as": lambda x: x[:1].expand_as(x),
    "t": lambda x: x.t(),
    "t_1d": lambda x: x[0].t(),
    "repeat": lambda x: x.repeat(2, 1),
    "repeat_more_dims": lambda x: x.repeat(2, 1, 3),
    "split_int": lambda x: x.split(2, dim=1),
    "split_sizes": lambda x: x.split([1, 2], 0),
    "chunk": lambda x: x.chunk(3, 1),
    "chunk_uneven": lambda x: x.chunk(2, dim=-1),
    "unbind": lambda x: x.unbind(1),
    "narrow": lambda x: x.narrow(1, 1, 2),
    "var": lambda x: x.var(),
    "var_dim": lambda x: x.var(1),
    "var_unbiased_false": lambda x: x.var(0, False),
    "var_keepdim": lambda x: x.var(1, keepdim=True),
    "var_correction0": lambda x: x.var(dim=1, correction=0),
    "var_correction2": lambda x: x.var(dim=(0, 1), correction=2),
    "var_bool": lambda x: x.var(False),
    "std": lambda x: x.std(),
    "std_dim": lambda x: x.std(0),
    "std_unbiased_kw": lambda x: x.std(1, unbiased=False, keepdim=True),
    "std_correction": lambda x: x.std(dim=1, correction=0),
    "pow": lambda x: x.abs().pow(1.5),
    "pow_int": lambda x: x.pow(3),
    "square": lambda x: x.square(),
    "neg": lambda x: x.neg(),
    "add_alpha": lambda x: x.add(x * x, alpha=0.5),
    "sub_alpha": lambda x: x.sub(x.exp(), alpha=2),
    "mul_div": lambda x: x.mul(3).div(x.abs() + 1),
    "topk": lambda x: x.topk(2),
    "topk_smallest_dim0": lambda x: x.topk(2, dim=0, largest=False),
    "sort": lambda x: x.sort(),
    "sort_desc_dim0": lambda x: x.sort(0, descending=True),
    "masked_fill": lambda x: x.masked_fill(x > 0, 0.25),
    "masked_fill_broadcast_mask": lambda x: x.masked_fill((x[0] > 0), -1.0),
    "max_other": lambda x: x.max(x * 0.5),
    "maximum": lambda x: x.maximum(x * -1),
    "minimum": lambda x: x.minimum(x * 0.5),
    "min_dim": lambda x: x.min(1),
    "max_dim_keep": lambda x: x.max(0, keepdim=True),
    "to_float32": lambda x: x.to(x.new_zeros(1, dtype=x.float().dtype)) * 1,
    "type_float": lambda x: x.type(x.float().dtype),
    "float": lambda x: x.float(),
    "double": lambda x: x.float().double(),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_matches_torch(torch, name):
    fn = METHODS[name]
    tol = 1e-6 if name in ("to_float32", "type_float", "float", "double") else 1e-12
    check_against_torch(torch, fn, fn, distinct(3, 4), tol=tol)


GRADCHECK = ["clone", "t", "repeat", "repeat_more_dims", "split_sizes", "chunk_uneven", "unbind",
             "narrow", "var_correction2", "std_dim", "topk", "sort_desc_dim0", "masked_fill",
             "maximum", "minimum", "var_unbiased_false", "square"]


@pytest.mark.parametrize("name", GRADCHECK)
def test_method_gradients_by_finite_differences(name):
    """Every float output of the method, flattened into one vector."""
    def flat(x):
        return minidl.cat([p.reshape(-1) for p in outputs(METHODS[name](x))
                           if p.dtype.kind == "f"])

    gradcheck(flat, distinct(3, 4))


def test_maximum_and_minimum_split_ties_like_torch(torch):
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 0.0, 3.0])
    for op in ("maximum", "minimum"):
        check_against_torch(torch, lambda x, y, op=op: getattr(x, op)(y),
                            lambda x, y, op=op: getattr(x, op)(y), a, b)


def test_masked_fill_with_a_tensor_value_gets_its_gradient(torch):
    x, v = distinct(3, 4), np.array(0.5)

    def fn(x, v):
        return x.masked_fill(x > 0, v) * x

    check_against_torch(torch, fn, fn, x, v)
    gradcheck(fn, x, v)


def test_sort_with_ties_nan_and_integers_matches_torch(torch):
    for data in (np.array([3.0, 1.0, 3.0, np.nan, -np.inf, 1.0, np.inf]),
                 np.array([[3, 1, 3, 2], [0, 0, 5, -7]]),
                 np.array([True, False, True, False])):
        for descending in (False, True):
            ours = minidl.tensor(data).sort(dim=-1, descending=descending, stable=True)
            theirs = torch.tensor(data).sort(dim=-1, descending=descending, stable=True)
            np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
            np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
            np.testing.assert_array_equal(
                minidl.tensor(data).argsort(descending=descending, stable=True).numpy(),
                torch.tensor(data).argsort(descending=descending, stable=True).numpy())
            assert ours.indices.dtype == minidl.int64


def test_topk_and_sort_return_named_values_and_indices(torch):
    x = distinct(2, 5)
    ours, theirs = minidl.tensor(x).topk(3), torch.tensor(x).topk(3)
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    values, indices = minidl.tensor(x).sort(descending=True)
    np.testing.assert_array_equal(indices.numpy(), torch.tensor(x).sort(descending=True)[1])
    with pytest.raises(RuntimeError):
        torch.tensor(x).topk(6)
    with pytest.raises(RuntimeError, match="out of range"):
        minidl.tensor(x).topk(6)


# ---- non-differentiable methods ---------------------------------------------------------------
@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_named_comparisons_match_torch(torch, op):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    for other_m, other_t in ((minidl.tensor(b), torch.tensor(b)), (2.0, 2.0), (2, 2)):
        ours = getattr(minidl.tensor(a), op)(other_m)
        theirs = getattr(torch.tensor(a), op)(other_t)
        assert ours.dtype == minidl.bool and theirs.dtype == torch.bool
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_equal_matches_torch(torch):
    for a, b in (([1, 2], [1, 2]), ([1, 2], [1, 3]), ([1, 2], [[1, 2]])):
        assert minidl.equal(minidl.tensor(a), minidl.tensor(b)) == torch.equal(
            torch.tensor(a), torch.tensor(b))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "uint8", "bool"])
def test_type_names_and_conversions_match_torch(torch, dtype):
    data = np.array([0.0, 1.7, -2.2, 3.0]).astype(dtype)
    m, t = minidl.tensor(data), torch.tensor(data)
    assert m.type() == t.type()
    for conversion in ("float", "double", "long", "int", "bool"):
        ours, theirs = getattr(m, conversion)(), getattr(t, conversion)()
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    for name in ("torch.DoubleTensor", "torch.LongTensor", "torch.BoolTensor"):
        np.testing.assert_array_equal(m.type(name).numpy(), t.type(name).numpy())
        assert m.type(name).type() == name
    assert m.type(minidl.int64).type() == t.type(torch.int64).type()
    assert m.is_floating_point() == t.is_floating_point()


def test_to_overloads_match_torch(torch):
    x = np.array([1.5, -2.0])
    m, t = minidl.tensor(x), torch.tensor(x)
    other_m, other_t = minidl.tensor([1, 2]), torch.tensor([1, 2])
    calls = [
        (lambda lib, v, o: v.to(lib.float32)),
        (lambda lib, v, o: v.to("cpu")),
        (lambda lib, v, o: v.to(lib.device("cpu"), lib.float32)),
        (lambda lib, v, o: v.to("cpu", dtype=lib.int64)),
        (lambda lib, v, o: v.to(device="cpu", dtype=lib.float32)),
        (lambda lib, v, o: v.to(o)),
        (lambda lib, v, o: v.to(lib.float64, copy=True)),
        (lambda lib, v, o: v.to(lib.float32, False, True)),
        (lambda lib, v, o: v.to(int)),
        (lambda lib, v, o: v.to(float)),
        (lambda lib, v, o: v.to(bool)),
    ]
    for call in calls:
        ours, theirs = call(minidl, m, other_m), call(torch, t, other_t)
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        assert (ours is m) == (theirs is t)


def test_to_keeps_the_graph_for_float_targets_only(torch):
    for lib in (minidl, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        assert x.to(lib.float64).requires_grad
        assert not x.to(lib.int64).requires_grad
        (x.to(lib.float64) * 3).sum().backward()
        assert x.grad.dtype == lib.float32
        assert x.grad.tolist() == [3.0, 3.0]


def test_new_factories_match_torch(torch):
    m = minidl.tensor(np.ones((2, 2), np.float64))
    t = torch.tensor(np.ones((2, 2), np.float64))
    calls = [
        lambda v, lib: v.new_zeros(3),
        lambda v, lib: v.new_zeros((2, 3)),
        lambda v, lib: v.new_zeros(2, 3),
        lambda v, lib: v.new_ones(2, dtype=lib.int64),
        lambda v, lib: v.new_full((2,), 7),
        lambda v, lib: v.new_full((1, 2), 2.5, dtype=lib.float32),
        lambda v, lib: v.new_tensor([1, 2]),
        lambda v, lib: v.new_tensor([1, 2], dtype=lib.int64),
        lambda v, lib: v.new_empty(2, 1),
    ]
    for call in calls:
        ours, theirs = call(m, minidl), call(t, torch)
        assert ours.shape == tuple(theirs.shape)
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
        if call is not calls[-1]:
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert m.new_zeros(2, requires_grad=True).requires_grad


@pytest.mark.parametrize("call", [
    lambda lib, x: x.reshape(2, 3).t().t().repeat(2),
    lambda lib, x: x.split([2, 2]),
    lambda lib, x: x.chunk(0),
    lambda lib, x: x.reshape(1, 2, 3).t(),
    lambda lib, x: x.var(5),
    lambda lib, x: lib.arange(3).var(),
    lambda lib, x: x.masked_fill(lib.tensor([1, 0, 1, 0, 1, 0]), 0.0),
], ids=["repeat_dims", "split_sizes", "chunk0", "t_3d", "var_dim", "var_int", "masked_int"])
def test_method_errors_match_torch(torch, call):
    with pytest.raises(Exception) as theirs:
        call(torch, torch.ones(6))
    with pytest.raises(Exception) as ours:
        call(minidl, minidl.ones(6))
    assert type(ours.value) is type(theirs.value)


# ---- 0-d tensors as Python numbers ------------------------------------------------------------
def test_zero_d_tensors_act_as_numbers_like_torch(torch):
    classes = ("plane", "car", "bird")
    for lib in (minidl, torch):
        labels = lib.tensor([2, 0, 1])
        assert [classes[labels[j]] for j in range(3)] == ["bird", "plane", "car"]
        assert classes[lib.tensor([1])] == "car"
        assert list(range(10))[lib.tensor(4)] == 4
        assert bool(lib.tensor(1) == lib.tensor(1)) and not (lib.tensor(1) == lib.tensor(2))
        assert int(lib.tensor(2.7)) == 2 and float(lib.tensor([1.5])) == 1.5
        assert int(lib.tensor(True)) == 1
        assert f"{lib.tensor(1.23456):.2f}" == "1.23" and f"{lib.tensor(7):>3}" == "  7"
        assert len(list(range(lib.tensor(3)))) == 3
        assert [row.tolist() for row in lib.tensor([[1, 2], [3, 4]])] == [[1, 2], [3, 4]]
        assert all(type(row) is lib.Tensor for row in lib.tensor([[1, 2], [3, 4]]))
        a, b = lib.tensor([1.0]), lib.tensor([1.0])
        assert len({a, b, a}) == 2 and {a: 1, b: 2}[a] == 1  # hashed by identity
    assert format(minidl.tensor([1, 2])) == str(minidl.tensor([1, 2]))


@pytest.mark.parametrize("call", [
    lambda lib: bool(lib.tensor([1, 2])),
    lambda lib: bool(lib.tensor([])),
    lambda lib: int(lib.tensor([1, 2])),
    lambda lib: float(lib.tensor([1.0, 2.0])),
    lambda lib: lib.tensor([1.0, 2.0]).item(),
    lambda lib: (1, 2)[lib.tensor(1.0)],
    lambda lib: (1, 2)[lib.tensor([0, 1])],
    lambda lib: iter(lib.tensor(1.0)),
    lambda lib: len(lib.tensor(1.0)),
    lambda lib: format(lib.tensor([1.0, 2.0]), ".2f"),
], ids=["bool_many", "bool_empty", "int_many", "float_many", "item_many", "index_float",
        "index_many", "iter_0d", "len_0d", "format_1d"])
def test_number_protocol_errors_match_torch(torch, call):
    with pytest.raises(Exception) as theirs:
        call(torch)
    with pytest.raises(Exception) as ours:
        call(minidl)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)


# ---- top-level functions ----------------------------------------------------------------------
FUNCTION_CALLS = [
    ("flatten", ()), ("flatten", (1,)), ("sum", ()), ("sum", (1,)), ("sum", (0, True)),
    ("mean", ()), ("mean", (1,)), ("exp", ()), ("abs", ()), ("clamp", (-0.5, 0.5)),
    ("clip", (-0.2, None)), ("relu", ()), ("sigmoid", ()), ("tanh", ()), ("softmax", (1,)),
    ("log_softmax", (0,)), ("argmax", ()), ("argmax", (1,)), ("argmin", (0,)),
    ("reshape", ((4, 3),)), ("squeeze", ()), ("unsqueeze", (1,)), ("transpose", (0, 1)),
    ("permute", ((1, 0),)), ("var", (1,)), ("std", ()), ("topk", (2,)), ("sort", ()),
    ("argsort", (1,)), ("split", (2,)), ("chunk", (2,)), ("unbind", ()), ("narrow", (0, 1, 1)),
    ("t", ()), ("neg", ()), ("square", ()), ("clone", ()), ("max", ()), ("max", (1,)),
    ("max", (0, True)), ("min", ()), ("min", (1,)), ("mul", (2.0,)), ("add", (1.0,)),
    ("sub", (1.0,)), ("div", (4.0,)), ("eq", (0.5,)), ("gt", (0.0,)), ("le", (0.0,)),
    ("ne", (0.0,)), ("lt", (0.0,)), ("ge", (0.0,)), ("pow", (2,)), ("numel", ()),
]


@pytest.mark.parametrize("name,args", FUNCTION_CALLS, ids=[f"{n}{a}" for n, a in FUNCTION_CALLS])
def test_top_level_function_matches_torch(torch, name, args):
    x = distinct(3, 4)
    ours = getattr(minidl, name)(minidl.tensor(x), *args)
    theirs = getattr(torch, name)(torch.tensor(x), *args)
    if name == "numel":
        assert ours == theirs
        return
    ours_list, theirs_list = outputs(ours), outputs(theirs)
    assert len(ours_list) == len(theirs_list)
    for o, t in zip(ours_list, theirs_list):
        assert o.shape == tuple(t.shape)
        assert o.dtype.name == str(t.dtype).removeprefix("torch.")
        np.testing.assert_allclose(o.numpy(), t.numpy(), rtol=1e-12)


def test_functions_with_dtype_and_log_sqrt(torch):
    x = np.abs(distinct(3, 4)) + 0.5
    for name in ("log", "sqrt"):
        np.testing.assert_allclose(getattr(minidl, name)(minidl.tensor(x)).numpy(),
                                   getattr(torch, name)(torch.tensor(x)).numpy(), rtol=1e-12)
    ours = minidl.sum(minidl.tensor([1, 2, 3]), dtype=minidl.float64)
    theirs = torch.sum(torch.tensor([1, 2, 3]), dtype=torch.float64)
    assert ours.dtype == minidl.float64 and ours.item() == theirs.item()
    assert minidl.mean(minidl.tensor([1, 2]), dtype=minidl.float32).item() == 1.5


def test_max_and_min_forms_match_torch(torch):
    a, b = distinct(3, 4), distinct(3, 4)
    for op in ("max", "min"):
        elementwise = getattr(minidl, op)(minidl.tensor(a), minidl.tensor(b))
        np.testing.assert_array_equal(elementwise.numpy(),
                                      getattr(torch, op)(torch.tensor(a), torch.tensor(b)))
        values, indices = getattr(minidl, op)(minidl.tensor(a), dim=1, keepdim=True)
        theirs = getattr(torch, op)(torch.tensor(a), dim=1, keepdim=True)
        np.testing.assert_array_equal(values.numpy(), theirs.values.numpy())
        np.testing.assert_array_equal(indices.numpy(), theirs.indices.numpy())


def test_functions_take_the_numpy_array_that_data_returns(torch):
    """The CIFAR tutorial: ``_, predicted = torch.max(outputs.data, 1)``."""
    outputs_ = minidl.tensor(distinct(4, 10), requires_grad=True)
    _, predicted = minidl.max(outputs_.data, 1)
    theirs = torch.max(torch.tensor(outputs_.numpy()), 1)[1]
    assert isinstance(predicted, minidl.Tensor) and predicted.dtype == minidl.int64
    np.testing.assert_array_equal(predicted.numpy(), theirs.numpy())
    assert minidl.argmax(outputs_.data, 1).tolist() == theirs.tolist()
    assert minidl.sum(np.array([1, 2])).item() == 3
    with pytest.raises(TypeError, match="Tensor"):
        minidl.sum([1, 2])


def test_pow_with_a_number_base_matches_torch(torch):
    x = distinct(2, 3)
    check_against_torch(torch, lambda t: minidl.pow(2.0, t), lambda t: torch.pow(2.0, t), x)
    check_against_torch(torch, lambda t: minidl.pow(t, 3), lambda t: torch.pow(t, 3), x)


def test_is_tensor_and_is_floating_point(torch):
    for lib in (minidl, torch):
        assert lib.is_tensor(lib.ones(1)) and not lib.is_tensor(np.ones(1))
        assert lib.is_floating_point(lib.ones(1))
        assert not lib.is_floating_point(lib.ones(1, dtype=lib.int64))
