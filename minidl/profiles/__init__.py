"""Convention profiles: the same layer as PyTorch, MegEngine or MindSpore defines it.

>>> import minidl
>>> minidl.set_profile("mindspore")          # every layer built from now on
>>> with minidl.use_profile("megengine"):    # ... or just inside a block
...     conv = minidl.nn.Conv2d(10, 20, 3, groups=2)
>>> conv.weight.shape
(2, 10, 5, 3, 3)

A profile is data (``minidl/profiles/<framework>.py``; its structure in ``profile.py``,
``signature.py``, ``spec.py``, ``padding.py``, ``layout.py`` and ``init.py``); the layers
(``minidl.nn``) read it, and nothing here imports ``minidl.nn``. :func:`diff` prints the
differences of two profiles as a table and :func:`convert` rebuilds a model's layers (convs,
Linear/Dense, BatchNorm, pools, Dropout, Flatten) under another profile.
"""

from __future__ import annotations

import contextlib
import copy
import math
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from . import megengine as _megengine
from . import mindspore as _mindspore
from . import torch as _torch
from .modules import Entry
from .profile import Profile
from .signature import LAYER_KINDS, MODULE_KINDS, REQUIRED, Arg, bind, kind_info
from .spec import (
    BatchNormSpec,
    ConvSpec,
    DropoutSpec,
    FlattenSpec,
    LinearSpec,
    NotExpressible,
    PoolSpec,
)

__all__ = ["get_profile", "set_profile", "use_profile"]

DEFAULT = "torch"
_REGISTRY: dict[str, Profile] = {}
_active = DEFAULT


def register(profile: Profile) -> Profile:
    """Make ``profile`` available by name (the built-in ones are registered on import)."""
    _REGISTRY[profile.name] = profile
    return profile


for _profile in (_torch.PROFILE, _megengine.PROFILE, _mindspore.PROFILE, _mindspore.PROFILE_2_1):
    register(_profile)


def registered() -> tuple[Profile, ...]:
    return tuple(_REGISTRY.values())


def available() -> list[str]:
    """Names of the registered profiles."""
    return list(_REGISTRY)


def get_profile(name: str | Profile | None = None) -> Profile:
    """The profile called ``name``; without a name, the active one (default ``'torch'``)."""
    if isinstance(name, Profile):
        return name
    name = _active if name is None else name
    if name not in _REGISTRY:
        raise ValueError(f"unknown profile {name!r}; available profiles: {available()}")
    return _REGISTRY[name]


def set_profile(name: str | Profile) -> None:
    """Make ``name`` the profile of every profiled layer built afterwards without ``profile=``.
    Layers keep the profile they were built with."""
    global _active
    _active = get_profile(name).name


@contextlib.contextmanager
def use_profile(name: str | Profile) -> Iterator[Profile]:
    """``with minidl.use_profile('mindspore'):`` builds the block's layers under that
    profile, then restores the previous one (also usable as a decorator)."""
    global _active
    previous = _active
    set_profile(name)
    try:
        yield get_profile()
    finally:
        _active = previous


# ---- diff ---------------------------------------------------------------------------------------
KIND_ALIASES = {
    "Conv1dTranspose": "ConvTranspose1d",
    "Conv2dTranspose": "ConvTranspose2d",
    "Conv3dTranspose": "ConvTranspose3d",
    "Dense": "Linear",
}
SPECS = (ConvSpec, LinearSpec, BatchNormSpec, PoolSpec, DropoutSpec, FlattenSpec)


@dataclass(frozen=True)
class DiffRow:
    layer: str
    category: str
    item: str
    a: str
    b: str
    note: str


