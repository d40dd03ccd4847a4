"""pull_weights and `faceshot weights pull` for real, against a Hub served on 127.0.0.1.

The server below speaks the few endpoints huggingface_hub uses to download (learned from its
source): ``/api/models/{repo}[/revision/{rev}]`` for the commit, ``/api/models/{repo}/tree/
{commit}[/{path}]`` for the listing, ``HEAD``/``GET /{repo}/resolve/{commit}/{file}`` with
``X-Repo-Commit``, ``ETag`` and ``Content-Length`` (and ``Range`` for resuming), errors with
``X-Error-Code``.  Every request is recorded, so the tests can tell what was downloaded.  The
test component enters the catalogue through a fixture; nothing fake ships with faceshot.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

hub_lib = pytest.importorskip("huggingface_hub")

from huggingface_hub import constants as hub_constants  # noqa: E402

from faceshot import weights_catalog  # noqa: E402
from faceshot.cli.main import main  # noqa: E402
from faceshot_core.errors import FaceshotUserError  # noqa: E402
from faceshot_core.progress import ProgressEvent  # noqa: E402
from faceshot_core.weights import (  # noqa: E402
    WeightFile,
    WeightsDownloadError,
    WeightSpec,
    find_weights,
    pull_weights,
)

# --------------------------------------------------------------------------- a Hub on 127.0.0.1

_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<sub>.+))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
COMMIT = "c0ffee" * 6 + "c0ff"


@dataclass
class FakeHub:
    """Repositories (id -> files), and every (method, path) requested."""

    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def downloads(self) -> list[str]:
        """Repository paths fetched with GET, in order."""
        return [p.split(f"/resolve/{COMMIT}/", 1)[1]
                for m, p in self.requests if m == "GET" and "/resolve/" in p]  # fmt: skip


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # a git blob id's shape; only its form matters here


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub  # set on the per-server subclass

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _send(self, status: int, payload: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(payload))}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def _json(self, data: object, body: bool, status: int = 200, code: str = "") -> None:
        headers = {"Content-Type": "application/json", **({"X-Error-Code": code} if code else {})}
        self._send(status, json.dumps(data).encode(), headers, body)

    def _repo(self, repo_id: str, rev: str | None, body: bool) -> dict[str, bytes] | None:
        files = self.hub.repos.get(repo_id)
        if files is None:
            self._json({"error": "Repository not found"}, body, 404, "RepoNotFound")
        elif rev not in (None, "main", COMMIT):
            self._json({"error": "Invalid rev id"}, body, 404, "RevisionNotFound")
        else:
            return files
        return None

    def _answer(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append((self.command, path))
        if m := _TREE.match(path):
            if (files := self._repo(m["repo"], m["rev"], body)) is not None:
                sub = f"{m['sub'].strip('/')}/" if m["sub"] else ""
                listing = [
                    {"type": "file", "path": name, "size": len(data), "oid": _sha1(data)}
                    for name, data in files.items()
                    if name.startswith(sub)
                ]
                self._json(listing, body)
        elif m := _INFO.match(path):
            if (files := self._repo(m["repo"], m["rev"], body)) is not None:
                siblings = [{"rfilename": name} for name in files]
                self._json({"id": m["repo"], "sha": COMMIT, "siblings": siblings}, body)
        elif m := _RESOLVE.match(path):
            if (files := self._repo(m["repo"], m["rev"], body)) is not None:
                self._file(files.get(m["file"]), body)
        else:
            self._send(404, b"not found", {}, body)

    def _file(self, data: bytes | None, body: bool) -> None:
        if data is None:
            self._json({"error": "Entry not found"}, body, 404, "EntryNotFound")
            return
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        status = 200
        start = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        if start and self.command == "GET":  # a resumed download
            first = int(start[1])
            headers["Content-Range"] = f"bytes {first}-{len(data) - 1}/{len(data)}"
            data, status = data[first:], 206
        self._send(status, data, headers, body)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    """The test Hub, serving acme/toy (the spec's files, variants and unrelated files)."""
    fake = FakeHub(repos={"acme/toy": {
        "models/toy.bin": b"T" * 3000,
        "models/toy.safetensors": b"S" * 3000,  # an alternative: must not be fetched too
        "models/encoder/config.json": b'{"hidden_size": 4}',
        "models/encoder/pytorch_model.bin": b"P" * 500,  # the only encoder weights here
        "models/unrelated.bin": b"U" * 100,
        "README.md": b"# toy",
    }})  # fmt: skip
    handler = type("Handler", (_Handler,), {"hub": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# --------------------------------------------------------------------------- the test component

SPEC = WeightSpec(
    name="toy-test",
    description="a toy component for the download tests",
    repo_id="acme/toy",
    subfolder="models",
    files=(
        WeightFile(path="toy.bin", alternatives=("toy.safetensors",)),
        WeightFile(path="encoder/config.json"),
        WeightFile(path="encoder/model.safetensors", alternatives=("encoder/pytorch_model.bin",)),
    ),
)
WANTED = ["models/toy.bin", "models/encoder/config.json", "models/encoder/pytorch_model.bin"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real cache, no proxy between us and 127.0.0.1, offline mode off, no HF_ENDPOINT."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "default-hub"))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def catalogued(monkeypatch: pytest.MonkeyPatch) -> WeightSpec:
    """The toy component in the weights catalogue, for this test only."""
    real = weights_catalog.load_catalog

    def with_toy() -> weights_catalog.WeightCatalog:
        catalog = real()
        catalog.add(SPEC, "tests")
        return catalog

    monkeypatch.setattr(weights_catalog, "load_catalog", with_toy)
    return SPEC


def _files(folder: Path) -> list[str]:
    """Files under ``folder``, without huggingface_hub's own bookkeeping (.cache/)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and ".cache" not in p.relative_to(folder).parts)  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- the library


def test_pull_into_folder_gets_exactly_the_spec_files(hub: FakeHub, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    root = pull_weights(SPEC, tmp_path / "out", endpoint=hub.url, progress=events.append)
    assert root == tmp_path / "out" / "models"
    # One candidate per file, the one the repository has; nothing else it has.
    assert _files(tmp_path / "out") == sorted(WANTED)
    assert sorted(hub.downloads()) == sorted(WANTED)
    assert (root / "toy.bin").read_bytes() == b"T" * 3000
    assert find_weights(SPEC, tmp_path / "out").ready
    assert events[0] == ProgressEvent("downloading", 0, 3, "files")
    assert events[-1] == ProgressEvent("downloading", 3, 3, "files")


def test_second_pull_is_a_no_op_and_a_lost_file_is_fetched_alone(
    hub: FakeHub, tmp_path: Path
) -> None:
    pull_weights(SPEC, tmp_path / "out", endpoint=hub.url)
    hub.requests.clear()
    pull_weights(SPEC, tmp_path / "out", endpoint=hub.url)
    assert hub.downloads() == []  # only the listing was asked for
    (tmp_path / "out" / "models" / "toy.bin").unlink()
    hub.requests.clear()
    pull_weights(SPEC, tmp_path / "out", endpoint=hub.url)
    assert hub.downloads() == ["models/toy.bin"]


def test_pull_into_hf_cache_is_then_found(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    assert not find_weights(SPEC, cache_dir=cache).ready
    root = pull_weights(SPEC, cache_dir=cache, endpoint=hub.url)
    assert root == cache / "models--acme--toy" / "snapshots" / COMMIT / "models"
    assert (cache / "models--acme--toy" / "refs" / "main").read_text() == COMMIT
    location = find_weights(SPEC, cache_dir=cache)
    assert location.ready and location.root == root
    assert _files(root) == ["encoder/config.json", "encoder/pytorch_model.bin", "toy.bin"]
    # The default cache is HF_HUB_CACHE as it is at call time.
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert find_weights(SPEC).ready
    hub.requests.clear()
    pull_weights(SPEC, endpoint=hub.url)
    assert hub.downloads() == []


def test_endpoint_from_hf_endpoint_at_call_time(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)  # huggingface_hub itself read it at import
    assert pull_weights(SPEC, tmp_path / "out") == tmp_path / "out" / "models"
    assert sorted(hub.downloads()) == sorted(WANTED)


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text and isinstance(exc.value, FaceshotUserError)
    return text


def test_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(WeightsDownloadError) as info:
        pull_weights(SPEC, tmp_path / "out", endpoint=url)
    assert _one_line(info).startswith(f"cannot reach {url} to download acme/toy")


def test_unknown_repository_revision_and_file(hub: FakeHub, tmp_path: Path) -> None:
    other = SPEC.model_copy(update={"repo_id": "acme/nope"})
    with pytest.raises(WeightsDownloadError) as info:
        pull_weights(other, tmp_path / "a", endpoint=hub.url)
    assert _one_line(info).startswith(f"repository acme/nope not found on {hub.url}")
    pinned = SPEC.model_copy(update={"revision": "v9"})
    with pytest.raises(WeightsDownloadError) as info:
        pull_weights(pinned, tmp_path / "b", endpoint=hub.url)
    assert _one_line(info) == f"repository acme/toy has no revision v9 on {hub.url}"
    lacking = SPEC.model_copy(
        update={"files": (*SPEC.files, WeightFile(path="gone.bin", alternatives=("gone.pt",)))}
    )
    hub.requests.clear()
    with pytest.raises(WeightsDownloadError) as info:
        pull_weights(lacking, tmp_path / "c", endpoint=hub.url)
    assert _one_line(info).endswith("has none of: models/gone.bin (or models/gone.pt)")
    assert hub.downloads() == [] and not (tmp_path / "c").exists()  # told before downloading


def test_full_disk_and_bad_target_are_one_line(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*args: object, **kwargs: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hub_lib, "snapshot_download", no_space)
    with pytest.raises(WeightsDownloadError) as info:
        pull_weights(SPEC, tmp_path / "out", endpoint=hub.url)
    assert _one_line(info) == (
        f"no space left on the device while downloading acme/toy into {tmp_path / 'out'}"
    )
    (tmp_path / "file").write_text("x")
    with pytest.raises(WeightsDownloadError) as info:
        pull_weights(SPEC, tmp_path / "file", endpoint=hub.url)
    assert "is a file, expected a folder" in _one_line(info)


def test_spec_without_repository_cannot_be_pulled(tmp_path: Path) -> None:
    local = WeightSpec(name="local", env_var="LOCAL_W", files=(WeightFile(path="w.bin"),))
    with pytest.raises(WeightsDownloadError) as info:
        pull_weights(local, tmp_path)
    assert _one_line(info) == (
        "local has no Hugging Face repository to download from; set LOCAL_W to a folder "
        "that has its files"
    )


# --------------------------------------------------------------------------- the command line


def test_cli_pull_to_folder_and_list(
    hub: FakeHub,
    catalogued: WeightSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    assert main(["weights", "pull", "toy-test", "--to", str(tmp_path / "w")]) == 0
    assert _files(tmp_path / "w") == sorted(WANTED)
    assert f"toy-test: 3 files in {tmp_path / 'w' / 'models'}" in capsys.readouterr().err

    cache = tmp_path / "hub"
    assert main(["weights", "list", "--hf-cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "toy-test: a toy component for the download tests  [tests]" in out
    assert "repository  acme/toy, in models/, 3 files" in out
    assert f"Hugging Face cache {cache} (no snapshot of acme/toy)" in out
    assert "sd15:" in out and "ip-adapter:" in out  # the matcher's components are listed too

    assert main(["weights", "pull", "toy-test", "--hf-cache", str(cache), "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["weights", "list", "--hf-cache", str(cache)]) == 0
    snapshot = cache / "models--acme--toy" / "snapshots" / COMMIT / "models"
    assert f"status      found in {snapshot}" in capsys.readouterr().out


def test_cli_errors_are_one_line_exit_2(
    catalogued: WeightSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["weights", "pull", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown weights 'nope'; known: sd15, sd21, ip-adapter" in err
    assert "toy-test" in err

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert main(["weights", "pull", "toy-test", "--to", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("faceshot: error: cannot reach http://127.0.0.1")
    assert "Traceback" not in err


def test_catalogue_lists_backend_weight_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backends declaring weight_specs join the catalogue; one that fails is reported."""

    class Entry:
        def __init__(self, name: str, cls: type) -> None:
            self.name, self.cls = name, cls

    class WithWeights:
        @classmethod
        def default_options(cls) -> dict[str, str]:
            return {"size": "small"}

        @classmethod
        def weight_specs(cls, options: dict[str, str]) -> tuple[WeightSpec, ...]:
            return (SPEC.model_copy(update={"name": f"toy-{options['size']}"}),)

    class Broken(WithWeights):
        @classmethod
        def weight_specs(cls, options: dict[str, str]) -> tuple[WeightSpec, ...]:
            raise RuntimeError("no config\nmore")

    class NoWeights:
        pass

    registry = [Entry("good", WithWeights), Entry("bad", Broken), Entry("old", NoWeights)]
    monkeypatch.setattr(weights_catalog, "_backend_registry", lambda: registry)
    catalog = weights_catalog.load_catalog()
    assert catalog.names()[:3] == ["sd15", "sd21", "ip-adapter"]
    assert catalog.get("toy-small").used_by == ("backend good",)
    assert catalog.problems == ["backend bad: weight_specs failed: RuntimeError: no config"]
    with pytest.raises(weights_catalog.UnknownWeightsError, match="known: sd15, sd21"):
        catalog.get("old")


def test_cli_pull_mofa_fetches_exactly_its_files_and_the_backend_is_ready(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MOFA plugin's weights (when installed): only the landmark path's 10 files come down,
    none of the repository's other models, and the folder is then all the backend needs."""
    mofa_testing = pytest.importorskip("faceshot_mofa.testing")
    from faceshot_mofa.backend import MofaBackend

    released = mofa_testing.write_random_weights(tmp_path / "released", tiny=True)
    files = {str(p.relative_to(released)): p.read_bytes()
             for p in released.rglob("*") if p.is_file()}  # fmt: skip
    files["ckpts/aniportrait/audio2mesh.pt"] = b"not for mofa"
    files["ckpts/mofa/traj_controlnet/diffusion_pytorch_model.safetensors"] = b"drag adapter"
    hub.repos["MyNiuuu/MOFA-Video-Hybrid"] = files
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    assert main(["weights", "pull", "mofa", "--to", str(tmp_path / "w"), "-q"]) == 0
    wanted = sorted(MofaBackend.weight_specs(MofaBackend.default_options())[0].allow_patterns())
    assert sorted(hub.downloads()) == wanted and len(wanted) == 10
    options = MofaBackend.parse_options({"weights": str(tmp_path / "w")})
    assert MofaBackend.readiness(options, "cpu").ready
