"""``torch.utils.data`` for minidl: datasets, samplers, collation and the DataLoader.

The names, arguments, defaults, batch structure and errors are PyTorch's:

* map-style :class:`Dataset` (``ds[i]``, ``len(ds)``; ``ds1 + ds2`` concatenates),
  :class:`IterableDataset` (``iter(ds)``), :class:`TensorDataset`, :class:`Subset`,
  :class:`ConcatDataset`, :func:`random_split` (lengths or fractions);
* samplers: :class:`SequentialSampler`, :class:`RandomSampler`, :class:`SubsetRandomSampler`,
  :class:`BatchSampler`;
* :func:`default_collate` (PyTorch's rules: tensors and numpy arrays are stacked, Python ints
  become int64, floats float64, bools bool, strings stay lists; tuples become lists, dicts
  and namedtuples keep their type) and :func:`default_convert`;
* :class:`DataLoader`.

Where minidl differs: data always load in the main process (``num_workers`` is accepted and
validated but starts no worker, so ``worker_init_fn`` is never called and
:func:`get_worker_info` returns None), ``pin_memory`` has no effect (there is no accelerator
memory to pin), and the random orders come from numpy generators, so they differ from
PyTorch's (``minidl.manual_seed`` or a ``generator=`` repeats them in minidl).
"""

from __future__ import annotations

import bisect
import collections.abc
import copy
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from .._generator import numpy_generator
from ..tensor import Tensor, stack

__all__ = [
    "BatchSampler",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "default_collate",
    "default_convert",
    "get_worker_info",
    "random_split",
]

T_co = TypeVar("T_co", covariant=True)


class _SizeMismatch(ValueError, AssertionError):
    """A ValueError that PyTorch raises as an AssertionError: either ``except`` catches it."""


# ---- datasets ------------------------------------------------------------------------------
class Dataset(Generic[T_co]):
    """A map-style dataset: subclasses define ``__getitem__`` (and usually ``__len__``)."""

    def __getitem__(self, index: Any) -> T_co:
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other: Dataset[T_co]) -> ConcatDataset[T_co]:
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co], Iterable[T_co]):
    """A dataset that is a stream: subclasses define ``__iter__``. The DataLoader batches the
    samples in the order the iterator yields them (no shuffling, no sampler)."""

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other: Dataset[T_co]) -> Any:
        raise NotImplementedError("minidl has no ChainDataset: chain the iterators yourself")


def _as_tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, Tensor):
        tensor = value
    elif hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        tensor = Tensor(value.detach().cpu().numpy())
    else:
        tensor = Tensor(np.asarray(value))
    if tensor.ndim == 0:
        raise ValueError(f"{name} must have a first (sample) dimension, got a 0-d tensor")
    return tensor


