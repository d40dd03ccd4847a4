"""find_weights and the specs: folders, environment variables, a real Hugging Face cache layout.

No network and no huggingface_hub call: the cache is built in tmp exactly as huggingface_hub
lays it out (``models--org--name/refs/main`` naming a commit, ``snapshots/<commit>/<files>``
as links into ``blobs/``), and every place searched must show up when files are missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from faceshot_core.errors import MissingDependencyError
from faceshot_core.weights import (
    WeightFile,
    WeightSpec,
    cached_snapshots,
    find_weights,
    hf_hub_cache,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OLD_COMMIT = "89abcdef0123456789abcdef0123456789abcdef"

SPEC = WeightSpec(
    name="toy",
    description="a toy model",
    repo_id="acme/toy",
    subfolder="models",
    env_var="FACESHOT_TEST_TOY_WEIGHTS",
    files=(
        WeightFile(path="toy.bin", alternatives=("toy.safetensors",)),
        WeightFile(path="encoder/config.json"),
        WeightFile(
            path="encoder/model.safetensors", alternatives=("encoder/model.fp16.safetensors",)
        ),
    ),
)


def _write(root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"w")
    return root


def _hub_snapshot(cache: Path, repo_id: str, names: list[str], commit: str = COMMIT,
                  ref: str | None = "main") -> Path:  # fmt: skip
    """A snapshot as huggingface_hub writes one: files are symlinks to content-named blobs."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        blob = repo / "blobs" / f"{commit[:8]}{i:032d}"
        blob.write_bytes(b"w")
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        (snap / name).symlink_to(blob)
    snap.mkdir(parents=True, exist_ok=True)
    if ref is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snap


ALL = ["models/toy.bin", "models/encoder/config.json", "models/encoder/model.safetensors"]


@pytest.fixture(autouse=True)
def _clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("FACESHOT_TEST_TOY_WEIGHTS", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_spec_candidates_and_allow_patterns() -> None:
    toy = SPEC.files[0]
    assert toy.candidates() == ("toy.bin", "toy.safetensors")
    assert SPEC.allow_patterns() == ALL
    # With the repository's listing: the first candidate it has, nothing it lacks.
    listing = {"models/toy.safetensors", "models/encoder/config.json", "models/other.bin"}
    assert SPEC.allow_patterns(listing) == ["models/toy.safetensors", "models/encoder/config.json"]


@pytest.mark.parametrize("bad", ["/abs/file.bin", "../up.bin", "a/../b.bin", "a\\b.bin", ""])
def test_spec_paths_must_be_relative(bad: str) -> None:
    with pytest.raises(ValidationError):
        WeightFile(path=bad)


def test_spec_needs_files_and_a_usable_name() -> None:
    with pytest.raises(ValidationError):
        WeightSpec(name="x", files=())
    with pytest.raises(ValidationError):
        WeightSpec(name="two words", files=(WeightFile(path="a"),))
    assert WeightSpec(name="x", subfolder="/models/", files=(WeightFile(path="a"),)).subfolder == (
        "models"
    )


def test_found_in_a_folder_repo_root_or_subfolder(tmp_path: Path) -> None:
    repo_root = _write(tmp_path / "ipa", ALL)
    loc = find_weights(SPEC, repo_root)
    assert loc.ready and loc.root == repo_root / "models"
    assert loc.file("toy.bin") == repo_root / "models" / "toy.bin"
    assert loc.summary() == f"ready ({repo_root / 'models'})"
    # The subfolder itself, with the fp16 variant and the alternative format, also does.
    models = _write(tmp_path / "m", ["toy.safetensors", "encoder/config.json",
                                     "encoder/model.fp16.safetensors"])  # fmt: skip
    loc = find_weights(SPEC, models)
    assert loc.ready and loc.root == models
    assert loc.file("encoder/model.safetensors").name == "model.fp16.safetensors"


def test_found_via_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _write(tmp_path / "env", ALL)
    monkeypatch.setenv("FACESHOT_TEST_TOY_WEIGHTS", str(folder))
    loc = find_weights(SPEC)
    assert loc.ready and loc.root == folder / "models"
    assert loc.searched[0] == f"$FACESHOT_TEST_TOY_WEIGHTS = {(folder / 'models').resolve()}"


def test_found_in_hf_cache_read_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "hf-home"
    snap = _hub_snapshot(home / "hub", "acme/toy", ALL)
    assert not find_weights(SPEC).ready  # HF_HUB_CACHE points elsewhere
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(home))  # set after import: still honoured
    assert hf_hub_cache() == home / "hub"
    loc = find_weights(SPEC)
    assert loc.ready and loc.root == snap / "models"
    assert loc.file("encoder/config.json").resolve().parent.name == "blobs"
    # An explicit cache_dir wins over the environment.
    assert find_weights(SPEC, cache_dir=home / "hub").ready
    assert not find_weights(SPEC, cache_dir=tmp_path / "empty").ready


