"""Find a spec's files on this machine: an explicit folder, an environment variable, the HF cache.

Nothing here downloads or raises for missing files: the result says what was found, what is
missing and every place searched, and the caller decides (raise ``location.error()``, show
``location.summary()`` in a listing, offer ``faceshot weights pull``).

The Hugging Face cache is read directly from its documented layout
(``models--org--name/refs/<branch>`` naming a commit, ``snapshots/<commit>/<files>`` linking to
``blobs/``) instead of through ``huggingface_hub``: a core install without the matcher's extra
can still list what is there, and a snapshot that holds our files but not the rest of the
repository (a filtered ``snapshot_download``) is usable, where ``huggingface_hub``'s offline
check would call it incomplete.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from faceshot_core.weights.spec import MissingFile, WeightLocation, WeightSpec

__all__ = ["cached_snapshots", "find_weights", "hf_hub_cache", "repo_cache_folder"]

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def hf_hub_cache(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The Hugging Face Hub cache folder, from the environment as it is *now*.

    ``huggingface_hub.constants`` reads these variables once, at import; reading them here
    keeps a ``HF_HOME`` set later in the process (or by a test) effective.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def repo_cache_folder(cache: Path, repo_id: str) -> Path:
    """``<cache>/models--org--name``: where the cache keeps one model repository."""
    return cache / ("models--" + repo_id.replace("/", "--"))


def cached_snapshots(cache: Path, repo_id: str, revision: str | None = None) -> list[Path]:
    """Snapshot folders of ``repo_id`` in ``cache`` worth looking in, best first.

    A commit hash names its snapshot; a branch or tag goes through ``refs/``.  Without a
    revision, ``refs/main``'s snapshot comes first, then any other snapshot (newest first): a
    download pinned to a commit still holds the repository's files.
    """
    folder = repo_cache_folder(cache, repo_id)
    snapshots = folder / "snapshots"
    if revision is not None and _COMMIT.match(revision):
        return [snapshots / revision] if (snapshots / revision).is_dir() else []
    ordered: list[Path] = []
    ref = folder / "refs" / (revision or "main")
    try:
        commit = ref.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        commit = ""
    if commit and (snapshots / commit).is_dir():
        ordered.append(snapshots / commit)
    if revision is None and snapshots.is_dir():
        others = [p for p in snapshots.iterdir() if p.is_dir() and p not in ordered]
        ordered += sorted(others, key=lambda p: p.stat().st_mtime, reverse=True)
    return ordered


def _scan(spec: WeightSpec, root: Path) -> dict[str, Path]:
    """The spec's files present under ``root`` (first candidate that is a file)."""
    found: dict[str, Path] = {}
    for weight in spec.files:
        # is_file() follows symlinks: a cache entry whose blob is gone counts as missing.
        hit = next((root / c for c in weight.candidates() if (root / c).is_file()), None)
        if hit is not None:
            found[weight.path] = hit
    return found


def _folder_roots(spec: WeightSpec, folder: Path, label: str) -> Iterator[tuple[Path | None, str]]:
    """The roots a user-given folder stands for, with how to describe each.

    The folder may be the repository root (files under ``subfolder``) or the subfolder itself.
    """
    shown = folder.resolve()
    if not folder.exists():
        yield None, f"{label} {shown} (does not exist)"
        return
    if not folder.is_dir():
        yield None, f"{label} {shown} (a file, expected a folder)"
        return
    if spec.subfolder and (folder / spec.subfolder).is_dir():
        yield folder / spec.subfolder, f"{label} {(folder / spec.subfolder).resolve()}"
    yield folder, f"{label} {shown}"


def _places(
    spec: WeightSpec,
    folder: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str] | None,
) -> Iterator[tuple[Path | None, str]]:
    """Every place to look, in order: (root or None when there is nothing to look in, words)."""
    if folder is not None:
        yield from _folder_roots(spec, Path(os.fspath(folder)).expanduser(), "local folder")
    if spec.env_var:
        value = os.environ.get(spec.env_var)
        if value:
            yield from _folder_roots(spec, Path(value).expanduser(), f"${spec.env_var} =")
        else:
            yield None, f"${spec.env_var} (not set)"
    if spec.repo_id:
        cache = hf_hub_cache(cache_dir)
        snapshots = cached_snapshots(cache, spec.repo_id, spec.revision)
        if not snapshots:
            at = f" at revision {spec.revision}" if spec.revision else ""
            yield None, f"Hugging Face cache {cache} (no snapshot of {spec.repo_id}{at})"
        for snap in snapshots:
            yield (
                snap / spec.subfolder if spec.subfolder else snap,
                (f"Hugging Face cache {cache} (snapshot {snap})"),
            )


def find_weights(
    spec: WeightSpec,
    folder: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> WeightLocation:
    """Look for every file of ``spec``; never downloads, never raises for missing files.

    Places, in order: ``folder`` (the repository root or the spec's subfolder in it), the folder
    named by ``$spec.env_var``, then the Hugging Face cache snapshot of ``spec.repo_id`` at
    ``spec.revision`` (``cache_dir``, else ``HF_HUB_CACHE`` / ``HF_HOME`` read now).  The first
    place holding every file wins: files are never mixed from two places, because two
    checkpoints' halves do not make one checkpoint.
    """
    searched: list[str] = []
    roots: list[Path] = []
    best: tuple[Path, dict[str, Path]] | None = None
    for root, words in _places(spec, folder, cache_dir):
        searched.append(words)
        if root is None:
            continue
        roots.append(root)
        found = _scan(spec, root)
        if len(found) == len(spec.files):
            return WeightLocation(spec=spec, root=root, found=found, missing=(),
                                  searched=tuple(searched))  # fmt: skip
        if found and (best is None or len(found) > len(best[1])):
            best = (root, found)
    root, found = best if best is not None else (roots[0] if roots else None, {})
    places = tuple(str(r) for r in roots)
    missing = tuple(
        MissingFile(path=w.path, searched=places) for w in spec.files if w.path not in found
    )
    return WeightLocation(spec=spec, root=root, found=found, missing=missing,
                          searched=tuple(searched))  # fmt: skip
