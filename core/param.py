"""How a run parameter is declared: its flag, label, help and range, beside its field.

Each field of :class:`semclust.core.choices.RunChoices` carries a :class:`Param` in its metadata
(:func:`param` is ``dataclasses.field`` with one). The command line builds its options from these
declarations (``semclust/cli.py``), the window its parameter form (``gui/panels/parameters.py``), and
:func:`semclust.core.choices.build_config` its mapping onto :class:`~semclust.core.config.RunConfig`: a
new parameter is a field of the stage's config and one declared field of ``RunChoices``, as Orange binds
a ``Setting`` to a control in one line and napari builds its preferences dialog from its settings model.
A declaration is plain data: nothing here imports Qt or argparse.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Choices:
    ...     k: int | None = param(None, "--k", "k neighbours", "Neighbours per image.",
    ...                           config="neighbours.k", range=(1, 500))
    >>> [(d.name, d.kind, d.shown) for d in declared(Choices)]
    [('k', 'int', 20)]
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from semclust.core.config import RunConfig

#: The kinds of control a declared parameter gets, from its field's type: a whole number, a decimal
#: number, a switch, one of a list, free text, or a ``(low, high)`` pair of whole numbers.
KINDS = ("int", "float", "bool", "choice", "text", "range")


@dataclass(frozen=True, eq=False)
class Param:
    """What the front ends need to show one run parameter.

    Attributes:
        flag: the command line's option (``"--entropy-weight"``); a switch that is on by default is
            declared with the option that turns it off (``"--no-subfolder-labels"``).
        label: the window's label (the text of a check box).
        help: one or a few sentences: the option's help and the control's tooltip.
        config: the :class:`~semclust.core.config.RunConfig` field it sets, dotted
            (``"scan.entropy_weight"``); its default is the parameter's default.
        derived: the config field is worked out from this and other choices
            (:func:`~semclust.core.choices.build_config` says how), not copied.
        range: the lowest and highest value a number may take in the window.
        step: a spin box's step.
        choices: the values of a choice.
        titles: how the window names some of the ``choices``.
        free: other values than ``choices`` are welcome too (a backbone's preset id or folder).
        special: ``(text, value)``: the window shows its lowest number as ``text``, meaning ``value``
            (``("auto", None)``: the default for the other choices).
        parse: turns the command line's text into the value; raises ValueError with a readable message.
        metavar: the option's value in the command line's help.
        browse: a file-dialog filter: the window adds a button to choose a file.
        placeholder: what an empty text field means.
        when: the parameter matters only when this holds of the choices (the window greys it out).
        tip: the window's tooltip, where it says more than ``help`` (a tab to look at).
    """

    flag: str
    label: str
    help: str
    config: str | None = None
    derived: bool = False
    range: tuple[float, float] | None = None
    step: float = 1
    choices: tuple[str, ...] = ()
    titles: Mapping[str, str] | None = None
    free: bool = False
    special: tuple[str, Any] | None = None
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    browse: str | None = None
    placeholder: str = ""
    when: Callable[[Any], bool] | None = None
    tip: str = ""


def param(default: Any, flag: str, label: str, help: str, **declaration: Any) -> Any:
    """A dataclass field whose default is ``default``, declared by a :class:`Param`."""
    return dataclasses.field(
        default=default, metadata={"param": Param(flag, label, help, **declaration)}
    )


@dataclass(frozen=True)
class Declared:
    """A declared field of a choices dataclass, ready for a front end.

    Attributes:
        name: the field's name (the command line's ``dest``, the window's control).
        param: its declaration.
        kind: one of :data:`KINDS`, from the field's type.
        default: the field's default (``None``: the default for the other choices).
        shown: what a form shows at first: ``default``, or the config's own default where ``default``
            is ``None`` and the control cannot show "the default".
    """

    name: str
    param: Param
    kind: str
    default: Any
    shown: Any


@functools.cache
def declared(cls: type) -> tuple[Declared, ...]:
    """The declared fields of the dataclass ``cls``, in their order."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        p = f.metadata.get("param")
        if p is None:
            continue
        kind = _kind(hints[f.name], p)
        shown = f.default
        can_show_none = kind == "text" or (p.special is not None and p.special[1] is None)
        if shown is None and p.config and not can_show_none:
            shown = config_value(p.config)
        found.append(Declared(f.name, p, kind, f.default, shown))
    return tuple(found)


def out_of_range(choices: Any) -> list[str]:
    """Readable problems of ``choices``: a declared number outside its range, or not finite.

    The window's spin boxes keep to the ranges already; the command line and callers of the core
    get the same bounds from here (``build_config`` raises with these messages).
    """
    problems = []
    for d in declared(type(choices)):
        value, bounds = getattr(choices, d.name), d.param.range
        if d.kind not in ("int", "float") or value is None or bounds is None:
            continue
        if d.param.special is not None and value == d.param.special[1]:
            continue
        if not math.isfinite(value) or not bounds[0] <= value <= bounds[1]:
            low, high = (f"{b:,}" if d.kind == "int" else f"{b:g}" for b in bounds)
            problems.append(f"{d.param.flag} {value:g} is out of range: choose {low} to {high}.")
    return problems


def config_value(path: str, config: RunConfig | None = None) -> Any:
    """A field of ``config`` (default: the defaults) given dotted, as ``"scan.heads"``."""
    value: Any = config or RunConfig()
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _kind(hint: Any, p: Param) -> str:
    """The control a field of this type gets (``int | None``: a number that may be the default)."""
    members = [hint]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
    for kind, types_ in (("bool", bool), ("int", int), ("float", float)):
        if types_ in members:
            return kind
    if any(typing.get_origin(m) is tuple for m in members):
        return "range"
    return "choice" if p.choices else "text"
