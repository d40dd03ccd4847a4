"""Download exactly a spec's files from the Hugging Face Hub, on request only.

Nothing in faceshot calls :func:`pull_weights` implicitly: loading a model never reaches the
network (``find_weights`` reads folders and the cache), so a run behaves the same on a machine
without network, and a multi-GB download happens only when someone asks for it
(``faceshot weights pull NAME``).

The download itself is ``huggingface_hub.snapshot_download`` restricted by ``allow_patterns`` to
one candidate per needed file: resumable (``.incomplete`` files), verified by size, written to
temporary names and renamed, and stored either in the Hugging Face cache (where
``find_weights`` finds it with no option) or in a plain folder (``to``).  Which candidate is
fetched depends on what the repository has, so the listing is read first; a file the
repository lacks is reported before any byte is downloaded.
"""

from __future__ import annotations

import errno
import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from faceshot_core.errors import FaceshotUserError, MissingDependencyError
from faceshot_core.progress import ProgressSink, report
from faceshot_core.weights.locate import find_weights, hf_hub_cache
from faceshot_core.weights.spec import WeightSpec

__all__ = ["WeightsDownloadError", "pull_weights"]


class WeightsDownloadError(FaceshotUserError):
    """A download that could not be done: no network, unknown repository or file, full disk."""


def _import_hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise MissingDependencyError(
            "downloading weights needs huggingface_hub: pip install huggingface_hub "
            "(it comes with pip install 'faceshot[match]')"
        ) from None
    return huggingface_hub


