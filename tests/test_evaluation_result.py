"""``faceshot.evaluate`` and ``faceshot eval`` on a real result: the astronaut, animated by the
warp backend with the demo's driving clip (a human face, so the detector finds it again).

One result is made per session (about 7 s on two cores) and every test reads it: a good result
has a small NME, a result judged against landmarks shifted by 20 px a large one, blacked-out
frames are counted, and the figures that need what was not given say why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import faceshot
from faceshot.cli.main import cli, main
from faceshot.demo_clip import write_driving_clip
from faceshot.evaluation import EvalInputError, EvalReport
from faceshot.evaluation.inputs import load_inputs
from faceshot_core.errors import FaceshotUserError
from faceshot_core.images import save_image
from faceshot_core.landmark_files import load_sequence, save_landmarks
from faceshot_core.landmarks import LandmarkSequence
from faceshot_core.video import iter_frames, write_video

FRAMES = 24


@dataclass(frozen=True)
class WarpResult:
    folder: Path
    result: Path
    landmarks: Path
    driving_video: Path
    driving: Path  # the driving clip's known poses, saved
    reference: Path
    clip: Path  # a tiny CLIP image encoder folder
    sequence: LandmarkSequence


@pytest.fixture(scope="session")
def warp_result(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> WarpResult:
    folder = tmp_path_factory.mktemp("evaluation")
    driving_video = folder / "driving.mp4"
    poses = write_driving_clip(driving_video, FRAMES)  # driven by its known poses: no detection
    save_landmarks(folder / "driving.npz", LandmarkSequence(poses, (512, 512), 24.0))
    reference = save_image(folder / "reference.png", astronaut)
    run = faceshot.run(reference, folder / "driving.npz", output=folder / "result.mp4")
    clip = folder / "tiny-clip"
    pytest.importorskip("transformers")
    from faceshot_core.matching.clip_embedder import ClipImageEmbedder

    ClipImageEmbedder.tiny().model.save_pretrained(clip)
    return WarpResult(folder, run.output, run.landmarks_file, driving_video,
                      folder / "driving.npz", reference, clip, run.sequence)  # fmt: skip


def test_a_good_result_tracks_its_landmarks(warp_result: WarpResult) -> None:
    w = warp_result
    report = faceshot.evaluate(
        w.result, w.landmarks, driving=w.driving, reference=w.reference, clip=w.clip
    )
    assert report.frames == FRAMES and report.size == (512, 512) and report.fps == 24.0
    assert report.tracker == "detector:dlib" and report.encoder == w.clip.name
    assert report.value("point_tracking.nme") < 0.05  # measured 0.006
    assert report.value("point_tracking.nme_worst") < 0.05
    assert report.value("point_tracking.frames_without_face") == 0
    assert report.value("point_tracking.frames_compared") == FRAMES
    assert report.value("anatomy.violations") == 0.0
    assert report.value("motion.mouth_correlation") > 0.9  # the astronaut retargeted to herself
    assert report.value("motion.blink_completion") > 0.8
    assert report.value("stability.result_jitter") < 0.1
    assert report.value("stability.background_flicker") < 0.02
    sims = report.series["identity.similarity"].values
    assert len(sims) == FRAMES and all(s is not None and -1 <= s <= 1 for s in sims)
    assert [f.key for f in report.figures] == list(faceshot.evaluation.FIGURES)
    assert all(f.not_measured is None for f in report.figures)
    assert set(report.timings) >= {"driving", "tracking", "stability", "identity", "total"}
    assert EvalReport.from_json(report.to_json()) == report


def test_shifted_landmarks_give_a_larger_nme_through_the_cli(
    warp_result: WarpResult, tmp_path: Path
) -> None:
    """20 px off on a 61 px eye span: NME about 0.33; --driving as a video is detected."""
    w = warp_result
    seq = w.sequence
    shifted = tmp_path / "shifted.npz"
    save_landmarks(
        shifted, LandmarkSequence(seq.points + np.array([20.0, 0.0]), seq.image_size, seq.fps)
    )
    out = tmp_path / "report.json"
    args = ["eval", str(w.result), "--landmarks", str(shifted), "--driving",
            str(w.driving_video), "--json", str(out), "--quiet"]  # fmt: skip
    res = CliRunner().invoke(cli, args, terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "point tracking NME" in res.stdout and "identity similarity" in res.stdout
    data = json.loads(out.read_text())
    figures = {f["key"]: f for f in data["figures"]}
    assert figures["point_tracking.nme"]["value"] > 0.25
    assert figures["motion.mouth_correlation"]["value"] > 0.9
    assert figures["identity.similarity"]["value"] is None
    assert data["reference"] is None
    assert "--reference" in figures["identity.similarity"]["not_measured"]


def test_frames_without_a_face_are_counted(warp_result: WarpResult, tmp_path: Path) -> None:
    w = warp_result
    black = {8, 9, 10, 11}
    frames = (np.zeros_like(f) if m in black else f for m, f in enumerate(iter_frames(w.result)))
    video = write_video(tmp_path / "blacked.mp4", frames, 24.0)
    report = faceshot.evaluate(video, w.landmarks)
    assert report.value("point_tracking.frames_without_face") == 4
    assert report.value("point_tracking.no_face_share") == pytest.approx(4 / FRAMES)
    assert report.value("point_tracking.frames_compared") == FRAMES - 4
    assert report.value("point_tracking.nme") < 0.05
    nme = report.series["point_tracking.nme"]
    assert [nme.values[m] is None for m in range(FRAMES)] == [m in black for m in range(FRAMES)]
    assert report.value("stability.background_flicker") > 0.02  # black in, black out
    motion = report.figure("motion.mouth_correlation")
    assert motion.value is None and "--driving" in (motion.not_measured or "")
    assert report.figure("identity.similarity").not_measured == (
        "no reference image given (--reference)"
    )


def test_a_one_pixel_larger_video_is_accepted_other_mismatches_refused(
    warp_result: WarpResult, tmp_path: Path
) -> None:
    """The encoder pads an odd size by one pixel (511 -> 512); nothing else is let through."""
    w = warp_result
    seq = w.sequence
    odd = tmp_path / "odd.npz"
    save_landmarks(odd, LandmarkSequence(seq.points, (511, 511), seq.fps))
    assert load_inputs(w.result, odd).frames == FRAMES
    small = tmp_path / "small.npz"
    save_landmarks(small, LandmarkSequence(seq.points * 0.5, (256, 256), seq.fps))
    with pytest.raises(EvalInputError, match=r"is 512x512 but .* is for 256x256 images"):
        faceshot.evaluate(w.result, small)
    short = tmp_path / "short.npz"
    save_landmarks(short, LandmarkSequence(seq.points[:20], seq.image_size, seq.fps))
    with pytest.raises(EvalInputError, match=r"has 24 frames but .* has 20"):
        faceshot.evaluate(w.result, short)


def test_the_matcher_needs_its_gallery_and_weights(
    warp_result: WarpResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FACESHOT_GALLERY", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    w = warp_result
    with pytest.raises(FaceshotUserError, match="needs a gallery"):
        faceshot.evaluate(w.result, w.landmarks, tracker="matcher")
    with pytest.raises(EvalInputError, match="unknown tracker 'fan'"):
        faceshot.evaluate(w.result, w.landmarks, tracker="fan")


def test_cli_errors_are_one_line_with_exit_code_2(
    warp_result: WarpResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = warp_result
    assert main(["eval", str(tmp_path / "missing.mp4"), "-l", str(w.landmarks)]) == 2
    short = tmp_path / "short.npz"
    seq = load_sequence(w.landmarks)
    save_landmarks(short, LandmarkSequence(seq.points[:5], seq.image_size, seq.fps))
    capsys.readouterr()
    assert main(["eval", str(w.result), "--landmarks", str(short)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("faceshot: error: ") and "has 24 frames" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err

    lonely = tmp_path / "lonely.mp4"
    lonely.write_bytes(w.result.read_bytes())
    assert main(["eval", str(lonely)]) == 2
    assert "give --landmarks" in capsys.readouterr().err


def test_cli_finds_the_landmarks_beside_the_result_and_writes_json_once(
    warp_result: WarpResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --landmarks, RESULT's <stem>_landmarks.npz; an existing --json is refused."""
    seen: dict[str, object] = {}

    def fake_evaluate(result: Path, landmarks: Path, **kwargs: object) -> EvalReport:
        seen.update(result=result, landmarks=landmarks, **kwargs)
        return EvalReport(result=str(result), landmarks=str(landmarks), frames=1, fps=1.0,
                          size=(2, 2), tracker="detector:dlib", figures=[])  # fmt: skip

    monkeypatch.setattr("faceshot.cli.eval_cmd.evaluate", fake_evaluate)
    out = tmp_path / "r.json"
    args = ["eval", str(warp_result.result), "--json", str(out), "--tracker", "matcher",
            "--every", "3", "-q"]  # fmt: skip
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert seen["landmarks"] == warp_result.landmarks
    assert seen["tracker"] == "matcher" and seen["every"] == 3
    assert json.loads(out.read_text())["tracker"] == "detector:dlib"
    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0 and "already exists" in str(again.exception)
