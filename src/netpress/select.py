"""Which tensors of any model a technique touches: by module type, name pattern and size.

Neutral ground for pruning and quantization (both delegate here). Tensors are named by plain names
(``'encoder.layer.0.attention.self.query.weight'``), masked or quantized or not.

A :class:`Selector` keeps the tensors that pass every filter:
- ``types``: the owning module's class (or a base class) matches one of the names or globs (``'Linear'``,
  ``'Conv*'``, ``'Embedding'``, the HF ``'Conv1D'``) or aliases (``'linear'``/``'fc'``, ``'conv'``, ``'embedding'``);
- ``attrs``: the tensor's attribute (default ``weight``: biases and norms stay float unless asked);
- ``include``: at least one glob or ``'re:'`` regex matches the tensor's or its module's plain name;
- ``exclude``: no pattern matches;
- ``min_numel``: at least that many elements.
An exact tensor name in ``include`` selects that tensor whatever its type or attribute.

Every ``include``/``exclude`` pattern must match something, else :class:`~netpress.errors.ConfigError` names it
and the closest real names, before any work.

Example:
    >>> sel = Selector(include=("encoder.layer.*.attention.*",), exclude=("re:.*key.*",))
    >>> list(select_tensors(bert, sel))[:1]
    ['encoder.layer.0.attention.self.query.weight']
    >>> select_tensors(bert, "Embedding")      # strings parse into a Selector
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from fnmatch import fnmatchcase
from typing import Iterable, Union

import torch
from torch import nn
from torch.nn.utils import parametrize

from netpress.errors import ConfigError

TYPE_ALIASES = {
    "linear": ("Linear", "Conv1D"), "fc": ("Linear", "Conv1D"),
    "conv": ("Conv1d", "Conv2d", "Conv3d"),
    "embedding": ("Embedding", "EmbeddingBag"),
}
DEFAULT_TYPES = ("Linear", "Conv1D", "Conv1d", "Conv2d", "Conv3d", "Embedding", "EmbeddingBag")
REGEX = "re:"


@dataclasses.dataclass(frozen=True)
class Selector:
    """Filters choosing tensors by plain name (see the module docstring).

    Attributes:
        types: module class names, globs or aliases; empty = any module.
        include: globs / ``'re:'`` regexes / exact names; empty = everything the other filters keep.
        exclude: globs / ``'re:'`` regexes / exact names to drop.
        attrs: tensor attributes (``weight``, ``bias``, ...); empty = any.
        min_numel: smallest tensor kept (elements).
    """

    types: tuple[str, ...] = DEFAULT_TYPES
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    attrs: tuple[str, ...] = ("weight",)
    min_numel: int = 0

    def __post_init__(self) -> None:
        for field in ("types", "include", "exclude", "attrs"):
            value = getattr(self, field)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"selector {field} must be a sequence of strings, got {value!r}")
            object.__setattr__(self, field, tuple(value))
        if isinstance(self.min_numel, bool) or not isinstance(self.min_numel, int) or self.min_numel < 0:
            raise ConfigError(f"selector min_numel must be an integer >= 0, got {self.min_numel!r}")
        for p in self.include + self.exclude:
            _compile(p)

    @classmethod
    def parse(cls, spec: str | Iterable[str]) -> "Selector":
        """A selector from strings: type names/aliases, globs, ``re:...``, ``!pattern`` (exclude), ``numel>=N``.

        Comma-separated strings are split. Type tokens (``Linear``, ``Conv*``, ``embedding``) replace the default
        types; with only patterns the default types stay.

        Example:
            >>> Selector.parse("Linear,re:.*dense$,!*.output.*,numel>=1024")
            Selector(types=('Linear',), include=('re:.*dense$',), exclude=('*.output.*',), ...)
        """
        tokens = [t.strip() for item in ([spec] if isinstance(spec, str) else spec) for t in str(item).split(",")]
        types, include, exclude, min_numel = [], [], [], 0
        for tok in filter(None, tokens):
            if tok.startswith("!"):
                exclude.append(tok[1:])
            elif tok.startswith("numel>="):
                min_numel = _int(tok[len("numel>="):], tok)
            elif is_type_token(tok):
                types.append(tok)
            else:
                include.append(tok)
        return cls(types=tuple(types) or DEFAULT_TYPES, include=tuple(include), exclude=tuple(exclude),
                   min_numel=min_numel)


SelectorLike = Union[Selector, str, Iterable[str], None]


def _int(text: str, tok: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"selector {tok!r}: expected an integer after 'numel>='") from None


def is_type_token(tok: str) -> bool:
    """A module-type token: an alias (``conv``) or a capitalised class name / glob without dots (``Conv*``)."""
    return tok.lower() in TYPE_ALIASES and tok == tok.lower() or (
        tok[:1].isupper() and "." not in tok and not tok.startswith(REGEX) and re.fullmatch(r"[A-Za-z0-9_*?]+", tok) is not None)


def _compile(pattern: str):
    if pattern.startswith(REGEX):
        try:
            return re.compile(pattern[len(REGEX):])
        except re.error as exc:
            raise ConfigError(f"selector {pattern!r}: bad regular expression ({exc})") from None
    return None


def matches(pattern: str, *names: str) -> bool:
    """Whether a glob, ``'re:'`` regex (full match) or exact name matches any of ``names``."""
    rx = _compile(pattern)
    if rx is not None:
        return any(rx.fullmatch(n) for n in names)
    return any(fnmatchcase(n, pattern) for n in names)


def _type_names(module: nn.Module) -> list[str]:
    return [c.__name__ for c in type(module).__mro__]


def type_matches(module: nn.Module, types: Iterable[str]) -> bool:
    """Whether ``module``'s class or a base class matches one of ``types`` (names, globs, aliases)."""
    names = _type_names(module)
    for t in types:
        for pat in TYPE_ALIASES.get(t, (t,)) if t == t.lower() else (t,):
            if any(fnmatchcase(n, pat) for n in names):
                return True
    return False


