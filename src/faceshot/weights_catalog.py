"""Every component's weights in one list: the matcher's, then each registered backend's.

``faceshot weights list`` shows this catalogue and ``faceshot weights pull NAME`` downloads one
entry of it.  It is built on demand from the live plugin registry, so a newly installed backend
plugin's weights appear without any change here; a plugin whose ``weight_specs`` fails is
reported, not fatal, like a plugin that fails to load.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from faceshot_core.errors import FaceshotUserError
from faceshot_core.weights import WeightSpec

__all__ = ["CatalogEntry", "UnknownWeightsError", "WeightCatalog", "load_catalog"]


class UnknownWeightsError(FaceshotUserError):
    """A name that is not in the weights catalogue."""


@dataclass(frozen=True)
class CatalogEntry:
    """One component's weights and who uses them ("matcher", "backend mofa")."""

    spec: WeightSpec
    used_by: tuple[str, ...]


@dataclass
class WeightCatalog:
    """Catalogue entries by name, plus what went wrong while collecting them."""

    entries: dict[str, CatalogEntry] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, spec: WeightSpec, user: str) -> None:
        """Add ``spec`` for ``user``; the same spec from two users is one entry."""
        known = self.entries.get(spec.name)
        if known is None:
            self.entries[spec.name] = CatalogEntry(spec, (user,))
        elif known.spec == spec:
            if user not in known.used_by:
                self.entries[spec.name] = CatalogEntry(spec, (*known.used_by, user))
        else:
            self.problems.append(
                f"{user} declares weights {spec.name!r} unlike those of "
                f"{', '.join(known.used_by)}; only the first is listed"
            )

    def names(self) -> list[str]:
        return list(self.entries)

    def get(self, name: str) -> CatalogEntry:
        """The entry for ``name``, or one line listing the known names."""
        if name not in self.entries:
            known = ", ".join(self.entries) or "none"
            raise UnknownWeightsError(f"unknown weights {name!r}; known: {known}")
        return self.entries[name]

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self.entries.values())


def _backend_registry() -> Any:
    """The live backend registry (a function of its own so tests can stand in for it)."""
    from faceshot_backends.registry import backend_registry

    return backend_registry()


def _backend_specs(catalog: WeightCatalog) -> None:
    for entry in _backend_registry():
        specs_of = getattr(entry.cls, "weight_specs", None)
        if specs_of is None:
            continue  # a backend written before the contract listed weights
        try:
            defaults = getattr(entry.cls, "default_options", None)
            options = defaults() if defaults is not None else entry.cls.parse_options(None)
            specs = tuple(specs_of(options))
        except Exception as exc:  # a plugin's bug must not break the listing
            text = str(exc).strip().splitlines()
            why = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
            catalog.problems.append(f"backend {entry.name}: weight_specs failed: {why}")
            continue
        for spec in specs:
            catalog.add(spec, f"backend {entry.name}")


def load_catalog() -> WeightCatalog:
    """The matcher's components, then each registered backend's (with its default options)."""
    from faceshot_core.matching.weights import MATCHER_WEIGHTS

    catalog = WeightCatalog()
    for spec in MATCHER_WEIGHTS:
        catalog.add(spec, "matcher")
    _backend_specs(catalog)
    return catalog
