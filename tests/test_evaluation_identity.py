"""faceshot.evaluation.identity: CLIP similarity to the reference, found and loaded offline.

A tiny CLIP vision model is built in code, saved with ``save_pretrained`` and loaded through
the same search and loading path as a real encoder (a folder, the environment variable, a
Hugging Face cache snapshot); without one, identity is "not measured" with the reason.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from faceshot.evaluation.encoder import CLIP_ENV, find_encoder
from faceshot.evaluation.identity import identity_figures, load_embedder, sample_every
from faceshot_core.video import write_video

transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")

TINY = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}


@pytest.fixture(autouse=True)
def no_encoder_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty Hugging Face cache and no environment variable: only what a test puts."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv(CLIP_ENV, raising=False)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ``CLIPVisionModelWithProjection`` saved as a transformers folder."""
    import torch

    torch.manual_seed(0)
    config = transformers.CLIPVisionConfig(projection_dim=8, **TINY)
    folder = tmp_path_factory.mktemp("tiny-clip")
    transformers.CLIPVisionModelWithProjection(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_video(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    """Frames: the reference, its negative, the reference again, a grey picture."""
    path = tmp_path_factory.mktemp("identity") / "clip.mp4"
    grey = np.full_like(astronaut, 128)
    write_video(path, [astronaut, 255 - astronaut, astronaut, grey], 8.0)
    return path


def test_every_sampled_frame_gets_a_similarity(
    tiny_clip: Path, clip_video: Path, astronaut: np.ndarray
) -> None:
    figures, series, name = identity_figures(clip_video, 4, astronaut, clip=tiny_clip, every=1)
    assert name == tiny_clip.name
    sims = np.asarray(series["identity.similarity"].values, dtype=float)
    assert series["identity.similarity"].frames == [0, 1, 2, 3]
    assert ((sims >= -1) & (sims <= 1)).all()
    assert sims[0] > 0.99 and sims[2] > 0.99  # the reference itself (after H.264)
    assert sims[1] < sims[0] and sims[3] < sims[0]
    by_key = {f.key: f for f in figures}
    assert by_key["identity.similarity"].value == pytest.approx(sims.mean())
    assert by_key["identity.similarity_worst"].value == pytest.approx(sims.min())

    _, series, _ = identity_figures(clip_video, 4, astronaut, clip=tiny_clip, every=3)
    assert series["identity.similarity"].frames == [0, 3]


def test_sampling_embeds_at_most_32_frames() -> None:
    assert [sample_every(n) for n in (1, 32, 33, 64, 65, 1000)] == [1, 1, 2, 2, 3, 32]


def test_encoder_from_the_environment_variable(
    tiny_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CLIP_ENV, str(tiny_clip))
    embedder, name = load_embedder()
    assert embedder is not None and name == tiny_clip.name
    assert embedder.embed([np.zeros((40, 50, 3), np.uint8)]).shape == (1, 8)


def _cache_snapshot(cache: Path, repo_id: str, subfolder: str = "") -> Path:
    """A Hugging Face cache entry of ``repo_id`` as the hub lays it out (refs/main, snapshot)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit / subfolder
    snapshot.mkdir(parents=True)
    return snapshot


def test_full_clip_model_in_the_cache_is_read_as_its_vision_tower(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """openai/clip-vit-large-patch14 ships a whole CLIPModel whose vision_config lacks the
    projection size; the default search finds it in the cache and loads its image half."""
    import torch

    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    torch.manual_seed(1)
    text = {**TINY, "vocab_size": 64, "max_position_embeddings": 16}
    text.pop("image_size"), text.pop("patch_size")
    config = transformers.CLIPConfig(text_config=text, vision_config=TINY, projection_dim=8)
    full = transformers.CLIPModel(config)
    full.save_pretrained(_cache_snapshot(cache, "openai/clip-vit-large-patch14"))
    search = find_encoder()
    assert search.name == "openai/clip-vit-large-patch14"
    embedder, _ = load_embedder()
    torch.testing.assert_close(embedder.model.visual_projection.weight,
                               full.visual_projection.weight)  # fmt: skip


def test_ip_adapter_encoder_in_the_cache_comes_first(
    tiny_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    snapshot = _cache_snapshot(cache, "h94/IP-Adapter", "models/image_encoder")
    shutil.copytree(tiny_clip, snapshot, dirs_exist_ok=True)
    assert find_encoder().name == "h94/IP-Adapter"
    assert find_encoder("h94/IP-Adapter").folder == find_encoder().folder


def _reasons(figures: list[Any]) -> set[str]:
    return {f.not_measured for f in figures if f.value is None}


def test_not_measured_without_encoder_reference_or_packages(
    clip_video: Path, astronaut: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures, series, name = identity_figures(clip_video, 4, astronaut)
    (reason,) = _reasons(figures)
    assert reason.startswith("no CLIP image encoder found") and CLIP_ENV in reason
    assert series == {} and name is None

    figures, _, _ = identity_figures(clip_video, 4, None)
    assert _reasons(figures) == {"no reference image given (--reference)"}

    (tmp_path / "empty").mkdir()
    figures, _, _ = identity_figures(clip_video, 4, astronaut, clip=tmp_path / "empty")
    (reason,) = _reasons(figures)
    assert reason.startswith(f"--clip {tmp_path / 'empty'}: no CLIP image encoder there")

    monkeypatch.setenv(CLIP_ENV, str(tmp_path / "empty"))
    figures, _, _ = identity_figures(clip_video, 4, astronaut)
    assert next(iter(_reasons(figures))).startswith(f"${CLIP_ENV} = ")

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a)
    )
    figures, _, _ = identity_figures(clip_video, 4, astronaut)
    assert _reasons(figures) == {"needs torch: pip install 'faceshot[match]'"}


def test_a_broken_encoder_folder_is_not_measured_not_an_error(
    tiny_clip: Path, clip_video: Path, astronaut: np.ndarray, tmp_path: Path
) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_clip, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    figures, _, _ = identity_figures(clip_video, 4, astronaut, clip=broken)
    (reason,) = _reasons(figures)
    assert reason.startswith(f"the CLIP image encoder in {broken} does not load")


def test_frames_of_another_size_than_the_reference(
    tiny_clip: Path, tmp_path: Path, astronaut: np.ndarray
) -> None:
    small = cv2.resize(astronaut, (200, 120))
    path = write_video(tmp_path / "small.mp4", [small, small], 8.0)
    _, series, _ = identity_figures(path, 2, astronaut, clip=tiny_clip)
    assert len(series["identity.similarity"].values) == 2
