"""The matcher end to end through the CLI and `faceshot run`, on tiny models saved to disk.

The tiny Stable Diffusion, IP-Adapter and CLIP image encoder are written in the released
checkpoint layouts, then loaded by the same offline code path as real weights
(`from_pretrained` on local folders), so this covers gallery build, landmark matching, the
automatic fallback of `faceshot run` to the matcher, and the errors users will meet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from faceshot.cli.main import main
from faceshot.pipeline import detect_reference
from faceshot_core.images import save_image
from faceshot_core.landmark_files import load_face, save_landmarks
from faceshot_core.matching.clip_embedder import ClipImageEmbedder
from faceshot_core.matching.tiny_models import (
    released_ip_adapter,
    tiny_sd,
    write_tiny_checkpoint,
    write_tiny_ip_adapter,
)
from faceshot_core.sample_data import chelsea_landmarks
from faceshot_core.synthetic import write_motion_clip
from faceshot_core.video import probe_video


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray, chelsea: np.ndarray
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("matching")
    parts = tiny_sd(0)
    encoder = ClipImageEmbedder.tiny(seed=0)
    write_tiny_checkpoint(root / "tiny-sd", parts)
    write_tiny_ip_adapter(root / "tiny-ipa", released_ip_adapter(parts.unet, encoder.dim), encoder)
    source = root / "annotated"
    face = detect_reference(astronaut)
    for domain, image, points in (
        ("human", astronaut, face.points),
        ("cat", chelsea, chelsea_landmarks().points),
    ):
        (source / domain).mkdir(parents=True)
        save_image(source / domain / f"{domain}.png", image)
        h, w = image.shape[:2]
        from faceshot_core.landmarks import FaceLandmarks

        save_landmarks(source / domain / f"{domain}.json", FaceLandmarks(points, (w, h)))
    cat = save_image(root / "cat.png", chelsea)
    video = root / "drive.mp4"
    write_motion_clip(video, astronaut, face.points, num_frames=6, fps=6)
    return {
        "root": root,
        "sd": root / "tiny-sd",
        "ipa": root / "tiny-ipa",
        "source": source,
        "cat": cat,
        "video": video,
    }


def weights(s: dict[str, Path]) -> list[str]:
    return ["--model", str(s["sd"]), "--ip-adapter", str(s["ipa"])]


@pytest.mark.slow
def test_build_match_and_run(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gallery = tmp_path / "gallery"
    assert (
        main(["gallery", "build", str(setup["source"]), "-o", str(gallery), "-q", *weights(setup)])
        == 0
    )
    assert (gallery / "gallery.json").is_file() and (gallery / "gallery.safetensors").is_file()
    assert main(["gallery", "show", str(gallery)]) == 0
    shown = capsys.readouterr().out
    assert "tiny-sd t=301 up_blocks.1" in shown and "cat, human" in shown

    out = tmp_path / "cat.json"
    code = main(
        [
            "landmarks",
            "match",
            str(setup["cat"]),
            "-o",
            str(out),
            "--gallery",
            str(gallery),
            "--overlay",
            str(tmp_path / "cat_lm.png"),
            "-q",
            *weights(setup),
        ]
    )
    assert code == 0
    matched = load_face(out)
    assert matched.image_size == (451, 300) and (tmp_path / "cat_lm.png").is_file()
    assert np.isfinite(matched.points).all()

    # no landmarks, no face on the cat: `run` falls back to the matcher with --gallery
    code = main(
        [
            "run",
            "-r",
            str(setup["cat"]),
            "-d",
            str(setup["video"]),
            "-o",
            str(tmp_path / "anim.mp4"),
            "-b",
            "landmarks",
            "--gallery",
            str(gallery),
            "-q",
            *weights(setup),
        ]
    )
    assert code == 0
    assert probe_video(tmp_path / "anim.mp4").frame_count == 6


def test_missing_weights_are_listed_in_one_error(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "gallery",
            "build",
            str(setup["source"]),
            "-o",
            str(tmp_path / "g"),
            "--model",
            str(tmp_path / "no-such-model"),
            "--ip-adapter",
            str(tmp_path / "no-such-ipa"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no-such-model" in err and "no-such-ipa" in err
    assert not (tmp_path / "g").exists()


def test_gallery_from_other_features_is_refused(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gallery = tmp_path / "gallery"
    assert (
        main(["gallery", "build", str(setup["source"]), "-o", str(gallery), "-q", *weights(setup)])
        == 0
    )
    code = main(
        [
            "landmarks",
            "match",
            str(setup["cat"]),
            "-o",
            str(tmp_path / "m.json"),
            "--gallery",
            str(gallery),
            "--model",
            str(setup["sd"]),
            "--no-ip-adapter",
            "--image-encoder",
            str(setup["ipa"]),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "gallery was built with features" in err and "Traceback" not in err
    assert not (tmp_path / "m.json").exists()


def test_run_without_gallery_says_how_to_get_landmarks(
    setup: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FACESHOT_GALLERY", raising=False)
    code = main(
        [
            "run",
            "-r",
            str(setup["cat"]),
            "-d",
            str(setup["video"]),
            "-o",
            str(tmp_path / "a.mp4"),
            "--match",
        ]
    )
    assert code == 2
    assert "needs a gallery" in capsys.readouterr().err


def test_match_with_annotated_targets_as_in_the_paper(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.json"
    targets = setup["source"] / "human"
    args = [
        "landmarks",
        "match",
        str(setup["cat"]),
        "-o",
        str(out),
        "--targets",
        str(targets),
        "--respace",
        "-q",
        *weights(setup),
    ]
    assert main(args) == 0
    face = load_face(out)
    assert face.image_size == (451, 300) and np.isfinite(face.points).all()
    both = [
        "landmarks",
        "match",
        str(setup["cat"]),
        "-o",
        str(tmp_path / "b.json"),
        "--targets",
        str(targets),
        "--gallery",
        str(targets),
    ]
    assert main(both) == 2
    assert "not both" in capsys.readouterr().err