def all_tensors(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Every parameter and buffer by plain name (parametrized tensors under their plain name), in model order."""
    out: dict[str, tuple[nn.Module, str]] = {}
    for mname, module in model.named_modules():
        if isinstance(module, parametrize.ParametrizationList) or ".parametrizations." in f".{mname}.":
            continue
        attrs = [n for n, _ in module.named_parameters(recurse=False)]
        attrs += [n for n, b in module.named_buffers(recurse=False) if b is not None]
        if parametrize.is_parametrized(module):
            attrs += [a for a in module.parametrizations.keys() if a not in attrs]
        for attr in attrs:
            out[f"{mname}.{attr}" if mname else attr] = (module, attr)
    return out


def closest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """``'did you mean: a, b'`` (difflib) or a short list of real names, for error messages."""
    candidates = list(candidates)
    near = difflib.get_close_matches(name, candidates, n=n, cutoff=0.4)
    if near:
        return "closest: " + ", ".join(near)
    return "names: " + ", ".join(candidates[:6]) + (", ..." if len(candidates) > 6 else "")


def as_selector(spec: SelectorLike) -> Selector:
    """``None`` -> the default selector; strings / string lists are parsed; a :class:`Selector` passes through."""
    if spec is None:
        return Selector()
    if isinstance(spec, Selector):
        return spec
    if isinstance(spec, (str, list, tuple, set, frozenset)) or hasattr(spec, "__iter__"):
        return Selector.parse(list(spec) if not isinstance(spec, str) else spec)
    raise ConfigError(f"cannot select tensors with {spec!r}; give a Selector, a string or a list of strings")


def select_tensors(model: nn.Module, selector: SelectorLike = None,
                   exclude: Iterable[str] = ()) -> dict[str, tuple[nn.Module, str]]:
    """The tensors ``selector`` chooses, by plain name, in model order.

    Args:
        model: any module.
        selector: a :class:`Selector`, selector strings (see :meth:`Selector.parse`; exact names select any tensor)
            or ``None`` for the default (Linear, Conv, HF Conv1D and Embedding weights).
        exclude: extra exclude patterns / names.

    Returns:
        ``{plain_name: (owning_module, attribute)}``.

    Raises:
        ConfigError: a pattern or name that matches nothing (naming the closest real names), or an empty
            selection.

    Example:
        >>> select_tensors(nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2)))
        {'0.weight': (Embedding(10, 4), 'weight'), '1.weight': (Linear(...), 'weight')}
    """
    sel = as_selector(selector)
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    everything = all_tensors(model)
    kept = {n: ma for n, ma in everything.items() if _passes(n, ma, sel)}
    exact = [p for p in sel.include if p in everything]
    for p in sel.include:
        hits = {n for n, (m, a) in kept.items() if matches(p, n, _module_name(n))}
        if not hits and p not in everything:
            raise ConfigError(f"selector {p!r} matches no tensor; {closest(p, list(kept) or list(everything))}")
    if sel.include:
        kept = {n: ma for n, ma in kept.items()
                if any(matches(p, n, _module_name(n)) for p in sel.include if p not in exact)}
        kept.update({n: everything[n] for n in exact})
        kept = {n: everything[n] for n in everything if n in kept}
    for p in sel.exclude + exclude:
        hits = [n for n in kept if matches(p, n, _module_name(n))]
        if not hits:
            raise ConfigError(f"cannot exclude {p!r}: it matches no selected tensor; {closest(p, kept)}")
        kept = {n: ma for n, ma in kept.items() if n not in hits}
    if not kept:
        raise ConfigError(f"{type(model).__name__} has nothing prunable or quantizable: the selector "
                          f"{_describe(sel)} chooses no tensor")
    return kept


def _module_name(name: str) -> str:
    return name.rpartition(".")[0]


def _passes(name: str, module_attr: tuple[nn.Module, str], sel: Selector) -> bool:
    module, attr = module_attr
    if sel.attrs and attr not in sel.attrs:
        return False
    if sel.types and not type_matches(module, sel.types):
        return False
    value = getattr(module, attr, None)
    return isinstance(value, torch.Tensor) and value.numel() >= max(sel.min_numel, 1)


def _describe(sel: Selector) -> str:
    parts = [f"types={','.join(sel.types)}"] if sel.types else []
    parts += [f"include={','.join(sel.include)}"] if sel.include else []
    parts += [f"numel>={sel.min_numel}"] if sel.min_numel else []
    return " ".join(parts) or "(any)"


__all__ = ["Selector", "select_tensors", "all_tensors", "as_selector", "matches", "type_matches", "closest",
           "DEFAULT_TYPES", "TYPE_ALIASES"]
