"""What a component needs (:class:`WeightSpec`) and where it was found (:class:`WeightLocation`).

A spec is plain data: a catalogue can list it, ``find_weights`` can look for it, ``pull_weights``
can download exactly its files, and an error can say precisely what is missing.  Paths in a spec
are relative to its *root* (the repository root plus ``subfolder``), so the same spec describes
a Hugging Face snapshot, a folder made with ``hf download --local-dir`` and a folder copied by
hand from another machine.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, field_validator

from faceshot_core.errors import MissingDependencyError

__all__ = ["MissingFile", "WeightFile", "WeightLocation", "WeightSpec"]

_NAME = re.compile(r"^[A-Za-z0-9][\w.+/-]*$")


def _relative_posix(value: str, *, allow_empty: bool) -> str:
    """A clean relative POSIX path: it is joined to roots and sent to the Hub as a file name."""
    text = value.strip()
    text = text.strip("/") if allow_empty else text.rstrip("/")  # a subfolder may be "/models/"
    if not text:
        if allow_empty:
            return ""
        raise ValueError("must not be empty")
    path = PurePosixPath(text)
    if "\\" in text or path.is_absolute() or any(part in ("..", ".") for part in path.parts):
        raise ValueError(f"must be a relative path without '..' or '.', got {value!r}")
    return str(path)


class WeightFile(BaseModel):
    """One needed file; any of its candidates will do (the first is the preferred one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    alternatives: tuple[str, ...] = ()
    description: str = ""

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _relative_posix(value, allow_empty=False)

    @field_validator("alternatives")
    @classmethod
    def _alternatives(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_relative_posix(v, allow_empty=False) for v in value)

    def candidates(self) -> tuple[str, ...]:
        """``(path, *alternatives)``, in order of preference."""
        return (self.path, *self.alternatives)

    def describe(self, prefix: str = "") -> str:
        """``a (or b, c)``, each with ``prefix`` (the spec's subfolder) in front."""
        first, *rest = (f"{prefix}{c}" for c in self.candidates())
        return f"{first} (or {', '.join(rest)})" if rest else first


class WeightSpec(BaseModel):
    """The files one component (a model, an adapter, a backend's checkpoint) needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    repo_id: str | None = None
    revision: str | None = None
    subfolder: str = ""
    files: tuple[WeightFile, ...] = Field(min_length=1)
    env_var: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"must be a short name (letters, digits, . _ - / +), got {value!r}")
        return value

    @field_validator("subfolder")
    @classmethod
    def _subfolder(cls, value: str) -> str:
        return _relative_posix(value, allow_empty=True)

    @property
    def prefix(self) -> str:
        """``"subfolder/"`` (or ``""``): what turns a spec path into a repository path."""
        return f"{self.subfolder}/" if self.subfolder else ""

    def allow_patterns(self, available: Collection[str] | None = None) -> list[str]:
        """Repository paths of exactly the files to download, one per needed file.

        Without ``available`` (the repository's file list) each file's preferred candidate;
        with it, the first candidate the repository has (a repo may ship only the ``.bin``, or
        only the ``fp16`` variant), skipping files it has none of.  Downloading every candidate
        would fetch the same multi-GB weights two to four times.
        """
        patterns: list[str] = []
        for weight in self.files:
            names = [self.prefix + c for c in weight.candidates()]
            if available is None:
                chosen: str | None = names[0]
            else:
                chosen = next((n for n in names if n in available), None)
            if chosen is not None and chosen not in patterns:
                patterns.append(chosen)
        return patterns


class MissingFile(BaseModel):
    """A needed file found in none of the places searched."""

    model_config = ConfigDict(frozen=True)

    path: str  # the WeightFile's path (relative to the spec's root)
    searched: tuple[str, ...]  # the folders looked in


class WeightLocation(BaseModel):
    """Where a spec's files are: ``root`` holds them all when ``ready``.

    When no place holds every file, ``root`` is the place that holds the most of them (None
    when none holds any or no place exists), ``found`` what it has, and ``missing`` the rest.
    """

    model_config = ConfigDict(frozen=True)

    spec: WeightSpec
    root: Path | None
    found: dict[str, Path]  # WeightFile.path -> the file on disk
    missing: tuple[MissingFile, ...]
    searched: tuple[str, ...]  # every place looked at, in words

    @property
    def ready(self) -> bool:
        return not self.missing and self.root is not None

    def file(self, path: str) -> Path:
        """The file on disk for the spec file ``path`` (KeyError names what is missing)."""
        try:
            return self.found[path]
        except KeyError:
            raise KeyError(f"{self.spec.name}: {path} was not found") from None

    def summary(self) -> str:
        """One line: ``ready (<root>)`` or ``missing a, b (looked in X, Y)``."""
        if self.ready:
            return f"ready ({self.root})"
        names = ", ".join(self.spec.prefix + m.path for m in self.missing)
        return f"missing {names} (looked in {', '.join(self.searched)})"

    def report(self, hint: str = "", *, pull: bool = True) -> list[str]:
        """Indented lines: each missing file, every place searched, how to get the files.

        ``pull``: whether ``faceshot weights pull NAME`` fetches this spec (catalogue specs);
        ``hint`` adds the caller's own way, typically its folder option.
        """
        by_path = {w.path: w for w in self.spec.files}
        lines = [f"  - {by_path[m.path].describe(self.spec.prefix)}" for m in self.missing]
        lines.append("  searched:")
        lines += [f"  - {place}" for place in self.searched]
        ways: list[str] = []
        repo = self.spec.repo_id
        if repo and pull:
            ways.append(f"faceshot weights pull {self.spec.name}  (downloads just these files)")
        if repo:
            wanted = " ".join(self.spec.prefix + m.path for m in self.missing)
            rev = f" --revision {self.spec.revision}" if self.spec.revision else ""
            ways.append(
                f"on a machine with network: hf download {repo} {wanted}{rev} --local-dir DIR, "
                "then copy DIR here (or that machine's Hugging Face cache, see HF_HOME)"
            )
        if self.spec.env_var:
            ways.append(f"set {self.spec.env_var} to a folder that has them")
        if hint:
            ways.append(hint.removeprefix("or "))
        if ways:
            lines.append("  to get them:")
            lines += [f"  - {'or ' if i else ''}{way}" for i, way in enumerate(ways)]
        return lines

    def error(self, hint: str = "", *, pull: bool = True) -> MissingDependencyError:
        """A :class:`MissingDependencyError` with :meth:`report`'s lines under one heading."""
        what = f" ({self.spec.description})" if self.spec.description else ""
        head = f"weights of {self.spec.name}{what} are missing (nothing is downloaded implicitly):"
        return MissingDependencyError("\n".join([head, *self.report(hint, pull=pull)]))
