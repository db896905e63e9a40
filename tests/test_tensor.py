"""The autograd Tensor: gradients by finite differences, values against PyTorch, semantics."""

import gc
import weakref

import numpy as np
import pytest
from gradcheck import gradcheck

import minidl

rng = np.random.default_rng(0)


def rand(*shape, positive=False):
    a = rng.standard_normal(shape)
    return np.abs(a) + 0.5 if positive else a


# ---- gradients by finite differences (float64) ----------------------------------------
UNARY = {
    "neg": lambda x: -x,
    "exp": lambda x: x.exp(),
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "relu": lambda x: x.relu(),
    "abs": lambda x: x.abs(),
    "pow3": lambda x: x**3,
    "pow_half": lambda x: (x * x + 1) ** 0.5,
    "rpow": lambda x: 2.0**x,
    "softmax0": lambda x: x.softmax(0),
    "softmax1": lambda x: x.softmax(1),
    "log_softmax1": lambda x: x.log_softmax(1),
    "log_softmax0": lambda x: x.log_softmax(0),
    "reshape": lambda x: x.reshape(4, 3) * 2,
    "view": lambda x: x.view(-1),
    "transpose": lambda x: x.transpose(0, 1),
    "permute": lambda x: x.permute(1, 0),
    "T": lambda x: x.T,
    "flatten": lambda x: x.flatten(),
    "unsqueeze_squeeze": lambda x: x.unsqueeze(1).squeeze(1),
    "expand": lambda x: x[:1].expand(5, 4),
    "getitem_slice": lambda x: x[1:, ::2],
    "getitem_int": lambda x: x[2],
    "getitem_fancy": lambda x: x[[0, 0, 2]],
    "getitem_mask": lambda x: x[x.numpy() > 0],
    "sum_all": lambda x: x.sum(),
    "sum_dim": lambda x: x.sum(1),
    "sum_keep": lambda x: x.sum(0, keepdim=True),
    "sum_dims": lambda x: x.sum((0, 1)),
    "mean_all": lambda x: x.mean(),
    "mean_dim": lambda x: x.mean(-1, keepdim=True),
    "var": lambda x: x.var(0),
    "max_all": lambda x: x.max(),
    "max_dim": lambda x: x.max(1).values,
    "max_keep": lambda x: x.max(0, keepdim=True)[0],
    "min_dim": lambda x: x.min(1).values,
    "clamp": lambda x: x.clamp(-0.5, 0.5),
    "cat": lambda x: minidl.cat([x, x * 2], dim=1),
    "stack": lambda x: minidl.stack([x, x.exp()], dim=1),
    "where": lambda x: minidl.where(x.numpy() > 0, x, x * 3),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients(name):
    gradcheck(UNARY[name], rand(3, 4))


@pytest.mark.parametrize("name", ["log", "sqrt"])
def test_positive_domain_gradients(name):
    gradcheck(lambda x: getattr(x, name)(), rand(3, 4, positive=True))


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1),
    "pow": lambda a, b: (a * a + 1) ** b,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize(
    "shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((3, 4), ())]
)
def test_binary_gradients_with_broadcasting(name, shapes):
    gradcheck(BINARY[name], rand(*shapes[0]), rand(*shapes[1]))


@pytest.mark.parametrize(
    "shapes", [((3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)), ((2, 3, 4), (4, 2)),
               ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2))]
)
def test_matmul_gradients(shapes):
    gradcheck(lambda a, b: a @ b, rand(*shapes[0]), rand(*shapes[1]))


def test_scalar_operands_on_both_sides():
    gradcheck(lambda x: 2 - x * 3 + 1 / (x * x + 1) + 0.5, rand(3))


