"""The observable registry: a new observable is one `@register(...)` (or `register_prefix` for a
family named by a parameter, like `classifier:PATH`).

Event-level observables hold one value per event; hadron-level ones (spectra) hold one value per
hadron plus int64 event offsets (the Arrow list layout), so that a hadron inherits its event's weight.
Nothing here depends on the Lund parameters: the fit reweights these fixed values, which is why they
are computed at load time and never per optimizer step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ParameterError
from ..store.hadrons import HadronSample


@dataclass
class Observable:
    """Values of one observable on one sample: [n_events] or [n_hadrons] with event `offsets`."""

    name: str
    level: str
    values: np.ndarray
    offsets: np.ndarray | None = None

    def event_index(self) -> np.ndarray:
        """For hadron-level values: the event each value belongs to (int64)."""
        if self.offsets is None:
            return np.arange(len(self.values), dtype=np.int64)
        return np.repeat(np.arange(len(self.offsets) - 1, dtype=np.int64), np.diff(self.offsets))


@dataclass(frozen=True)
class ObservableSpec:
    name: str
    level: str                      # "event" or "hadron"
    description: str
    func: Callable                  # HadronSample -> values [n_events] or [n_hadrons]


@dataclass(frozen=True)
class PrefixSpec:
    prefix: str
    level: str
    description: str
    make: Callable                  # (argument, context dict) -> (HadronSample -> values)
    example: str                    # e.g. classifier:PATH
    argument: str                   # what follows the prefix, e.g. "a model path (train one with ...)"


OBSERVABLES: dict[str, ObservableSpec] = {}
GROUPS: dict[str, tuple] = {}
PREFIXES: dict[str, PrefixSpec] = {}


def register(name: str, level: str, description: str):
    """Decorator: register `func(HadronSample) -> values` as observable `name`."""
    if level not in ("event", "hadron"):
        raise ValueError(f"level {level!r}: 'event' or 'hadron'")

    def deco(func):
        if name in OBSERVABLES or name in GROUPS:
            raise ValueError(f"observable {name!r} is registered already")
        OBSERVABLES[name] = ObservableSpec(name, level, description, func)
        return func
    return deco


def register_group(name: str, members: tuple) -> None:
    """A shorthand accepted on the command line (e.g. shapes = thrust, sphericity)."""
    GROUPS[name] = tuple(members)


def register_prefix(prefix: str, level: str, description: str, make: Callable, example: str,
                    argument: str) -> None:
    """A family of observables named `prefix` + argument; `make(argument, context)` gives the function."""
    PREFIXES[prefix] = PrefixSpec(prefix, level, description, make, example, argument)


def _prefix_of(name: str) -> PrefixSpec | None:
    for p, spec in PREFIXES.items():
        if name.startswith(p):
            return spec
    return None


def expand_names(names) -> list[str]:
    """Validate observable names (and group shorthands); unknown names are an error."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    out = []
    for raw in names:
        n = raw.strip()
        spec = _prefix_of(n)
        if n in GROUPS:
            out.extend(GROUPS[n])
        elif n in OBSERVABLES:
            out.append(n)
        elif spec is not None:
            if not n[len(spec.prefix):]:
                raise ParameterError(f"observables: '{spec.prefix}' needs {spec.argument}")
            out.append(n)
        else:
            known = ", ".join(list(OBSERVABLES) + list(GROUPS) + [s.example for s in PREFIXES.values()])
            raise ParameterError(f"observables: {n!r} does not exist; known: {known}")
    if not out:
        raise ParameterError("observables: none given; e.g. --observables multiplicity,shapes")
    seen = set()
    return [n for n in out if not (n in seen or seen.add(n))]


def level_of(name: str) -> str:
    spec = _prefix_of(name)
    return spec.level if spec is not None else OBSERVABLES[name].level


def compute(h: HadronSample, names, classifiers: dict | None = None) -> dict[str, Observable]:
    """Every observable in `names` on sample `h`. `classifiers` (path -> model) is the context that
    prefix observables may use instead of loading from disk."""
    out = {}
    context = {"classifiers": classifiers or {}}
    for name in expand_names(names):
        spec = _prefix_of(name)
        if spec is not None:
            level, func = spec.level, spec.make(name[len(spec.prefix):], context)
        else:
            level, func = OBSERVABLES[name].level, OBSERVABLES[name].func
        v = func(h)
        if level == "hadron":
            # Per particle of the sample, or per hadron (h.hadrons()) when it holds other particles too.
            offs = h.offsets if len(v) == len(h.px) else h.hadrons().offsets
            out[name] = Observable(name, "hadron", v, offs)
        else:
            out[name] = Observable(name, "event", np.ascontiguousarray(v, np.float64))
    return out