class ProfileDiff:
    """The rows of :func:`diff`; ``print`` shows them as a table, ``to_markdown()`` too."""

    def __init__(self, a: Profile, b: Profile, rows: list[DiffRow]) -> None:
        self.a, self.b, self.rows = a, b, rows

    def __iter__(self) -> Iterator[DiffRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def _table(self) -> tuple[list[str], list[list[str]]]:
        several = len({r.layer for r in self.rows}) > 1
        header = (["layer"] if several else []) + ["", "", self.a.name, self.b.name, "difference"]
        body = [
            ([r.layer] if several else []) + [r.category, r.item, r.a, r.b, r.note]
            for r in self.rows
        ]
        return header, body

    def to_markdown(self) -> str:
        header, body = self._table()
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join(lines)

    def __str__(self, width: int = 34) -> str:
        header, body = self._table()
        wrapped = [[textwrap.wrap(c, width) or [""] for c in row] for row in [header, *body]]
        widths = [max(len(line) for row in wrapped for line in row[i]) for i in range(len(header))]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        out = [rule]
        for index, row in enumerate(wrapped):
            for i in range(max(len(cell) for cell in row)):
                cells = [
                    (cell[i] if i < len(cell) else "").ljust(w)
                    for cell, w in zip(row, widths, strict=True)
                ]
                out.append("| " + " | ".join(cells) + " |")
            if index == 0:
                out.append(rule.replace("-", "="))
        out.append(rule)
        title = f"{self.a.name} ({self.a.framework}) vs {self.b.name} ({self.b.framework})"
        return title + "\n" + "\n".join(out)

    __repr__ = __str__


def diff(
    a: str | Profile,
    b: str | Profile,
    layer: str | Iterable[str] = "Conv2d",
    only_differences: bool = False,
) -> ProfileDiff:
    """The differences between two profiles for ``layer`` (a name such as ``'Conv2d'``,
    ``'Conv2dTranspose'``, ``'BatchNorm2d'`` or ``'Dense'``, several, or ``'all'``): arguments
    (names, order, defaults), initialisation, padding, parameter names, shapes and checkpoint
    order, running-statistics rules, generated from the profile data. ``print(diff(...))`` and
    ``diff(...)`` at a prompt show the table."""
    pa, pb = get_profile(a), get_profile(b)
    everything = (*LAYER_KINDS, *MODULE_KINDS)
    kinds = everything if layer == "all" else [layer] if isinstance(layer, str) else list(layer)
    rows: list[DiffRow] = []
    for kind in kinds:
        kind = KIND_ALIASES.get(kind, kind)
        if kind in MODULE_KINDS:
            rows += _module_rows(pa, pb, kind)
            continue
        kind_info(kind)
        rows += _layer_rows(pa, pb, kind)
    if only_differences:
        rows = [r for r in rows if r.note != "-"]
    return ProfileDiff(pa, pb, rows)


def _layer_rows(a: Profile, b: Profile, kind: str) -> list[DiffRow]:
    la, lb = a.layers.get(kind), b.layers.get(kind)
    rows = [_row(kind, "layer", "class", _class_cell(a, kind), _class_cell(b, kind))]
    if la is None or lb is None:
        return rows
    rows += _argument_rows(a, b, kind)
    facts_a, facts_b = _facts(a, kind), _facts(b, kind)
    for (category, item), (cell_a, key_a) in facts_a.items():
        cell_b, key_b = facts_b[category, item]
        if (category, item) == ("shape", "weight, groups > 1") and key_a == key_b == "":
            continue  # neither stores grouped weights differently
        rows.append(_row(kind, category, item, cell_a, cell_b, "-" if key_a == key_b else None))
    return rows


def _row(kind: str, category: str, item: str, a: str, b: str, note: str | None = None):
    return DiffRow(kind, category, item, a, b, note or ("-" if a == b else "differs"))


def _class_cell(profile: Profile, kind: str) -> str:
    layer = profile.layers.get(kind)
    return layer.cls_name if layer else "missing: " + profile.missing.get(kind, "no such layer")


def _argument_rows(a: Profile, b: Profile, kind: str) -> list[DiffRow]:
    sa, sb = a.layer(kind).signature, b.layer(kind).signature
    keys = [arg.key for arg in sa] + [arg.key for arg in sb if arg.key not in {x.key for x in sa}]
    rows = []
    for key in keys:
        xa = next((i for i, arg in enumerate(sa) if arg.key == key), None)
        xb = next((i for i, arg in enumerate(sb) if arg.key == key), None)
        ca = "-" if xa is None else str(sa[xa])
        cb = "-" if xb is None else str(sb[xb])
        rows.append(_row(kind, "argument", key, ca, cb, _argument_note(a, b, sa, sb, xa, xb)))
    return rows


def _argument_note(a, b, sa: tuple[Arg, ...], sb: tuple[Arg, ...], xa, xb) -> str:
    if xa is None or xb is None:
        return f"only {a.name if xb is None else b.name}"
    notes = []
    if sa[xa].name != sb[xb].name:
        notes.append("renamed")
    if repr(sa[xa].default) != repr(sb[xb].default):
        notes.append("default differs")
    if xa != xb and not (sa[xa].keyword_only and sb[xb].keyword_only):
        notes.append(f"position {xa + 1} vs {xb + 1}")
    return ", ".join(notes) or "-"


def _facts(profile: Profile, kind: str) -> dict[tuple[str, str], tuple[str, str]]:
    """The init, padding and shape cells of one profile's layer, each with the part that is
    compared (an initializer's distribution, not the argument that names it)."""
    layer, init, layout = profile.layers[kind], profile.init, profile.layout
    transposed = kind_info(kind)[1]

    def initializer(meaning: str, default) -> tuple[str, str]:
        arg = layer.arg(meaning)
        text = default.describe()
        return (text if arg is None else f"{arg.name}={arg.default!r}: {text}"), text

    def same(text: str) -> tuple[str, str]:
        return text, text

    grouped = layout.describe_weight(kind, grouped=True)
    plain = layout.describe_weight(kind, grouped=False)
    facts = {
        ("init", "weight"): initializer("weight_init", init.weight),
        ("init", "bias"): initializer("bias_init", init.bias),
        ("init", "fan_in"): same(
            init.fan_doc.get(kind, init.fan_doc.get("transposed" if transposed else "conv", "-"))
        ),
        ("padding", "forms"): same(
            profile.notes.get("transposed padding" if transposed else "padding", "-")
        ),
        ("padding", "modes"): same(", ".join(layer.padding_modes)),
        ("shape", "weight"): same(plain),
        ("shape", "weight, groups > 1"): (grouped, "" if grouped == plain else grouped),
        ("shape", "bias"): same(layout.describe_bias(kind)),
        ("checkpoint", "key order"): same("bias, weight" if layout.bias_first else "weight, bias"),
    }
    if transposed:
        facts["padding", "output_padding"] = same(_output_padding(layer))
    return facts


def _module_rows(a: Profile, b: Profile, kind: str) -> list[DiffRow]:
    ma, mb = a.modules.get(kind), b.modules.get(kind)
    rows = [_row(kind, "layer", "class", _module_class(a, kind), _module_class(b, kind))]
    if ma is None or mb is None:
        return rows
    rows += _argument_rows(a, b, kind)
    inits_a, inits_b = _module_inits(a, kind), _module_inits(b, kind)
    for name in dict.fromkeys([*inits_a, *inits_b]):
        rows.append(_row(kind, "init", name, inits_a.get(name, "-"), inits_b.get(name, "-")))
    for key in dict.fromkeys([*ma.notes, *mb.notes]):
        rows.append(_row(kind, "rule", key, ma.notes.get(key, "-"), mb.notes.get(key, "-")))
    names_a = {e.name: e for e in ma.entries}
    names_b = {e.name: e for e in mb.entries}
    for name in dict.fromkeys([*names_a, *names_b]):
        ea, eb = names_a.get(name), names_b.get(name)
        rows.append(_row(kind, "checkpoint", name, _entry_cell(ea, kind), _entry_cell(eb, kind)))
    if ma.entries or mb.entries:
        rows.append(_row(kind, "checkpoint", "key order", _order(ma.entries), _order(mb.entries)))
    return rows


def _module_class(profile: Profile, kind: str) -> str:
    module = profile.modules.get(kind)
    return module.layer.cls_name if module else "missing: " + profile.missing.get(kind, "-")


def _module_inits(profile: Profile, kind: str) -> dict[str, str]:
    """The default initialisers (the required arguments set to 1 to bind a call)."""
    module = profile.modules[kind]
    if module.init is None:
        return {}
    required = {a.name: 1 for a in module.layer.signature if a.default is REQUIRED}
    bound = bind(profile, kind, (), required)
    return {name: init.describe() for name, init in module.init(bound).items()}


SHAPE_TEXT = {"vector": "(C,)", "matrix": "(out, in)", "1c11": "(1, C, 1, 1)", "scalar": "()"}


def _entry_cell(entry: Entry | None, kind: str) -> str:
    if entry is None:
        return "none"
    shape = SHAPE_TEXT[entry.shape]
    if kind == "Linear" and entry.shape == "vector":
        shape = "(out,)"
    return f"{entry.stored} {shape}" + (" (kept without affine)" if entry.kept else "")


def _order(entries: tuple[Entry, ...]) -> str:
    return ", ".join(e.stored for e in entries) or "-"


def _output_padding(layer) -> str:
    if layer.arg("output_padding") is None:
        return "none"
    if layer.output_padding == "zeros":
        return "zeros appended after the bias (needs pad_mode='pad')"
    return "computed rows at the end (as PyTorch)"


# ---- convert ------------------------------------------------------------------------------------
def convert(module, profile: str | Profile):
    """A copy of ``module`` whose profiled layers (convs, Linear/Dense, BatchNorm, pools,
    Dropout, Flatten) are rebuilt under ``profile`` with equivalent arguments and converted
    parameters and buffers: the same outputs, in the other framework's conventions and names
    (``state_dict()`` of the copy is in the target's layout).

    Raises ``ValueError`` naming the layer when the target's arguments cannot express it
    (e.g. PyTorch's reflect padding under MindSpore, MindSpore's strided 'same' padding or
    'same' pooling under PyTorch or MegEngine, a Dense activation under PyTorch, or a layer
    MegEngine lacks such as Flatten)."""
    target = get_profile(profile)
    if _built_from_profile(module):
        return _rebuild(module, target, "")
    new = copy.deepcopy(module)
    for prefix, parent in list(new.named_modules()):
        for name, child in list(parent._modules.items()):
            if _built_from_profile(child):
                path = f"{prefix}.{name}" if prefix else name
                parent._modules[name] = _rebuild(child, target, path)
    return new


def _built_from_profile(module) -> bool:
    """A layer built from a profile carries its spec (``minidl.nn``'s conv layers, Linear,
    BatchNorm, the pools, Dropout and Flatten); ``convertible = False`` opts out (the
    channel-wise dropouts, PyTorch's under every profile)."""
    spec = getattr(module, "_spec", None)
    return getattr(module, "convertible", True) and isinstance(spec, SPECS)


def _same_spec(new, old) -> bool:
    """The rebuilt spec says the same (dtype aside; a momentum through 1 - m may round)."""
    if isinstance(old, ConvSpec):
        return new.same_as(old)
    if hasattr(old, "dtype"):
        new = replace(new, dtype=old.dtype)
    if isinstance(old, BatchNormSpec) and old.momentum is not None and new.momentum is not None:
        if math.isclose(new.momentum, old.momentum, rel_tol=1e-12):
            new = replace(new, momentum=old.momentum)
    return new == old


def _rebuild(layer, target: Profile, path: str):
    spec = layer._spec
    try:
        if isinstance(spec, ConvSpec):
            kwargs = target.arguments_for(spec)
        else:
            kwargs = target.module(spec.kind).encode(spec)
    except (NotExpressible, NotImplementedError) as error:
        label = f"{path} ({layer!r})" if path else repr(layer)
        raise ValueError(
            f"{label} cannot be rebuilt under the {target.name} profile: {error}"
        ) from None
    new = type(layer)(profile=target.name, **kwargs)
    if hasattr(spec, "dtype"):
        new.to(spec.dtype)
    if not _same_spec(new._spec, spec):  # the encoding must round-trip; a bug otherwise
        raise AssertionError(f"{path}: {new._spec} differs from {spec}")
    # the layer's own entries in the target's layout (a counter only PyTorch keeps is dropped)
    new._import_state(layer._export_state(target.name), target.name)
    new.train(layer.training)
    return new
