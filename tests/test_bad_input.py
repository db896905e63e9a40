"""Bad input to the public API raises TypeError / ValueError naming the rule, never an internal
AttributeError, IndexError, KeyError or numpy error; where PyTorch raises the same exception
type for the same mistake (run live), the test says so."""

from __future__ import annotations

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import data, nn, optim


def T(*shape):
    return minidl.tensor(np.zeros(shape, np.float32))


def P(*shape):
    return nn.Parameter(np.zeros(shape, np.float32))


# (id, minidl call, exception, words of the message, the same mistake in torch or None)
# torch's call gets the torch module; None where torch raises another type (it often leaks an
# AttributeError from inside) or has no such API.
CASES = [
    # ---- a module called on a Python list ----
    ("Linear(list)", lambda: nn.Linear(2, 3)([1.0, 2.0]), TypeError,
     "linear: input must be a minidl Tensor, got list", lambda t: t.nn.Linear(2, 3)([1.0, 2.0])),
    ("ReLU(list)", lambda: nn.ReLU()([1.0]), TypeError,
     "relu: input must be a minidl Tensor, got list", lambda t: t.nn.ReLU()([1.0])),
    ("Sigmoid(list)", lambda: nn.Sigmoid()([1.0]), TypeError,
     "sigmoid: input must be a minidl Tensor, got list", lambda t: t.nn.Sigmoid()([1.0])),
    ("Tanh(list)", lambda: nn.Tanh()([1.0]), TypeError,
     "tanh: input must be a minidl Tensor, got list", lambda t: t.nn.Tanh()([1.0])),
    ("GELU(list)", lambda: nn.GELU()([1.0]), TypeError, "gelu: input must be a minidl Tensor",
     lambda t: t.nn.GELU()([1.0])),
    ("Dropout(list)", lambda: nn.Dropout()([1.0]), TypeError,
     "dropout: input must be a minidl Tensor", lambda t: t.nn.Dropout()([1.0])),
    ("Softmax(list)", lambda: nn.Softmax(0)([1.0]), TypeError,
     "softmax: input must be a minidl Tensor", None),
    ("Flatten(list)", lambda: nn.Flatten()([1.0]), TypeError,
     "flatten: input must be a minidl Tensor", None),
    ("MaxPool2d(list)", lambda: nn.MaxPool2d(2)([[[1.0]]]), TypeError,
     "max_pool2d: input must be a minidl Tensor", lambda t: t.nn.MaxPool2d(2)([[[1.0]]])),
    ("BatchNorm2d(list)", lambda: nn.BatchNorm2d(1)([[[[1.0]]]]), TypeError,
     "BatchNorm2d: input must be a minidl Tensor", None),
    ("ConvTranspose2d(list)", lambda: nn.ConvTranspose2d(1, 1, 1)([[[[1.0]]]]), TypeError,
     "conv_transpose2d: input must be a minidl Tensor",
     lambda t: t.nn.ConvTranspose2d(1, 1, 1)([[[[1.0]]]])),
    ("MSELoss(list)", lambda: nn.MSELoss()([1.0], [1.0]), TypeError,
     "mse_loss: input must be a minidl Tensor", None),
    ("F.relu(ndarray)", lambda: F.relu(np.ones(2)), TypeError,
     "relu: input must be a minidl Tensor, got ndarray",
     lambda t: t.nn.functional.relu(np.ones(2))),
    # ---- functional arguments of the wrong type ----
    ("softmax dim str", lambda: F.softmax(T(2, 3), "a"), TypeError, "dim must be an int, got 'a'",
     lambda t: t.nn.functional.softmax(t.zeros(2, 3), "a")),
    ("log_softmax dim float", lambda: F.log_softmax(T(2, 3), 1.5), TypeError,
     "dim must be an int, got 1.5", lambda t: t.nn.functional.log_softmax(t.zeros(2, 3), 1.5)),
    ("flatten start_dim str", lambda: F.flatten(T(2, 3), "a"), TypeError,
     "start_dim must be an int", lambda t: t.flatten(t.zeros(2, 3), "a")),
    ("dropout p str", lambda: F.dropout(T(2), "a"), TypeError, "p must be a number, got 'a'",
     lambda t: t.nn.functional.dropout(t.zeros(2), "a")),
    ("Dropout(p str)", lambda: nn.Dropout("a"), TypeError, "p must be a number",
     lambda t: t.nn.Dropout("a")),
    ("leaky_relu slope str", lambda: F.leaky_relu(T(2), "a"), TypeError,
     "negative_slope must be a number, got 'a'",
     lambda t: t.nn.functional.leaky_relu(t.zeros(2), "a")),
    ("cross_entropy label_smoothing str",
     lambda: F.cross_entropy(T(2, 3), minidl.tensor([0, 1]), label_smoothing="a"), TypeError,
     "label_smoothing must be a float, got 'a'",
     lambda t: t.nn.functional.cross_entropy(t.zeros(2, 3), t.tensor([0, 1]),
                                             label_smoothing="a")),
    ("cross_entropy weight str",
     lambda: F.cross_entropy(T(2, 3), minidl.tensor([0, 1]), weight="abc"), TypeError,
     "weight must be a float tensor of class weights, got 'abc'",
     lambda t: t.nn.functional.cross_entropy(t.zeros(2, 3), t.tensor([0, 1]), weight="abc")),
    ("nll_loss ignore_index str",
     lambda: F.nll_loss(T(2, 3), minidl.tensor([0, 1]), ignore_index="a"), TypeError,
     "ignore_index must be an int, got 'a'",
     lambda t: t.nn.functional.nll_loss(t.zeros(2, 3), t.tensor([0, 1]), ignore_index="a")),
    # ---- layer constructors ----
    ("Linear(str)", lambda: nn.Linear("a", 3), TypeError, "in_features must be an int, got 'a'",
     lambda t: t.nn.Linear("a", 3)),
    ("Linear(float)", lambda: nn.Linear(2, 2.5), TypeError, "out_features must be an int",
     lambda t: t.nn.Linear(2, 2.5)),
    ("Linear(-1)", lambda: nn.Linear(-1, 3), ValueError, "in_features must be >= 0, got -1",
     None),  # torch: RuntimeError from torch.empty
    ("BatchNorm2d(str)", lambda: nn.BatchNorm2d("a"), TypeError,
     "BatchNorm2d: num_features must be an int", lambda t: t.nn.BatchNorm2d("a")),
    ("BatchNorm1d(-2)", lambda: nn.BatchNorm1d(-2), ValueError,
     "BatchNorm1d: num_features must be >= 0, got -2", None),
    # ---- Module API ----
    ("load_state_dict(list)", lambda: nn.Linear(2, 3).load_state_dict([1]), TypeError,
     "Expected state_dict to be dict-like, got <class 'list'>.",
     lambda t: t.nn.Linear(2, 3).load_state_dict([1])),
    ("load_state_dict(None)", lambda: nn.Linear(2, 3).load_state_dict(None), TypeError,
     "Expected state_dict to be dict-like, got <class 'NoneType'>.",
     lambda t: t.nn.Linear(2, 3).load_state_dict(None)),
    ("load_state_dict entry str",
     lambda: nn.Linear(2, 3).load_state_dict({"weight": "abc", "bias": np.zeros(3)}),
     TypeError, "'weight' must be an array or tensor of numbers, got str", None),
    ("add_module(int)", lambda: nn.Sequential().add_module("a", 3), TypeError,
     "int is not a Module subclass", lambda t: t.nn.Sequential().add_module("a", 3)),
    ("add_module(name int)", lambda: nn.Sequential().add_module(1, nn.ReLU()), TypeError,
     "module name should be a string. Got int",
     lambda t: t.nn.Sequential().add_module(1, t.nn.ReLU())),
    ("Sequential(int)", lambda: nn.Sequential(3), TypeError, "int is not a Module subclass",
     lambda t: t.nn.Sequential(3)),
    ("register_parameter(ndarray)", lambda: nn.Module().register_parameter("a", np.ones(2)),
     TypeError, "cannot assign 'ndarray' object to parameter 'a'",
     lambda t: t.nn.Module().register_parameter("a", t.ones(2))),
    ("Sequential[5]", lambda: nn.Sequential(nn.ReLU())[5], IndexError,
     "index 5 is out of range for a Sequential of 1", lambda t: t.nn.Sequential(t.nn.ReLU())[5]),
    ("Module.to(int64)", lambda: nn.Linear(2, 2).to(np.int64), TypeError,
     "nn.Module.to only accepts floating point dtypes, but got desired dtype=int64",
     lambda t: t.nn.Linear(2, 2).to(t.int64)),
    # ---- optimizers and schedulers ----
    ("SGD(None)", lambda: optim.SGD(None), TypeError,
     "should be an iterable of Tensors or dicts, but got NoneType", lambda t: t.optim.SGD(None)),
    ("SGD(lr str)", lambda: optim.SGD([P(2)], lr="a"), TypeError,
     "Invalid learning rate: 'a' (expected a number)",
     lambda t: t.optim.SGD([t.nn.Parameter(t.zeros(2))], lr="a")),
    ("SGD(lr None)", lambda: optim.SGD([P(2)], lr=None), TypeError,
     "Invalid learning rate: None", lambda t: t.optim.SGD([t.nn.Parameter(t.zeros(2))], lr=None)),
    ("SGD(momentum str)", lambda: optim.SGD([P(2)], momentum="a"), TypeError,
     "Invalid momentum value: 'a'",
     lambda t: t.optim.SGD([t.nn.Parameter(t.zeros(2))], momentum="a")),
    ("Adam(eps str)", lambda: optim.Adam([P(2)], eps="a"), TypeError, "Invalid epsilon value",
     lambda t: t.optim.Adam([t.nn.Parameter(t.zeros(2))], eps="a")),
    ("Adam(betas float)", lambda: optim.Adam([P(2)], betas=0.9), TypeError,
     "Invalid betas: 0.9 (expected a pair of floats)",
     lambda t: t.optim.Adam([t.nn.Parameter(t.zeros(2))], betas=0.9)),
    ("Adam(betas str)", lambda: optim.Adam([P(2)], betas=("a", 0.9)), TypeError,
     "Invalid beta parameter at index 0: 'a' (expected a number)",
     lambda t: t.optim.Adam([t.nn.Parameter(t.zeros(2))], betas=("a", 0.9))),
    ("Adam(betas 1-tuple)", lambda: optim.Adam([P(2)], betas=(0.9,)), ValueError,
     "Invalid betas: (0.9,) (expected a pair of floats)", None),  # torch: IndexError inside
    ("SGD(named params 1-tuple)", lambda: optim.SGD([("w",)]), TypeError,
     "named optimizer params must be (name, tensor) pairs", None),  # torch: IndexError inside
    ("optimizer.load_state_dict(list)", lambda: optim.SGD([P(2)]).load_state_dict([1]),
     TypeError, "expects a dict with the keys 'state' and 'param_groups', got list",
     lambda t: t.optim.SGD([t.nn.Parameter(t.zeros(2))]).load_state_dict([1])),
    ("optimizer.load_state_dict(state list)",
     lambda: optim.SGD([P(2)]).load_state_dict({"state": [], "param_groups": [{"params": [0]}]}),
     TypeError, "'state' maps parameter indices to dicts, got list", None),
    ("optimizer.load_state_dict(group without params)",
     lambda: optim.SGD([P(2)]).load_state_dict({"state": {}, "param_groups": [{"lr": 0.1}]}),
     ValueError, "the saved parameter group 0 has no 'params' entry", None),
    ("StepLR.load_state_dict(list)",
     lambda: optim.lr_scheduler.StepLR(optim.SGD([P(2)]), 1).load_state_dict([1]), TypeError,
     "StepLR.load_state_dict expects the dict that state_dict() returned, got list",
     lambda t: t.optim.lr_scheduler.StepLR(
         t.optim.SGD([t.nn.Parameter(t.zeros(2))]), 1).load_state_dict([1])),
    # ---- gradient utilities ----
    ("clip_grad_norm_(int)", lambda: nn.utils.clip_grad_norm_(3, 1.0), TypeError,
     "expected a minidl Tensor or an iterable of them, got int",
     lambda t: t.nn.utils.clip_grad_norm_(3, 1.0)),
    ("clip_grad_norm_([ndarray])", lambda: nn.utils.clip_grad_norm_([np.ones(2)], 1.0),
     TypeError, "parameters must be minidl Tensors (model.parameters()), got a ndarray", None),
    ("parameters_to_vector([ndarray])", lambda: nn.utils.parameters_to_vector([np.ones(2)]),
     TypeError, "parameters must be minidl Tensors", None),
    ("vector_to_parameters(.., [ndarray])",
     lambda: nn.utils.vector_to_parameters(T(2), [np.ones(2)]), TypeError,
     "parameters must be minidl Tensors", None),
    # ---- seeds and data ----
    ("manual_seed(str)", lambda: minidl.manual_seed("a"), TypeError,
     "manual_seed: seed must be an int, got 'a'", None),  # torch: ValueError from int('a')
    ("DataLoader(seed str)", lambda: data.DataLoader(np.ones(3), shuffle=True, seed="a"),
     TypeError, "seed must be an int or None, got 'a'", None),
    ("default_collate([])", lambda: data.default_collate([]), ValueError,
     "default_collate needs at least one sample", None),  # torch: IndexError inside
    ("default_collate(ragged)", lambda: data.default_collate([np.ones(2), np.ones(3)]),
     RuntimeError, "stack expects each tensor to be equal size, but got [2] at entry 0 and [3] "
     "at entry 1", None),  # torch's type and message (issue 11: new API = PyTorch's errors)
]


