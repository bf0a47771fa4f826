"""What a config field allows, and the one check every config runs on construction.

A field's type hint is its rule: `Literal[...]` for a choice, `Annotated[int, Range(ge=1)]` for a number
with bounds, `X | None` where None means "pick for me", `tuple[X, ...]` for one entry per layer. `Checked`,
the base of every config dataclass, walks the fields and refuses a value its hint does not allow with one
`MnistlabError` line naming the setting, the value and what is allowed. No torch here: the CLI's --help
and its config errors come from these alone.
"""

from __future__ import annotations

import inspect
import math
import operator
import re
import tomllib
import types
import typing
from dataclasses import dataclass, fields
from typing import Annotated, Any, ClassVar, Literal

from mnistlab.errors import MnistlabError


@dataclass(frozen=True)
class Range:
    """Bounds on a number: ge/le inclusive, gt/lt exclusive."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def allows(self, x: float) -> bool:
        tests = ((self.ge, operator.ge), (self.gt, operator.gt), (self.le, operator.le), (self.lt, operator.lt))
        return all(bound is None or test(x, bound) for bound, test in tests)

    def __str__(self) -> str:
        bounds = ((self.ge, ">="), (self.gt, ">"), (self.le, "<="), (self.lt, "<"))
        return " and ".join(f"{symbol} {bound}" for bound, symbol in bounds if bound is not None)


PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
Probability = Annotated[float, Range(ge=0, le=1)]
Fraction = Annotated[float, Range(ge=0, lt=1)]  # a share that must leave something: dropout, smoothing, decay
Seed = Annotated[int, Range(ge=0, le=2**32 - 1)]  # what every seeded generator (torch, NumPy) takes


class Checked:
    """A config that checks every field against its type hint on construction (see `conform`)."""

    section: ClassVar[str] = ""  # the prefix of its settings' dotted keys: "model", "train" or "run"

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self), include_extras=True)
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            try:
                conformed = conform(hints[f.name], value)
            except (ValueError, OverflowError):  # OverflowError: an integer past float's range
                allowed = describe(hints[f.name])
                raise MnistlabError(f"bad value for {self._key(f.name)}: {value!r}; it must be {allowed}") from None
            object.__setattr__(self, f.name, conformed)  # a list as a tuple, an int as a float

    def _key(self, name: str) -> str:
        return f"{self.section}.{name}" if self.section else name


def conform(hint: Any, value: Any) -> Any:
    """`value` as a field of type `hint` holds it (a list as a tuple, an int as a float), or ValueError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        conformed = conform(args[0], value)
        if all(check.allows(conformed) for check in args[1:]):
            return conformed
    elif origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return conform(inner, value)
    elif origin is Literal:
        if isinstance(value, str) and value in args:
            return value
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(conform(args[0], item) for item in value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(number := float(value)):
            return number
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, hint):
        return value
    raise ValueError(value)


def describe(hint: Any) -> str:
    """What a field of type `hint` allows, in words: "an integer >= 1", "one of 'bce', 'seed-softmax'"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return " ".join([describe(args[0]), *map(str, args[1:])])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args if a is not type(None)) + " or none"
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is tuple:
        return f"a list, each {describe(args[0])}"
    names = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}
    return names.get(hint, f"a {getattr(hint, '__name__', hint)}")


def field_help(cls: type) -> dict[str, str]:
    """Each field's comment in the class source, its one description: `mnistlab train ... -h` shows it."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source (a frozen build): the flags go without descriptions
        return {}
    return dict(re.findall(r"^    (\w+): [^#\n]*  # ([^\n]*)$", source, re.MULTILINE))


class Typed(str):
    """A value as a person typed it (`--set key=value`, a flag): read as its field's type by `read_typed`."""


_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def read_typed(hint: Any, text: str) -> Any:
    """Typed text as the field's type would have it: none, a boolean word, a TOML number, list or quoted
    string, or else the text itself. What it cannot be read as is left for the field's check to refuse."""
    base, optional = _unwrap(hint)
    word = text.strip()
    if optional and word.lower() == "none":
        return None
    if base is bool:
        return _BOOL_WORDS.get(word.lower(), word)
    is_list = typing.get_origin(base) is tuple and not word.startswith("[")
    try:
        parsed = tomllib.loads(f"v = [{word}]" if is_list else f"v = {word}")  # "1,2,1" as TOML's [1,2,1]
    except tomllib.TOMLDecodeError:
        return word
    value = parsed["v"] if list(parsed) == ["v"] else word  # "1\nx = 2" is not one value
    is_text = base is str or typing.get_origin(base) is Literal
    return word if is_text and not isinstance(value, str) else value  # --out 2024 is a directory name


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """The type under Annotated and Optional, and whether None is allowed."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        optional = type(None) in typing.get_args(hint)
        (hint,) = (a for a in typing.get_args(hint) if a is not type(None))
    while typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    return hint, optional