# ---- values and gradients against PyTorch ---------------------------------------------
TORCH_OPS = [
    ("softmax", lambda m: m.softmax(1), lambda t: t.softmax(1)),
    ("log_softmax", lambda m: m.log_softmax(-1), lambda t: t.log_softmax(-1)),
    ("sigmoid", lambda m: m.sigmoid(), lambda t: t.sigmoid()),
    ("max_all", lambda m: m.max(), lambda t: t.max()),
    ("max_dim", lambda m: m.max(0).values, lambda t: t.max(0).values),
    ("var", lambda m: m.var(1), lambda t: t.var(1)),
    ("mean", lambda m: m.mean((0, 2)), lambda t: t.mean((0, 2))),
    ("fancy", lambda m: m[[1, 1, 0], :, 1], lambda t: t[[1, 1, 0], :, 1]),
    ("matmul", lambda m: m @ m.transpose(1, 2), lambda t: t @ t.transpose(1, 2)),
    ("pow", lambda m: m.abs() ** 1.5, lambda t: t.abs() ** 1.5),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,ours,theirs", TORCH_OPS, ids=[o[0] for o in TORCH_OPS])
def test_ops_match_torch(torch, name, ours, theirs, dtype):
    x = rand(2, 3, 4).astype(dtype)
    weights = rand(*theirs(torch.tensor(x)).shape).astype(dtype)
    m = minidl.tensor(x, requires_grad=True)
    (ours(m) * minidl.tensor(weights)).sum().backward()
    t = torch.tensor(x, requires_grad=True)
    (theirs(t) * torch.tensor(weights)).sum().backward()
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(ours(minidl.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol)


def test_max_ties_split_gradient_like_torch(torch):
    x = np.array([1.0, 3.0, 3.0, 2.0])
    m = minidl.tensor(x, requires_grad=True)
    m.max().backward()
    t = torch.tensor(x, requires_grad=True)
    t.max().backward()
    np.testing.assert_array_equal(m.grad.numpy(), t.grad.numpy())


# ---- semantics --------------------------------------------------------------------------
def test_dtype_rules_follow_torch():
    assert minidl.tensor([1.0, 2.0]).dtype == np.float32
    assert minidl.tensor(np.zeros(2)).dtype == np.float64
    assert minidl.tensor([1, 2]).dtype == np.int64
    assert minidl.tensor([1, 2], dtype=minidl.float64).dtype == np.float64
    x32 = minidl.tensor(np.ones(3, np.float32))
    assert (x32 * 2.5).dtype == np.float32
    assert (x32 * np.float64(2.5)).dtype == np.float32


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating point"):
        minidl.tensor([1, 2], requires_grad=True)


def test_gradients_accumulate_across_backward_calls():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_shared_subexpression_accumulates():
    x = minidl.tensor(np.array([0.5, -1.0]), requires_grad=True)
    y = x * x
    (y + y * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 3 * x.numpy() ** 2)


def test_leaf_takes_a_conv_gradient_without_a_copy(monkeypatch):
    """A conv's input and weight gradients are the kernels' fresh arrays: the leaves take them
    as they are (views of them), as PyTorch does, instead of copying (a copy as large as the
    input)."""
    import minidl.nn.functional as F
    from minidl._ext import dispatch

    made = {}

    def spy(name):
        kernel = getattr(dispatch, name)

        def run(*args, **kwargs):
            made[name] = kernel(*args, **kwargs)
            return made[name]
        return run

    monkeypatch.setattr(dispatch, "conv_backward_data", spy("conv_backward_data"))
    monkeypatch.setattr(dispatch, "conv_backward_weight", spy("conv_backward_weight"))
    x = minidl.tensor(rand(2, 3, 6, 6).astype(np.float32), requires_grad=True)
    w = minidl.tensor(rand(4, 3, 3, 3).astype(np.float32), requires_grad=True)
    F.conv2d(x, w, padding=1).sum().backward()
    assert np.shares_memory(x.grad.numpy(), made["conv_backward_data"])
    assert np.shares_memory(w.grad.numpy(), made["conv_backward_weight"])
    F.conv2d(x, w, padding=1).sum().backward()  # accumulates: a new array, the sum
    assert not np.shares_memory(x.grad.numpy(), made["conv_backward_data"])
    np.testing.assert_array_equal(x.grad.numpy(), 2 * made["conv_backward_data"][:, :, 0])


def test_leaves_never_share_a_gradient():
    """Gradients that other nodes or the caller hold are copied: a's and b's of a + b (one
    array passed to both), and a leaf's own seed."""
    a = minidl.tensor(np.ones(3), requires_grad=True)
    b = minidl.tensor(np.ones(3), requires_grad=True)
    seed = np.full(3, 2.0)
    (a + b).backward(seed)
    a.grad.numpy()[:] = 7  # in place: b's gradient and the seed stay as they were
    np.testing.assert_array_equal(b.grad.numpy(), [2.0] * 3)
    np.testing.assert_array_equal(seed, [2.0] * 3)
    c = minidl.tensor(np.ones(3), requires_grad=True)
    c.backward(seed)
    assert not np.shares_memory(c.grad.numpy(), seed)
    x = minidl.tensor(np.ones(3), requires_grad=True)  # x + x: one array summed, owned
    (x + x).backward(seed)
    np.testing.assert_array_equal(x.grad.numpy(), [4.0] * 3)


def test_graph_is_freed_after_backward():
    x = minidl.tensor(np.ones(1000), requires_grad=True)
    big = minidl.tensor(np.ones(1000))
    y = (x * big).sum()
    ref = weakref.ref(big)
    del big
    y.backward()
    gc.collect()
    assert ref() is None, "the graph kept a saved array alive after backward"
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_deep_graph_does_not_overflow():
    x = minidl.tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(20000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad.item() == 1.0


def test_no_grad_and_detach():
    x = minidl.tensor([1.0], requires_grad=True)
    with minidl.no_grad():
        y = x * 2
    assert not y.requires_grad
    assert not (x.detach() * 2).requires_grad
    assert minidl.is_grad_enabled()

    @minidl.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad


def test_backward_needs_scalar_or_grad():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(np.array([1.0, 0.5], np.float32))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(np.ones(3))


def test_grad_is_settable_and_numpy_interop():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    x.grad = minidl.tensor([5.0, 5.0])
    x.grad = None
    assert np.asarray(x).dtype == np.float32
    assert (np.ones(2, np.float32) + x).numpy().tolist() == [2.0, 3.0]
    assert minidl.tensor(3.5).item() == 3.5
    assert (x > 1).numpy().tolist() == [False, True]
    assert x.ndim == 1 and x.shape == (2,) and len(x) == 2
    assert "requires_grad=True" in repr(x)


def test_max_with_dim_returns_values_and_indices():
    x = minidl.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    values, indices = x.max(1)
    assert values.numpy().tolist() == [5.0, 7.0]
    assert indices.numpy().tolist() == [1, 0]