def test_hf_cache_revisions(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    old = _hub_snapshot(cache, "acme/toy", ALL, commit=OLD_COMMIT, ref=None)
    new = _hub_snapshot(cache, "acme/toy", ALL[:1], commit=COMMIT)
    # refs/main's snapshot comes first; an older complete snapshot is still used.
    assert cached_snapshots(cache, "acme/toy")[0] == new
    loc = find_weights(SPEC)
    assert loc.ready and loc.root == old / "models"
    # A pinned commit reads only its own snapshot; a branch goes through refs/.
    pinned = SPEC.model_copy(update={"revision": COMMIT})
    assert not find_weights(pinned).ready
    assert find_weights(SPEC.model_copy(update={"revision": OLD_COMMIT})).ready
    missing = find_weights(SPEC.model_copy(update={"revision": "v2"}))
    assert "(no snapshot of acme/toy at revision v2)" in missing.searched[-1]


def test_first_complete_place_wins_and_places_are_not_mixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    partial = _write(tmp_path / "partial", ALL[:2])
    env = _write(tmp_path / "env", ALL)
    _hub_snapshot(tmp_path / "hub", "acme/toy", ALL)
    monkeypatch.setenv("FACESHOT_TEST_TOY_WEIGHTS", str(env))
    loc = find_weights(SPEC, partial)
    assert loc.ready and loc.root == env / "models"
    # Two halves in two places are not one set of weights.
    monkeypatch.delenv("FACESHOT_TEST_TOY_WEIGHTS")
    half = _write(tmp_path / "half", ALL[2:])
    cache_half = tmp_path / "hub2"
    _hub_snapshot(cache_half, "acme/toy", ALL[:2])
    loc = find_weights(SPEC, half, cache_dir=cache_half)
    assert not loc.ready
    assert loc.root == cache_half / "models--acme--toy" / "snapshots" / COMMIT / "models"
    assert [m.path for m in loc.missing] == ["encoder/model.safetensors"]


def test_missing_files_list_every_place(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    _hub_snapshot(tmp_path / "hub", "acme/toy", ["models/toy.bin"])
    snap = tmp_path / "hub" / "models--acme--toy" / "snapshots" / COMMIT
    (snap / "models" / "toy.bin").resolve().unlink()  # a link whose blob is gone is missing
    loc = find_weights(SPEC, empty)
    assert not loc.ready
    assert [m.path for m in loc.missing] == [w.path for w in SPEC.files]
    assert loc.searched == (
        f"local folder {empty.resolve()}",
        "$FACESHOT_TEST_TOY_WEIGHTS (not set)",
        f"Hugging Face cache {tmp_path / 'hub'} (snapshot {snap})",
    )
    assert loc.missing[0].searched == (str(empty), str(snap / "models"))
    summary = loc.summary()
    assert summary.startswith("missing models/toy.bin, models/encoder/config.json, ")
    assert "\n" not in summary and f"local folder {empty.resolve()}" in summary

    err = loc.error("or pass a folder with --toy-weights DIR")
    assert isinstance(err, MissingDependencyError)
    msg = str(err)
    for needed in (
        "weights of toy (a toy model) are missing",
        "  - models/toy.bin (or models/toy.safetensors)",
        "  - models/encoder/model.safetensors (or models/encoder/model.fp16.safetensors)",
        f"  - local folder {empty.resolve()}",
        f"  - Hugging Face cache {tmp_path / 'hub'} (snapshot {snap})",
        "  - faceshot weights pull toy",
        "hf download acme/toy models/toy.bin models/encoder/config.json",
        "  - or set FACESHOT_TEST_TOY_WEIGHTS to a folder that has them",
        "  - or pass a folder with --toy-weights DIR",
    ):
        assert needed in msg, needed
    assert "faceshot weights pull" not in str(loc.error(pull=False))


def test_folder_that_does_not_exist_or_is_a_file(tmp_path: Path) -> None:
    loc = find_weights(SPEC, tmp_path / "nope")
    assert f"local folder {(tmp_path / 'nope').resolve()} (does not exist)" in loc.searched
    assert loc.root is None and len(loc.missing) == 3
    (tmp_path / "file").write_text("x")
    loc = find_weights(SPEC, tmp_path / "file")
    assert f"{(tmp_path / 'file').resolve()} (a file, expected a folder)" in loc.searched[0]
    assert f"Hugging Face cache {tmp_path / 'hub'} (no snapshot of acme/toy)" in loc.searched


def test_spec_without_repository_or_env(tmp_path: Path) -> None:
    local = WeightSpec(name="local", files=(WeightFile(path="w.bin"),))
    loc = find_weights(local)
    assert not loc.ready and loc.searched == () and loc.root is None
    msg = str(loc.error())
    assert "hf download" not in msg and "weights pull" not in msg and "w.bin" in msg
    assert find_weights(local, _write(tmp_path / "l", ["w.bin"])).ready


def test_matcher_specs_match_what_the_matcher_reads(tmp_path: Path) -> None:
    from faceshot_core.matching.weights import (
        IP_ADAPTER_REPO,
        MATCHER_WEIGHTS,
        SD15_REPO,
        locate_image_encoder,
        locate_weights,
    )

    names = {spec.name: spec for spec in MATCHER_WEIGHTS}
    assert set(names) == {"sd15", "sd21", "ip-adapter"}
    assert names["sd15"].repo_id == SD15_REPO and names["ip-adapter"].repo_id == IP_ADAPTER_REPO
    unet = next(w for w in names["sd15"].files if w.path.startswith("unet/diffusion"))
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in unet.alternatives
    # A folder written from the specs' own preferred files is what the matcher accepts.
    sd = _write(tmp_path / "sd", [w.path for w in names["sd15"].files])
    ipa = _write(tmp_path / "ipa", names["ip-adapter"].allow_patterns())
    paths = locate_weights(sd, ip_adapter=ipa)
    assert paths.model.root == sd and paths.model.name == "sd"
    assert paths.ip_adapter is not None
    assert paths.ip_adapter.file("ip_adapter:weights") == ipa / "models" / "ip-adapter_sd15.bin"
    assert paths.image_encoder_dir == ipa / "models" / "image_encoder"
    assert locate_image_encoder(ipa) == ipa / "models" / "image_encoder"
    assert (
        locate_image_encoder(ipa / "models" / "image_encoder") == ipa / "models" / "image_encoder"
    )
    # The same files in the Hugging Face cache, found by Hub id.
    _hub_snapshot(tmp_path / "hub", SD15_REPO, [w.path for w in names["sd15"].files])
    hub = locate_weights(SD15_REPO)
    assert hub.model.is_hub_id and hub.model.name == SD15_REPO
    assert hub.model.file("scheduler:config").name == "scheduler_config.json"


def test_matcher_error_names_pull_and_extra_only_when_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from faceshot_core.matching import weights as matcher_weights

    with pytest.raises(MissingDependencyError) as info:
        matcher_weights.locate_weights(tmp_path / "none", ip_adapter="h94/IP-Adapter")
    msg = str(info.value)
    assert "faceshot weights pull ip-adapter" in msg and "--ip-adapter PATH" in msg
    # A folder argument is not the catalogue's sd15, but sd15 can fill such a folder.
    assert "  - faceshot weights pull sd15  (downloads" not in msg
    assert "with --model PATH (e.g. one made by: faceshot weights pull sd15 --to PATH)" in msg
    installed = all(importlib.util.find_spec(m) for m in ("torch", "diffusers", "transformers"))
    assert ("faceshot[match]" in msg) is not installed
    monkeypatch.setattr(matcher_weights, "_matcher_packages_missing", lambda: ["diffusers"])
    with pytest.raises(MissingDependencyError) as info:
        matcher_weights.locate_weights("acme/custom-sd")
    msg = str(info.value)
    assert "the matcher also needs diffusers: pip install 'faceshot[match]'" in msg
    assert "weights pull" not in msg  # not in the catalogue: hf download is the way
    assert "hf download acme/custom-sd unet/config.json" in msg