def _ids(cases):
    return [case[0] for case in cases]


@pytest.mark.parametrize("name, call, error, words, _", CASES, ids=_ids(CASES))
def test_bad_input_raises_a_clear_type_or_value_error(name, call, error, words, _):
    with pytest.raises(error) as raised:
        call()
    assert type(raised.value) is error, f"{name}: {type(raised.value).__name__} {raised.value}"
    assert words in str(raised.value)


WITH_TORCH = [case for case in CASES if case[4] is not None]


@pytest.mark.parametrize("name, call, error, words, torch_call", WITH_TORCH, ids=_ids(WITH_TORCH))
def test_torch_raises_the_same_exception_type(torch, name, call, error, words, torch_call):
    with pytest.raises(error):
        torch_call(torch)


def test_load_state_dict_on_a_non_mapping_says_what_torch_says(torch):
    with pytest.raises(TypeError) as ours:
        nn.Linear(2, 3).load_state_dict([("weight", np.zeros((3, 2)))])
    with pytest.raises(TypeError) as theirs:
        torch.nn.Linear(2, 3).load_state_dict([("weight", torch.zeros(3, 2))])
    assert str(ours.value) == str(theirs.value)


def test_load_state_dict_ignores_unexpected_non_array_entries_when_not_strict():
    layer = nn.Linear(2, 3)
    state = {**layer.state_dict(), "epoch": "three"}
    missing, unexpected = nn.Linear(2, 3).load_state_dict(state, strict=False)
    assert (missing, unexpected) == ([], ["epoch"])


def test_load_of_a_missing_file_or_a_directory_raises_what_torch_raises(torch, tmp_path):
    for path, error in ((tmp_path / "missing.npz", FileNotFoundError),
                        (tmp_path, IsADirectoryError)):
        with pytest.raises(error):
            minidl.load(path)
        with pytest.raises(error):
            torch.load(path)


def test_load_of_a_single_npy_array_says_it_is_not_a_checkpoint(tmp_path):
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"holds one array \(\.npy\), not a mapping"):
        minidl.load(tmp_path / "one.npy")


def test_save_of_a_ragged_entry_names_the_key(tmp_path):
    with pytest.raises(TypeError, match="'w' is not an array or a number"):
        minidl.save({"w": [[1.0], [1.0, 2.0]]}, tmp_path / "x.npz")


def test_negative_seeds_are_accepted_as_in_torch(torch):
    torch.manual_seed(-1)  # torch takes negative seeds modulo 2**64
    first = minidl.manual_seed(-1).random(3)
    np.testing.assert_array_equal(minidl.manual_seed(2**64 - 1).random(3), first)