def _progress_bar_class(sink: ProgressSink | None) -> type[Any]:
    """A silent tqdm class for ``snapshot_download`` that reports finished files to ``sink``.

    ``snapshot_download`` uses ``tqdm_class`` for its bar of files (unit "it", total = number
    of files) and for its byte totals (unit "B"); only the former becomes events.  Silent
    either way: the library prints no bars of its own into faceshot's output.
    """
    from tqdm import tqdm

    class FileEvents(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            self._files = kwargs.get("unit", "it") != "B"
            self._done = 0
            super().__init__(*args, **kwargs)
            if self._files:
                report(sink, "downloading", 0, kwargs.get("total"), "files")

        def update(self, n: float | None = 1) -> bool | None:
            if self._files:
                self._done += int(n or 0)
                report(sink, "downloading", self._done, self.total, "files")
            return super().update(n)

    return FileEvents


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else exc.__class__.__name__


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection and timeout errors of the HTTP clients huggingface_hub versions use.

    2.x speaks httpx2, 1.x httpx, 0.x requests; whichever is installed is the one in use.
    """
    found: list[type[BaseException]] = []
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests", ("ConnectionError", "Timeout"))):  # fmt: skip
        try:
            imported = importlib.import_module(module)
        except ImportError:
            continue
        found += [c for c in (getattr(imported, n, None) for n in names) if isinstance(c, type)]
    return tuple(found)


@contextmanager
def _hub_errors(spec: WeightSpec, endpoint: str, target: Path) -> Iterator[None]:
    """Turn huggingface_hub's and the OS's exceptions into one clear line each."""
    from huggingface_hub import errors

    repo = f"{spec.repo_id}" + (f"@{spec.revision}" if spec.revision else "")
    try:
        yield
    except FaceshotUserError:
        raise
    except _transport_errors() as exc:
        raise WeightsDownloadError(
            f"cannot reach {endpoint} to download {repo}: {_first_line(exc)}"
        ) from None
    except errors.GatedRepoError:
        raise WeightsDownloadError(
            f"{repo} is gated: accept its licence on {endpoint}/{spec.repo_id} and log in "
            "(hf auth login, or set HF_TOKEN), then pull again"
        ) from None
    except errors.RepositoryNotFoundError:
        raise WeightsDownloadError(
            f"repository {spec.repo_id} not found on {endpoint} (or it is private: log in with "
            "hf auth login, or set HF_TOKEN)"
        ) from None
    except errors.RevisionNotFoundError:
        raise WeightsDownloadError(
            f"repository {spec.repo_id} has no revision {spec.revision or 'main'} on {endpoint}"
        ) from None
    except errors.RemoteEntryNotFoundError as exc:
        raise WeightsDownloadError(
            f"{repo}: a file is not on {endpoint}: {_first_line(exc)}"
        ) from None
    except errors.OfflineModeIsEnabled:
        raise WeightsDownloadError("HF_HUB_OFFLINE is set: unset it to download weights") from None
    except errors.HfHubHTTPError as exc:
        raise WeightsDownloadError(f"downloading {repo} from {endpoint} failed: "
                                   f"{_first_line(exc)}") from None  # fmt: skip
    except errors.LocalEntryNotFoundError as exc:
        # snapshot_download's way of saying the Hub could not be reached.
        cause = exc.__cause__ or exc
        raise WeightsDownloadError(
            f"cannot reach {endpoint} to download {repo}: {_first_line(cause)}"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise WeightsDownloadError(
                f"no space left on the device while downloading {repo} into {target}"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise WeightsDownloadError(f"cannot write into {target}: {exc.strerror}") from None
        raise


def _check_target(to: Path) -> None:
    if to.exists() and not to.is_dir():
        raise WeightsDownloadError(f"{to} is a file, expected a folder to download into")
    parent = to if to.exists() else next((p for p in to.parents if p.exists()), Path("."))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise WeightsDownloadError(f"cannot write into {parent}")


def pull_weights(
    spec: WeightSpec,
    to: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    progress: ProgressSink | None = None,
) -> Path:
    """Download ``spec``'s files; return the folder that now holds them all (the spec's root).

    ``to``: a plain folder (files at their repository paths under it); default the Hugging Face
    cache (``cache_dir``, else ``HF_HUB_CACHE`` / ``HF_HOME`` read now).  ``endpoint``: default
    ``$HF_ENDPOINT`` read now (``huggingface_hub`` reads it only at import), else the Hub.
    Files already there are not fetched again; an interrupted download resumes.  Every failure
    is one :class:`WeightsDownloadError` line.
    """
    if not spec.repo_id:
        where = f"set {spec.env_var} to" if spec.env_var else "pass"
        raise WeightsDownloadError(
            f"{spec.name} has no Hugging Face repository to download from; {where} a folder "
            "that has its files"
        )
    hub = _import_hub()
    from huggingface_hub import constants
    from huggingface_hub.hf_api import RepoFile

    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    shown_endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    target = Path(to).expanduser() if to is not None else None
    cache = hf_hub_cache(cache_dir)
    if target is not None:
        _check_target(target)
    with _hub_errors(spec, shown_endpoint, target or cache):
        api = hub.HfApi(endpoint=endpoint)
        commit = api.repo_info(spec.repo_id, revision=spec.revision).sha
        tree = api.list_repo_tree(spec.repo_id, path_in_repo=spec.subfolder or None,
                                  recursive=True, revision=commit)  # fmt: skip
        listing = {entry.path for entry in tree if isinstance(entry, RepoFile)}
        has = listing.__contains__
        absent = [w for w in spec.files if not any(has(spec.prefix + c) for c in w.candidates())]
        if absent:
            names = "; ".join(w.describe(spec.prefix) for w in absent)
            raise WeightsDownloadError(
                f"{spec.repo_id} (commit {str(commit)[:12]}) on {shown_endpoint} has none of: "
                f"{names}"
            )
        folder = hub.snapshot_download(
            spec.repo_id,
            revision=spec.revision,  # a branch name, so the cache records refs/<branch>
            allow_patterns=spec.allow_patterns(listing),
            local_dir=target,
            cache_dir=cache,
            endpoint=endpoint,
            tqdm_class=_progress_bar_class(progress),
        )
    plain = spec.model_copy(update={"repo_id": None, "env_var": None})
    location = find_weights(plain, folder)
    if not location.ready or location.root is None:
        raise WeightsDownloadError(f"after downloading {spec.repo_id}: {location.summary()}")
    return location.root
