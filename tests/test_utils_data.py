"""minidl.utils.data against torch.utils.data: collation, batches, lengths, samplers,
random_split and argument errors. The same dataset code feeds both loaders."""

import collections
import warnings

import numpy as np
import pytest

import minidl
import minidl.utils.data as mdata
from minidl import Generator


def _plain(value):
    """A comparable structure: tensors as ('tensor', dtype name, values); containers keep
    their type name."""
    if isinstance(value, minidl.Tensor):
        return ("tensor", str(value.numpy().dtype), value.numpy().tolist())
    if hasattr(value, "detach"):  # torch
        return ("tensor", str(value.detach().numpy().dtype), value.detach().numpy().tolist())
    if isinstance(value, np.ndarray):
        return ("ndarray", str(value.dtype), value.tolist())
    if isinstance(value, dict):
        return (type(value).__name__, {k: _plain(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_plain(v) for v in value])
    return value


Point = collections.namedtuple("Point", "x y")


def _samples(framework):
    """Sample structures for default_collate; ``framework`` makes the tensor samples."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(3)]
    return {
        "array_int_pairs": [(a, i) for i, a in enumerate(arrays)],
        "tensor_int_pairs": [(framework(a), i) for i, a in enumerate(arrays)],
        "float64_arrays": [a.astype(np.float64) for a in arrays],
        "python_floats": [0.5, 1.25, -2.0],
        "python_bools": [True, False, True],
        "numpy_scalars": [(np.float32(1.5), np.float64(2.5), np.int64(3), np.bool_(True),
                           np.int32(4), np.uint8(5))] * 2,
        "int32_arrays": [np.arange(3, dtype=np.int32) + i for i in range(3)],
        "dicts": [{"x": a, "y": float(i), "name": f"s{i}"} for i, a in enumerate(arrays)],
        "nested": [((a, i), {"k": [i, i + 1]}) for i, a in enumerate(arrays)],
        "lists": [[i, float(i)] for i in range(3)],
        "namedtuples": [Point(a, i) for i, a in enumerate(arrays)],
        "strings": ["a", "bc"],
    }


@pytest.mark.parametrize("case", list(_samples(np.asarray)))
def test_default_collate_matches_torch(torch, case):
    from torch.utils.data import default_collate

    ours = mdata.default_collate(_samples(minidl.tensor)[case])
    theirs = default_collate(_samples(torch.from_numpy)[case])
    assert _plain(ours) == _plain(theirs)


@pytest.mark.parametrize("case", list(_samples(np.asarray)))
def test_default_convert_matches_torch(torch, case):
    from torch.utils.data import default_convert

    for ours_sample, their_sample in zip(
        _samples(minidl.tensor)[case], _samples(torch.from_numpy)[case]
    ):
        assert _plain(mdata.default_convert(ours_sample)) == _plain(default_convert(their_sample))


@pytest.mark.parametrize(
    "batch",
    [
        [None, None],
        [(1, 2), (3,)],
        [np.ones(2), np.ones(3)],
        [np.array(["a"]), np.array(["b"])],
        [object(), object()],
    ],
)
def test_default_collate_errors_as_torch(torch, batch):
    from torch.utils.data import default_collate

    with pytest.raises(Exception) as theirs:
        default_collate(batch)
    with pytest.raises(Exception) as ours:
        mdata.default_collate(batch)
    assert type(ours.value) is type(theirs.value)


class Pairs:
    """A map-style dataset written once and given to both loaders: (image, label) pairs."""

    def __init__(self, n):
        rng = np.random.default_rng(1)
        self.x = rng.standard_normal((n, 1, 2, 2)).astype(np.float32)
        self.y = rng.integers(0, 10, n)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


LOADER_CASES = [
    dict(batch_size=4),
    dict(batch_size=4, drop_last=True),
    dict(batch_size=3),
    dict(batch_size=1),
    dict(batch_size=20),
    dict(batch_size=20, drop_last=True),
    dict(batch_size=None),
    dict(batch_size=2, sampler=[9, 0, 3, 3, 5]),
    dict(batch_sampler=[[0, 2], [1], [8, 7, 6]]),
    dict(batch_size=4, num_workers=0, pin_memory=True),
]


@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true")
@pytest.mark.parametrize("kwargs", LOADER_CASES)
def test_loader_batches_and_len_match_torch(torch, kwargs):
    from torch.utils.data import DataLoader

    ours = mdata.DataLoader(Pairs(10), **kwargs)
    theirs = DataLoader(Pairs(10), **kwargs)
    assert len(ours) == len(theirs)
    assert [_plain(b) for b in ours] == [_plain(b) for b in theirs]


@pytest.mark.parametrize("kwargs", [dict(batch_size=4), dict(batch_size=3, drop_last=True),
                                    dict(batch_size=None), dict(batch_size=10)])
def test_tensor_dataset_batches_match_torch(torch, kwargs):
    from torch.utils.data import DataLoader, TensorDataset

    x = np.arange(7 * 3, dtype=np.float64).reshape(7, 3)
    y = np.arange(7) % 3
    ours_ds = mdata.TensorDataset(minidl.tensor(x), minidl.tensor(y))
    theirs_ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    assert len(ours_ds) == len(theirs_ds) == 7
    assert _plain(ours_ds[3]) == _plain(theirs_ds[3])
    expected = [_plain(b) for b in DataLoader(theirs_ds, **kwargs)]
    assert [_plain(b) for b in mdata.DataLoader(ours_ds, **kwargs)] == expected
    # the per-sample path (a collate_fn of one's own) gives the same batches as the fast path
    if kwargs["batch_size"] is not None:
        slow = mdata.DataLoader(ours_ds, collate_fn=lambda b: mdata.default_collate(b), **kwargs)
        assert [_plain(b) for b in slow] == expected


def test_batches_keep_the_graph_and_copy_the_data():
    x = minidl.tensor(np.ones((4, 2)), requires_grad=True)
    ((batch,),) = mdata.DataLoader(mdata.TensorDataset(x), batch_size=4)
    (batch * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((4, 2), 3.0))
    batch.numpy()[...] = 7  # a batch is a copy: the dataset does not change
    np.testing.assert_array_equal(x.numpy(), np.ones((4, 2)))


class Stream(mdata.IterableDataset):
    def __init__(self, n, with_len=True):
        self.n, self.with_len = n, with_len

    def __iter__(self):
        return iter({"v": float(i), "i": i} for i in range(self.n))

    def __len__(self):
        if not self.with_len:
            raise TypeError("no len")
        return self.n


@pytest.mark.parametrize("kwargs", [dict(batch_size=3), dict(batch_size=3, drop_last=True),
                                    dict(batch_size=None)])
def test_iterable_dataset_matches_torch(torch, kwargs):
    from torch.utils.data import DataLoader, IterableDataset

    class TorchStream(IterableDataset):
        __iter__, __len__ = Stream.__iter__, Stream.__len__

        def __init__(self, n):
            self.n, self.with_len = n, True

    ours, theirs = mdata.DataLoader(Stream(7), **kwargs), DataLoader(TorchStream(7), **kwargs)
    assert len(ours) == len(theirs)
    assert [_plain(b) for b in ours] == [_plain(b) for b in theirs]
    with pytest.raises(ValueError, match="shuffle"):
        mdata.DataLoader(Stream(7), shuffle=True)
    with pytest.raises(TypeError):
        len(mdata.DataLoader(Stream(7, with_len=False), batch_size=2))


def _errors():
    return [
        (lambda m: m.DataLoader(Pairs(4), num_workers=-1)),
        (lambda m: m.DataLoader(Pairs(4), timeout=-1)),
        (lambda m: m.DataLoader(Pairs(4), prefetch_factor=2)),
        (lambda m: m.DataLoader(Pairs(4), persistent_workers=True)),
        (lambda m: m.DataLoader(Pairs(4), sampler=[0, 1], shuffle=True)),
        (lambda m: m.DataLoader(Pairs(4), batch_sampler=[[0]], batch_size=2)),
        (lambda m: m.DataLoader(Pairs(4), batch_sampler=[[0]], drop_last=True)),
        (lambda m: m.DataLoader(Pairs(4), batch_size=None, drop_last=True)),
        (lambda m: m.DataLoader(Pairs(4), batch_size=0)),
        (lambda m: m.DataLoader(Pairs(4), batch_size=2.0)),
        (lambda m: m.DataLoader(Pairs(4), batch_size=True)),
        (lambda m: m.BatchSampler([0, 1], 2, drop_last=1)),
        (lambda m: m.RandomSampler(Pairs(4), replacement=1)),
        (lambda m: m.RandomSampler(Pairs(4), num_samples=0)),
        (lambda m: m.random_split(Pairs(4), [2, 1])),
        (lambda m: m.random_split(Pairs(4), [1.5, -0.5])),
        (lambda m: m.Dataset()[0]),
        (lambda m: m.ConcatDataset([])),
    ]


@pytest.mark.parametrize("index", range(len(_errors())))
def test_argument_errors_as_torch(torch, index):
    import torch.utils.data as tdata

    make = _errors()[index]
    with pytest.raises(Exception) as theirs:
        make(tdata)
    with pytest.raises(type(theirs.value)):
        make(mdata)


@pytest.mark.parametrize(
    "n,lengths",
    [
        (10, [0.8, 0.2]),
        (11, [0.3, 0.3, 0.4]),
        (7, [0.5, 0.5]),
        (5, [1.0]),
        (5, [1]),  # an integer 1 summing to 1 is a fraction in torch too
        (3, [0.1, 0.1, 0.8]),
        (10, [3, 7]),
        (4, [0, 4]),
        (101, [0.1] * 10),
    ],
)
def test_random_split_lengths_match_torch(torch, n, lengths):
    from torch.utils.data import random_split

    with warnings.catch_warnings(record=True) as their_warnings:
        warnings.simplefilter("always")
        theirs = random_split(range(n), lengths)
    with warnings.catch_warnings(record=True) as our_warnings:
        warnings.simplefilter("always")
        ours = mdata.random_split(range(n), lengths)
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert [str(w.message) for w in our_warnings] == [str(w.message) for w in their_warnings]
    seen = sorted(i for subset in ours for i in subset)
    assert seen == list(range(n))  # disjoint and covering


def test_random_split_repeats_with_a_generator_or_the_seed():
    first = [list(s) for s in mdata.random_split(range(30), [0.3, 0.3, 0.4],
                                                 generator=Generator().manual_seed(42))]
    again = [list(s) for s in mdata.random_split(range(30), [0.3, 0.3, 0.4],
                                                 generator=Generator().manual_seed(42))]
    other = [list(s) for s in mdata.random_split(range(30), [0.3, 0.3, 0.4],
                                                 generator=Generator().manual_seed(43))]
    assert first == again and first != other
    assert first != [list(range(9)), list(range(9, 18)), list(range(18, 30))]
    minidl.manual_seed(5)
    a = [list(s) for s in mdata.random_split(range(30), [10, 20])]
    minidl.manual_seed(5)
    assert [list(s) for s in mdata.random_split(range(30), [10, 20])] == a


def test_subset_and_concat_match_torch(torch):
    import torch.utils.data as tdata

    ours = mdata.Subset(Pairs(10), [7, 2, 2])
    theirs = tdata.Subset(Pairs(10), [7, 2, 2])
    assert len(ours) == len(theirs) == 3
    assert [_plain(ours[i]) for i in range(3)] == [_plain(theirs[i]) for i in range(3)]
    assert [_plain(b) for b in mdata.DataLoader(ours, batch_size=2)] == [
        _plain(b) for b in tdata.DataLoader(theirs, batch_size=2)
    ]
    tensor_subset = mdata.Subset(mdata.TensorDataset(np.arange(5.0)), [4, 0])
    assert [_plain(b) for b in mdata.DataLoader(tensor_subset, batch_size=2)] == [
        ("list", [("tensor", "float64", [4.0, 0.0])])
    ]

    class Numbers(mdata.Dataset):
        def __init__(self, values):
            self.values = values

        def __len__(self):
            return len(self.values)

        def __getitem__(self, i):
            return self.values[i]

    both = Numbers([1, 2]) + Numbers([3, 4, 5])
    assert isinstance(both, mdata.ConcatDataset) and len(both) == 5
    assert [both[i] for i in range(-5, 5)] == [1, 2, 3, 4, 5] * 2
    assert _plain(next(iter(mdata.DataLoader(both, batch_size=5)))) == (
        "tensor", "int64", [1, 2, 3, 4, 5]
    )


def _epoch(loader):
    return [int(v) for _, y in loader for v in y.numpy()]


def test_shuffle_orders():
    data = (np.zeros((50, 2), np.float32), np.arange(50))
    loader = mdata.DataLoader(mdata.TensorDataset(*data), batch_size=8, shuffle=True)
    minidl.manual_seed(3)
    first, second = _epoch(loader), _epoch(loader)
    assert sorted(first) == list(range(50)) and first != list(range(50)) and first != second
    minidl.manual_seed(3)
    assert _epoch(loader) == first and _epoch(loader) == second
    seeded = [_epoch(mdata.DataLoader(mdata.TensorDataset(*data), batch_size=8, shuffle=True,
                                      generator=Generator().manual_seed(1))) for _ in range(2)]
    assert seeded[0] == seeded[1] != first
    sampler = mdata.RandomSampler(range(4), num_samples=10, generator=Generator())
    drawn = list(sampler)
    assert len(drawn) == len(sampler) == 10 and sorted(drawn[:8]) == [0, 0, 1, 1, 2, 2, 3, 3]
    with_replacement = list(mdata.RandomSampler(range(3), replacement=True, num_samples=40))
    assert len(with_replacement) == 40 and set(with_replacement) == {0, 1, 2}
    subset = list(mdata.SubsetRandomSampler([10, 20, 30]))
    assert sorted(subset) == [10, 20, 30]


def test_workers_load_in_the_main_process():
    calls = []
    loader = mdata.DataLoader(Pairs(6), batch_size=4, num_workers=3, pin_memory=True,
                              worker_init_fn=calls.append, persistent_workers=True)
    assert loader.prefetch_factor == 2
    plain = mdata.DataLoader(Pairs(6), batch_size=4)
    assert [_plain(b) for b in loader] == [_plain(b) for b in plain]
    assert calls == [] and mdata.get_worker_info() is None


def test_generator_type_is_checked_and_seeds_chain():
    with pytest.raises(TypeError, match="generator must be"):
        mdata.DataLoader(Pairs(3), shuffle=True, generator=42)
    g = Generator()
    assert g.manual_seed(7) is g and g.initial_seed() == 7
    assert Generator().initial_seed() == Generator().initial_seed()
    assert Generator().manual_seed(-1).initial_seed() == 2**64 - 1
    with pytest.raises(RuntimeError, match="CPU only"):
        Generator("cuda")
