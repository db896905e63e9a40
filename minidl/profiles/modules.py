"""The layers of a small CNN besides the convs (``Linear``, ``BatchNorm1d/2d``, pools,
``Dropout``, ``Flatten``) as profile data: a :class:`ModuleDef` per framework class says its
signature, how a call resolves into a canonical spec in PyTorch's terms
(:mod:`minidl.profiles.spec`), how the arguments of a spec are spelled back
(:func:`minidl.profiles.convert`), the names, order and shapes of its checkpoint entries, and
the initialisers. The checks every framework shares, in their words, are here too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import _geometry
from .init import Init, constant
from .signature import MODULE_KINDS, Bound, LayerDef

# canonical entry -> (parameter or buffer, PyTorch's shape in terms of the spec)
PARAMETERS = ("weight", "bias")
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
# stored shape forms: 'vector' (C,), 'matrix' (out, in), '1c11' (1, C, 1, 1) (MegEngine),
# 'scalar' () (PyTorch's num_batches_tracked)
SHAPE_FORMS = ("vector", "matrix", "1c11", "scalar")
# PyTorch's and MegEngine's BatchNorm (MindSpore's through gamma_init, ... with these defaults)
BATCH_NORM_INIT: Mapping[str, Init] = {
    "weight": constant(1.0),
    "bias": constant(0.0),
    "running_mean": constant(0.0),
    "running_var": constant(1.0),
}


@dataclass(frozen=True)
class Entry:
    """One checkpoint entry: the canonical (PyTorch) ``name``, the framework's ``stored`` name
    and its shape form (one of :data:`SHAPE_FORMS`). ``kept``: the framework keeps the entry as
    a constant when the layer has no such parameter (MindSpore's ``gamma``/``beta`` with
    ``affine=False``: ones and zeros that are not trained)."""

    name: str
    stored: str
    shape: str = "vector"
    kept: bool = False


@dataclass(frozen=True)
class ModuleDef:
    """A framework's class for one of the non-conv kinds.

    ``resolve(bound)`` checks a bound call in the framework's words and returns the canonical
    spec; ``encode(spec)`` gives constructor keyword arguments (this framework's names) that
    build it, raising :class:`~minidl.profiles.spec.NotExpressible`; ``entries`` are the
    checkpoint entries in the framework's order; ``init(bound)`` maps canonical parameter and
    buffer names to initialisers (the rest keep PyTorch's); ``checked_at`` is when a bad
    argument raises (PyTorch's pools only check at the forward); ``notes`` are rows of
    :func:`minidl.profiles.diff` (item -> text)."""

    layer: LayerDef
    resolve: Callable[[Bound], Any]
    encode: Callable[[Any], dict[str, Any]]
    entries: tuple[Entry, ...] = ()
    init: Callable[[Bound], Mapping[str, Init]] | None = None
    checked_at: str = "construction"
    notes: Mapping[str, str] = field(default_factory=dict)

    def entry(self, name: str) -> Entry | None:
        return next((e for e in self.entries if e.name == name), None)


def layer_hints(drop: str) -> dict[str, str]:
    """Hints for MindSpore's arguments of the non-conv layers where a profile has none (the
    frameworks' dropout argument is ``drop``); keys ``'Kind.name'`` are for one layer kind."""
    pool = (
        "these pools take no pad_mode: 'valid' is padding=0 (the default), 'pad' is "
        "padding=<amounts>; MindSpore's TF-style 'same' has no form here (F.pad in front, or "
        "the mindspore profile)"
    )
    return {
        "keep_prob": f"MindSpore's keep_prob is the probability to keep: Dropout({drop}=1 - "
        "keep_prob)",
        "use_batch_statistics": "train()/eval() choose batch or running statistics; "
        "track_running_stats=False uses batch statistics in eval too",
        **{f"{kind}.pad_mode": pool for kind in MODULE_KINDS if "Pool" in kind},
    }


# ---- checks shared by the frameworks, in their words ---------------------------------------------
def count(bound: Bound, meaning: str, minimum: int = 0, words: str = "torch") -> int:
    """A feature or channel count. ``words='torch'`` is PyTorch's and MegEngine's rule (an int
    >= 0); ``'mindspore'`` is MindSpore's validator (an int > 0)."""
    value, name, op = bound[meaning], bound.name(meaning), bound.op
    if isinstance(value, bool) or _geometry.as_int(value) is None:
        if words == "mindspore":
            kind = type(value).__name__
            raise TypeError(f"For {op!r}, the {name!r} must be int, but got {kind!r}")
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    number = int(value)
    if number < minimum:
        if words == "mindspore":
            raise ValueError(
                f"For {op!r}, the {name!r} must be int and must > {minimum - 1}, but got "
                f"{value!r} with type 'int'."
            )
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {number}")
    return number


def number(bound: Bound, meaning: str) -> float:
    value = bound[meaning]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{bound.op}: {bound.name(meaning)} must be a number, got {value!r}")
    return float(value)


def flag(bound: Bound, meaning: str) -> bool:
    value = bound[meaning]
    if not isinstance(value, bool):
        raise TypeError(f"{bound.op}: {bound.name(meaning)} must be a bool, got {value!r}")
    return value


def loose_tuple(value: Any, nd: int) -> Any:
    """PyTorch's pools keep their arguments as given and check them at the forward: an int
    repeated, a sequence as a tuple, anything else as it is (for the forward to reject)."""
    if _geometry.as_int(value) is not None:
        return (int(value),) * nd
    if isinstance(value, (tuple, list)):
        parts = tuple(value)
        return parts * nd if len(parts) == 1 else parts
    return value


def tuple_arg(bound: Bound, meaning: str, nd: int, minimum: int) -> tuple[int, ...]:
    return _geometry.int_tuple(bound[meaning], nd, bound.name(meaning), bound.op, minimum)