class TensorDataset(Dataset[tuple[Tensor, ...]]):
    """Samples are rows of equally long tensors: ``ds[i] == (a[i], b[i], ...)``.

    Takes minidl Tensors (numpy arrays are accepted and wrapped, as ``minidl.tensor`` would)."""

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        self.tensors = tuple(_as_tensor(t, f"tensor {i}") for i, t in enumerate(tensors))
        lengths = [t.shape[0] for t in self.tensors]
        if len(set(lengths)) != 1:
            raise _SizeMismatch(
                "Size mismatch between tensors: first dimensions "
                f"{lengths} (shapes {[t.shape for t in self.tensors]})"
            )

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset[T_co]):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset[T_co], indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx: Any) -> T_co:
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list[int]) -> list[T_co]:
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset[T_co]):
    """The samples of several map-style datasets one after another."""

    def __init__(self, datasets: Iterable[Dataset[T_co]]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise _SizeMismatch("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int) -> T_co:
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][idx - start]


def _permutation(n: int, generator: Any) -> list[int]:
    return numpy_generator(generator).permutation(n).tolist()


def random_split(
    dataset: Dataset[T_co], lengths: Sequence[int | float], generator: Any = None
) -> list[Subset[T_co]]:
    """Split ``dataset`` at random into non-overlapping :class:`Subset` s of the given lengths,
    or fractions summing to 1 (``floor(fraction * len)`` each, the remainder handed out one
    by one from the first split on, as PyTorch does). ``generator`` (a :class:`minidl.Generator`
    or a numpy Generator) fixes the permutation; by default minidl's global generator draws it."""
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, fraction in enumerate(lengths):
            if fraction < 0 or fraction > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            counts.append(math.floor(len(dataset) * fraction))
        for i in range(len(dataset) - sum(counts)):
            counts[i % len(counts)] += 1
        for i, count in enumerate(counts):
            if count == 0:
                warnings.warn(
                    f"Length of split at index {i} is 0. This might result in an empty dataset.",
                    stacklevel=2,
                )
        lengths = counts
    if sum(lengths) != len(dataset):
        raise ValueError(
            "Sum of input lengths does not equal the length of the input dataset! "
            f"(lengths {lengths} sum to {sum(lengths)}, the dataset has {len(dataset)} samples)"
        )
    order = _permutation(sum(lengths), generator)
    offsets = np.cumsum(lengths).tolist()
    return [
        Subset(dataset, order[end - length : end])
        for length, end in zip(lengths, offsets, strict=True)
    ]


# ---- samplers ------------------------------------------------------------------------------
class Sampler(Generic[T_co]):
    """Yields the indices (or lists of indices) a DataLoader fetches; subclasses define
    ``__iter__`` and usually ``__len__``."""

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError


class SequentialSampler(Sampler[int]):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """A new random permutation of the indices every epoch (``num_samples`` of them, repeating
    whole permutations if more than the dataset's length), or ``num_samples`` independent
    draws with ``replacement=True``. Draws from ``generator``, or from minidl's global
    generator when there is none (so ``minidl.manual_seed`` repeats the order)."""

    def __init__(
        self,
        data_source: Any,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: Any = None,
    ) -> None:
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError(
                f"replacement should be a boolean value, but got replacement={replacement}"
            )
        count = self.num_samples
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise ValueError(
                f"num_samples should be a positive integer value, but got num_samples={count}"
            )

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        rng = numpy_generator(self.generator)
        if self.replacement:
            yield from rng.integers(0, n, size=self.num_samples).tolist()
            return
        for _ in range(self.num_samples // n):
            yield from rng.permutation(n).tolist()
        if self.num_samples % n:
            yield from rng.permutation(n)[: self.num_samples % n].tolist()

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """The given indices in a new random order every epoch."""

    def __init__(self, indices: Sequence[int], generator: Any = None) -> None:
        self.indices = indices
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        for i in _permutation(len(self.indices), self.generator):
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler[list[int]]):
    """Groups another sampler's indices into lists of ``batch_size`` (the last one shorter
    unless ``drop_last``)."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(
                f"batch_size should be a positive integer value, but got batch_size={batch_size}"
            )
        if not isinstance(drop_last, bool):
            raise ValueError(
                f"drop_last should be a boolean value, but got drop_last={drop_last}"
            )
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size


# ---- collation -----------------------------------------------------------------------------
_COLLATE_ERROR = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
)


def _is_text_or_object(array: np.ndarray) -> bool:
    return array.dtype.kind in "SaUO"


def _stack_tensors(batch: Sequence[Tensor]) -> Tensor:
    shapes = [t.shape for t in batch]
    for i, shape in enumerate(shapes):
        if shape != shapes[0]:
            raise RuntimeError(
                "stack expects each tensor to be equal size, but got "
                f"{list(shapes[0])} at entry 0 and {list(shape)} at entry {i}"
            )
    return stack(batch)


def _collate_arrays(batch: Sequence[Any]) -> Tensor:
    arrays = [np.asarray(a) for a in batch]
    if _is_text_or_object(arrays[0]):
        raise TypeError(_COLLATE_ERROR.format(arrays[0].dtype))
    return _stack_tensors([Tensor(a) for a in arrays])


def default_collate(batch: Sequence[Any]) -> Any:
    """Merge a list of samples into a batch, by the type of the first sample (PyTorch's
    ``default_collate``):

    * minidl Tensors, numpy arrays -> one Tensor with a new leading dimension (same dtype);
    * numpy scalars -> a Tensor of their dtype; Python ``float`` -> float64, ``int`` ->
      int64, ``bool`` -> bool;
    * ``str`` / ``bytes`` -> the list unchanged;
    * dicts (mappings) -> the same type, collated key by key; namedtuples -> the same type;
      tuples -> a *list* of collated fields; other sequences -> the same type, field by field.
    """
    if len(batch) == 0:
        raise ValueError("default_collate needs at least one sample, got an empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, np.ndarray):
        return _collate_arrays(batch)
    if isinstance(elem, (np.bool_, np.number)):
        return Tensor(np.array(batch))
    if isinstance(elem, bool):
        return Tensor(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return _rebuild_mapping(elem, {key: default_collate([d[key] for d in batch])
                                       for key in elem})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        fields = zip(*batch, strict=False)  # as PyTorch: the shortest sample decides
        return type(elem)(*(default_collate(list(field)) for field in fields))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(sample) != size for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(list(field)) for field in zip(*batch, strict=True)]
        return fields if isinstance(elem, tuple) else _rebuild_sequence(elem, fields)
    raise TypeError(_COLLATE_ERROR.format(type(elem)))


def default_convert(data: Any) -> Any:
    """Turn numpy arrays and scalars into Tensors, through mappings, namedtuples, tuples (which
    become lists) and sequences; everything else is returned unchanged. The DataLoader applies
    it to each sample when ``batch_size=None`` (no batching)."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if _is_text_or_object(data) else Tensor(data)
    if isinstance(data, (np.bool_, np.number)):
        return Tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return _rebuild_mapping(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild_sequence(data, [default_convert(d) for d in data])
    return data


def _rebuild_mapping(like: Any, values: dict[Any, Any]) -> Any:
    try:
        if isinstance(like, collections.abc.MutableMapping):
            clone = copy.copy(like)
            clone.update(values)
            return clone
        return type(like)(values)
    except TypeError:
        return values


def _rebuild_sequence(like: Any, values: list[Any]) -> Any:
    try:
        if isinstance(like, collections.abc.MutableSequence):
            clone = copy.copy(like)
            for i, value in enumerate(values):
                clone[i] = value
            return clone
        return type(like)(values)
    except TypeError:
        return values


def get_worker_info() -> None:
    """None: minidl's DataLoader loads in the main process, never in a worker."""
    return None


# ---- the loader ----------------------------------------------------------------------------
def _batched_rows(dataset: Any) -> tuple[tuple[Tensor, ...], bool] | None:
    """The tensors a batch can be cut from by one fancy index (and whether a batch is a single
    tensor rather than a list), for datasets whose samples are plain rows."""
    if isinstance(dataset, np.ndarray) and not _is_text_or_object(dataset) and dataset.ndim:
        return (Tensor(dataset),), True
    if isinstance(dataset, Tensor) and dataset.ndim:
        return (dataset,), True
    if type(dataset) is TensorDataset:
        return dataset.tensors, False
    return None


class DataLoader(Generic[T_co]):
    """Iterate over ``dataset`` in batches, as ``torch.utils.data.DataLoader``.

    Args:
        dataset: a map-style :class:`Dataset` (anything with ``__getitem__`` and ``__len__``:
            a list, a numpy array, a Tensor) or an :class:`IterableDataset`.
        batch_size: samples per batch (default 1); ``None`` disables batching (each sample is
            passed through :func:`default_convert`, or ``collate_fn``).
        shuffle: a new random order every epoch (from ``generator``, else from minidl's
            global generator, which ``minidl.manual_seed`` seeds).
        sampler / batch_sampler: where the indices come from (exclusive with ``shuffle``;
            ``batch_sampler`` also with ``batch_size`` and ``drop_last``).
        num_workers: accepted (must be >= 0) but every batch is loaded in the main process:
            minidl starts no workers, calls no ``worker_init_fn``, and ``prefetch_factor`` /
            ``persistent_workers`` are only validated as PyTorch does.
        collate_fn: merges a list of samples into a batch (default :func:`default_collate`).
        pin_memory: accepted, no effect (minidl runs on the CPU; there is no device memory).
        drop_last: drop a final batch shorter than ``batch_size``.
        timeout: accepted (must be >= 0); loading never waits on a worker.
        generator: a :class:`minidl.Generator` or a numpy ``Generator`` for the shuffling.
        seed: minidl's shortcut for ``generator=numpy.random.default_rng(seed)``.

    A batch of a :class:`TensorDataset` (or of a numpy array or a Tensor used directly as the
    dataset) is cut with one fancy index instead of a per-sample loop; the result is the same
    as collating the samples. minidl also takes a tuple of equally long arrays or Tensors as
    ``TensorDataset(*arrays)`` (in PyTorch a tuple is a dataset of ``len(tuple)`` samples).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Iterable[Any] | None = None,
        batch_sampler: Iterable[list[Any]] | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: Any = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        in_order: bool = True,
        seed: int | None = None,
    ) -> None:
        _check_worker_options(num_workers, timeout, prefetch_factor, persistent_workers)
        self.dataset = dataset = _checked_dataset(dataset)
        self._rows = _batched_rows(dataset)
        self.generator = generator = _generator_or_seed(generator, seed)
        self.num_workers, self.timeout = num_workers, timeout
        self.prefetch_factor = 2 if num_workers > 0 and prefetch_factor is None else prefetch_factor
        self.pin_memory, self.pin_memory_device = pin_memory, pin_memory_device
        self.worker_init_fn, self.multiprocessing_context = worker_init_fn, multiprocessing_context
        self.persistent_workers, self.in_order = persistent_workers, in_order
        if isinstance(dataset, IterableDataset):
            _check_iterable_options(shuffle, sampler, batch_sampler)
        shuffle = bool(shuffle)
        batch_size, drop_last = _check_batching(batch_size, shuffle, sampler, batch_sampler,
                                                drop_last)
        if sampler is None and not isinstance(dataset, IterableDataset):
            sampler = (
                RandomSampler(dataset, generator=generator) if shuffle
                else SequentialSampler(dataset)
            )
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler if sampler is not None else [], batch_size,
                                         drop_last)
        self.batch_size, self.drop_last = batch_size, drop_last
        self.sampler, self.batch_sampler = sampler, batch_sampler
        auto = batch_sampler is not None
        self.collate_fn = collate_fn or (default_collate if auto else default_convert)

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    def __len__(self) -> int:
        if isinstance(self.dataset, IterableDataset):
            length = len(self.dataset)
            if self.batch_size is None:
                return length
            if self.drop_last:
                return length // self.batch_size
            return math.ceil(length / self.batch_size)
        index_sampler = self.batch_sampler if self._auto_collation else self.sampler
        return len(index_sampler)

    def __iter__(self) -> Iterator[Any]:
        if isinstance(self.dataset, IterableDataset):
            return self._iter_stream()
        if not self._auto_collation:
            return (self.collate_fn(self.dataset[i]) for i in self.sampler)
        return (self._fetch(batch) for batch in self.batch_sampler)

    def _fetch(self, indices: list[Any]) -> Any:
        if self._rows is not None and self.collate_fn is default_collate and indices:
            tensors, single = self._rows
            index = np.asarray(indices, dtype=np.int64)
            batch = [t[index] for t in tensors]
            return batch[0] if single else batch
        getitems = getattr(self.dataset, "__getitems__", None)
        if callable(getitems):
            return self.collate_fn(getitems(indices))
        return self.collate_fn([self.dataset[i] for i in indices])

    def _iter_stream(self) -> Iterator[Any]:
        if not self._auto_collation:
            for sample in self.dataset:
                yield self.collate_fn(sample)
            return
        batch: list[Any] = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __repr__(self) -> str:
        return (
            f"DataLoader(dataset={type(self.dataset).__name__}, batch_size={self.batch_size}, "
            f"shuffle={isinstance(self.sampler, RandomSampler)}, drop_last={self.drop_last})"
        )


def _check_worker_options(
    num_workers: int, timeout: float, prefetch_factor: int | None, persistent_workers: bool
) -> None:
    if num_workers < 0:
        raise ValueError(
            "num_workers option should be non-negative; use num_workers=0 to disable "
            "multiprocessing."
        )
    if timeout < 0:
        raise ValueError("timeout option should be non-negative")
    if num_workers == 0 and prefetch_factor is not None:
        raise ValueError(
            "prefetch_factor option could only be specified in multiprocessing. Let "
            "num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None."
        )
    if prefetch_factor is not None and prefetch_factor < 0:
        raise ValueError("prefetch_factor option should be non-negative")
    if persistent_workers and num_workers == 0:
        raise ValueError("persistent_workers option needs num_workers > 0")


def _checked_dataset(dataset: Any) -> Any:
    dataset = _tuple_of_arrays(dataset)
    if not isinstance(dataset, IterableDataset) and not (
        hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")
    ):
        raise TypeError(
            "DataLoader needs a dataset with __getitem__ and __len__ (or an IterableDataset), "
            f"got {type(dataset).__name__}"
        )
    return dataset


def _generator_or_seed(generator: Any, seed: int | None) -> Any:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"DataLoader: seed must be an int or None, got {seed!r}")
    if seed is not None:
        if generator is not None:
            raise ValueError("give DataLoader a generator or a seed, not both")
        return np.random.default_rng(seed)
    if generator is not None:
        numpy_generator(generator)  # rejects other types now, not at the first epoch
    return generator


def _check_batching(batch_size: Any, shuffle: bool, sampler: Any, batch_sampler: Any,
                    drop_last: bool) -> tuple[Any, bool]:
    """PyTorch's exclusions between the batching options; (batch_size, drop_last) to use."""
    if sampler is not None and shuffle:
        raise ValueError("sampler option is mutually exclusive with shuffle")
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise ValueError(
                "batch_sampler option is mutually exclusive with batch_size, shuffle, "
                "sampler, and drop_last"
            )
        return None, False
    if batch_size is None and drop_last:
        raise ValueError(
            "batch_size=None option disables auto-batching and is mutually exclusive with "
            "drop_last"
        )
    return batch_size, drop_last


def _check_iterable_options(shuffle: Any, sampler: Any, batch_sampler: Any) -> None:
    if shuffle not in (False, None):
        raise ValueError(
            "DataLoader with IterableDataset: expected unspecified shuffle option, but got "
            f"shuffle={shuffle}"
        )
    if sampler is not None:
        raise ValueError(
            "DataLoader with IterableDataset: expected unspecified sampler option, but got "
            f"sampler={sampler}"
        )
    if batch_sampler is not None:
        raise ValueError(
            "DataLoader with IterableDataset: expected unspecified batch_sampler option, but "
            f"got batch_sampler={batch_sampler}"
        )


def _tuple_of_arrays(dataset: Any) -> Any:
    """minidl's shortcut: a tuple of numpy arrays / Tensors is ``TensorDataset(*dataset)``."""
    if (
        isinstance(dataset, tuple)
        and not hasattr(dataset, "_fields")
        and dataset
        and all(isinstance(a, (np.ndarray, Tensor)) and a.ndim for a in dataset)
    ):
        return TensorDataset(*dataset)
    return dataset
