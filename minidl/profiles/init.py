"""Initialisation as data: which ``minidl.nn.init`` function fills a parameter, with which
keyword arguments, and whether it is given the layer's fans (``fans=(fan_in, fan_out)``).

The formulas live in ``minidl.nn.init`` only; the layers apply an :class:`Initializer` by
calling the function it names (``minidl/nn/_init_rules.py``). :class:`InitPolicy` is a
profile's choice of initializers and of the fan rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .spec import ConvSpec

if TYPE_CHECKING:
    from .signature import Bound


@dataclass(frozen=True, repr=False)
class Initializer:
    """``minidl.nn.init.<function>(tensor, **arguments)``, plus ``fans=(fan_in, fan_out)`` of
    the layer when ``uses_fans``; ``text`` is what :func:`minidl.profiles.diff` shows."""

    function: str
    arguments: tuple[tuple[str, Any], ...] = ()
    uses_fans: bool = False
    text: str = ""

    def describe(self) -> str:
        return self.text or self.function

    def __repr__(self) -> str:
        return self.describe()


@dataclass(frozen=True, repr=False)
class ArrayInit:
    """Given values (MindSpore's ``weight_init=Tensor``), of the stored shape or, for a
    ``(c0, c1, 1, k)`` weight (MindSpore's Conv1d), its 3-D form ``(c0, c1, k)``."""

    values: np.ndarray = field(compare=False)
    label: str = "initial value"

    def array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The values as a parameter of ``shape`` and ``dtype`` (ValueError if they do not fit)."""
        values = np.asarray(self.values)
        accepted = [shape]
        if len(shape) == 4 and shape[2] == 1:
            accepted.append((shape[0], shape[1], shape[3]))
        if values.shape not in accepted:
            raise ValueError(
                f"the {self.label} array has shape {values.shape}, but the parameter is stored "
                f"with shape {shape}"
            )
        return values.astype(dtype).reshape(shape)

    def describe(self) -> str:
        return f"array of shape {np.shape(self.values)}"

    def __repr__(self) -> str:
        return self.describe()


Init = Initializer | ArrayInit


# ---- the initializers the profiles use ----------------------------------------------------------
def constant(value: float) -> Initializer:
    text = {0.0: "zeros", 1.0: "ones"}.get(float(value), f"constant {value}")
    return Initializer("constant_", (("value", value),), text=text)


def normal(std: float, mean: float = 0.0) -> Initializer:
    return Initializer(
        "normal_", (("mean", mean), ("std", std)), text=f"N({mean:g}, {std:g}^2)"
    )


def truncated_normal(std: float, mean: float, low: float, high: float) -> Initializer:
    return Initializer(
        "trunc_normal_",
        (("mean", mean), ("std", std), ("a", low), ("b", high)),
        text=f"N({mean:g}, {std:g}^2) truncated to [{low:g}, {high:g}]",
    )


def uniform(bound: float) -> Initializer:
    return Initializer("uniform_", (("a", -bound), ("b", bound)), text=f"U(-{bound:g}, {bound:g})")


def kaiming(
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    distribution: str = "uniform",
) -> Initializer:
    """He / Kaiming. With a = sqrt(5), uniform, the bound is 1/sqrt(fan_in): PyTorch's default."""
    if distribution == "uniform" and math.isclose(a, math.sqrt(5)):
        text = f"U(-1/sqrt({mode}), 1/sqrt({mode})) (kaiming_uniform, a=sqrt(5))"
    else:
        text = f"kaiming_{distribution}(a={a:g}, {mode}, {nonlinearity})"
    arguments = (("a", a), ("mode", mode), ("nonlinearity", nonlinearity))
    return Initializer(f"kaiming_{distribution}_", arguments, uses_fans=True, text=text)


def xavier(gain: float = 1.0, distribution: str = "uniform") -> Initializer:
    return Initializer(
        f"xavier_{distribution}_", (("gain", gain),), uses_fans=True,
        text=f"xavier_{distribution}(gain={gain:g})",
    )


def fan_in_uniform() -> Initializer:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)); zeros when fan_in is 0 (PyTorch's bias rule)."""
    return Initializer("fan_in_uniform_", uses_fans=True, text="U(-1/sqrt(fan_in), 1/sqrt(fan_in))")


def fan_in_normal() -> Initializer:
    """N(0, 1/fan_in): MegEngine's conv weights (Kaiming normal with gain 1)."""
    return Initializer(
        "kaiming_normal_",
        (("a", 0.0), ("mode", "fan_in"), ("nonlinearity", "linear")),
        uses_fans=True,
        text="N(0, 1/fan_in)",
    )


@dataclass(frozen=True)
class InitPolicy:
    """Default initializers and the fan rule. ``fan_in`` replaces PyTorch's rule on the stored
    weight (``minidl.nn.init.calculate_fan_in_and_fan_out``) where a framework counts
    otherwise (MegEngine); ``from_arguments`` lets a profile take the initializers from
    constructor arguments (MindSpore's ``weight_init``/``bias_init``)."""

    weight: Init
    bias: Init
    fan_in: Callable[[ConvSpec], int] | None = None
    fan_doc: Mapping[str, str] = field(default_factory=dict)  # kind -> formula (for diff)
    from_arguments: Callable[[Bound, ConvSpec], tuple[Init, Init]] | None = None

    def initializers(self, bound: Bound, spec: ConvSpec) -> tuple[Init, Init]:
        if self.from_arguments is None:
            return self.weight, self.bias
        return self.from_arguments(bound, spec)
