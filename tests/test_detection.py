"""Driving-video landmark detection: accuracy on known motion, tracking, gaps, smoothing, cache.

Synthetic videos come from :mod:`faceshot_core.synthetic_tracking` (the astronaut moved by known
similarity transforms, H.264-encoded); the ground truth is the still image's dlib landmarks moved
the same way.  Measured on this project's 2-core development machine (dlib 20.0, OpenCV 5.0) at
512x512, unsmoothed, with the 8-fit ensemble and the held box: tracking mean 0.25 px / max
1.4 px, per-frame detection the same, tracked vs per-frame 0.11 px apart (single fits and a box
re-derived every frame: 0.40 / 1.8, 0.39 / 2.0 and 0.35 px).  The bounds below are about twice
the older figures, so codec or library updates do not break them but a real regression does (a
wrong box geometry, e.g. the box offset flipped, gives mean 1.05 / max 39 px; a drifting or
switched track far more).  Still clips, the choice of face and the stability measures are
tested in ``tests/test_detection_steady.py``.
"""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from faceshot_core.detection import (
    DEFAULT_SMOOTHING,
    Box,
    FaceTracker,
    OneEuroParams,
    available_detectors,
    cache_path,
    detect_driving_landmarks,
    fill_gaps,
    get_detector,
    register_detector,
    smooth_points,
    smooth_sequence,
    stability,
)
from faceshot_core.detection.dlib_detector import DlibDetector
from faceshot_core.detection.fan_detector import (
    WEIGHTS,
    WFLW98_TO_IBUG68,
    FanDetector,
    find_weights,
    wflw98_to_ibug68,
)
from faceshot_core.detection.smoothing import resolve_smoothing
from faceshot_core.errors import FaceshotUserError, MissingDependencyError, NoFaceError
from faceshot_core.landmarks import LandmarkSequence
from faceshot_core.synthetic_tracking import (
    astronaut,
    astronaut_landmarks,
    eye_opening,
    make_blink,
    make_driving_video,
    make_two_face_video,
    render_clip,
    render_two_faces,
)
from faceshot_core.video import write_video

# Pixel tolerances at 512x512 (see the module docstring for the measured values).
MEAN_TOL_PX = 0.8
MAX_TOL_PX = 4.0


def point_errors(points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(points, np.float64) - truth, axis=-1)


@pytest.fixture(scope="module")
def detector() -> DlibDetector:
    return DlibDetector()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="module")
def moving(videos: Path):
    return make_driving_video(videos / "moving.mp4", frames=30, size=512)


@pytest.fixture(scope="module")
def moving_landmarks(moving, detector) -> LandmarkSequence:
    """The raw (unsmoothed) detections: what the detector and tracker alone achieve."""
    return detect_driving_landmarks(moving.path, detector=detector, smoothing=None)


# ---------------------------------------------------------------------------------------------
# Box and registry


def test_box_geometry() -> None:
    a = Box(0, 0, 10, 10)
    assert a.center == (5, 5) and a.size == 10 and a.area == 100
    assert a.iou(Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert a.iou(Box(20, 20, 30, 30)) == 0.0
    assert a.fraction_inside(5, 10) == pytest.approx(0.5)
    assert a.scaled(2.0) == Box(-5, -5, 15, 15)
    assert a.mapped(2.0, 1, 2) == Box(1, 2, 21, 22)


def test_registry_knows_both_detectors_and_rejects_unknown_names() -> None:
    assert {"dlib", "fan"} <= set(available_detectors())
    with pytest.raises(FaceshotUserError, match=r"unknown face detector 'nope'.*dlib"):
        get_detector("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_detector("dlib", lambda **kw: DlibDetector(**kw))
    assert isinstance(get_detector("dlib"), DlibDetector)


# ---------------------------------------------------------------------------------------------
# Accuracy on known motion


def test_detector_recovers_known_motion(moving, moving_landmarks) -> None:
    seq = moving_landmarks
    assert seq.image_size == (512, 512)
    assert seq.fps == pytest.approx(25.0)
    assert len(seq) == 30 and not seq.flags.any()
    err = point_errors(seq.points, moving.truth)
    assert err.mean() < MEAN_TOL_PX, f"mean error {err.mean():.2f} px"
    assert err.max() < MAX_TOL_PX, f"max error {err.max():.2f} px"
    # The motion is really there (the truth moves by tens of pixels), not a static face.
    assert np.ptp(moving.truth[:, 30, 0]) > 30


def test_tracking_agrees_with_per_frame_detection(moving, moving_landmarks, detector) -> None:
    per_frame = detect_driving_landmarks(
        moving.path, detector=detector, track=False, smoothing=None
    )
    diff = point_errors(moving_landmarks.points, per_frame.points)
    assert diff.mean() < MEAN_TOL_PX, f"tracked vs per-frame: {diff.mean():.2f} px apart"
    err = point_errors(per_frame.points, moving.truth)
    assert err.mean() < MEAN_TOL_PX and err.max() < MAX_TOL_PX


def test_tracker_detects_the_whole_frame_only_once(detector) -> None:
    frames, truth = render_clip(*_astro(), frames=20)
    tracker = FaceTracker(detector)
    out = [tracker.update(f) for f in frames]
    assert tracker.stats.detected == 1 and tracker.stats.tracked == 19
    assert point_errors(np.stack(out), truth).mean() < MEAN_TOL_PX  # type: ignore[arg-type]


def test_tracker_recovers_after_a_jump(detector) -> None:
    frames, _ = render_clip(*_astro(), frames=1)
    # Second frame: the same picture shifted by 150 px (a cut); the tracker must re-detect.
    shifted = np.roll(frames[0], 150, axis=1)
    tracker = FaceTracker(detector, reacquire_radius=3.0)
    first = tracker.update(frames[0])
    second = tracker.update(shifted)
    assert first is not None and second is not None
    moved = (second - first).mean(axis=0)
    assert moved[0] == pytest.approx(150, abs=4)
    assert tracker.stats.detected == 2


def test_large_frames_are_reported_in_video_pixels(videos, detector) -> None:
    video = make_driving_video(videos / "hd.mp4", frames=8, size=(1280, 720))
    seq = detect_driving_landmarks(video.path, detector=detector)
    assert seq.image_size == (1280, 720)
    err = point_errors(seq.points, video.truth)
    # The face is 720/512 = 1.4x larger than at 512 px: tolerances scale with it.
    assert err.mean() < 1.4 * MEAN_TOL_PX and err.max() < 1.4 * MAX_TOL_PX


def test_periodic_redetection(detector) -> None:
    frames, _ = render_clip(*_astro(), frames=12)
    tracker = FaceTracker(detector, redetect_every=4)
    assert all(tracker.update(f) is not None for f in frames)
    assert tracker.stats.detected == 3 and tracker.stats.reasons == {"periodic": 2}
    with pytest.raises(ValueError, match="redetect_every"):
        FaceTracker(detector, redetect_every=0)


def test_new_faces_need_a_second_opinion(detector) -> None:
    """HOG finds face-like texture on the astronaut's suit when her face is covered; the CNN
    check refuses those boxes, so no track starts on them (the gap test depends on it)."""
    frames, _ = render_clip(*_astro(), frames=1, hidden=(0,))
    false_faces = DlibDetector(upsample=1).detect(frames[0])
    assert false_faces  # the trap is there...
    assert not any(detector.confirm(frames[0], b) for b in false_faces)  # ...and avoided
    clean, _ = render_clip(*_astro(), frames=1)
    (face,) = detector.detect(clean[0])
    assert detector.confirm(clean[0], face)
    assert DlibDetector(confirm_new_faces=False).confirm(frames[0], false_faces[0])


def _astro() -> tuple[np.ndarray, np.ndarray]:
    return astronaut(), astronaut_landmarks()


# ---------------------------------------------------------------------------------------------
# Gaps and missing faces


def test_fill_gaps_interpolates_inside_and_holds_at_the_ends() -> None:
    a, b = np.zeros((68, 2)), np.full((68, 2), 4.0)
    points, filled = fill_gaps([None, a, None, None, None, b, None])
    assert filled.tolist() == [True, False, True, True, True, False, True]
    np.testing.assert_allclose(points[:, 0, 0], [0, 0, 1, 2, 3, 4, 4])
    with pytest.raises(NoFaceError, match=r"clip\.mp4: no face found in any of its 3 frames"):
        fill_gaps([None, None, None], source="clip.mp4")


def test_gaps_in_a_video_are_interpolated_and_flagged(videos, detector) -> None:
    hidden = (0, 9, 10, 11, 23)
    video = make_driving_video(videos / "gaps.mp4", frames=24, size=384, hidden=hidden)
    seq = detect_driving_landmarks(video.path, detector=detector, smoothing=None)
    assert np.flatnonzero(seq.flags).tolist() == list(hidden)
    pts = seq.points.astype(np.float64)
    np.testing.assert_allclose(pts[0], pts[1], atol=1e-4)  # held at the start
    np.testing.assert_allclose(pts[23], pts[22], atol=1e-4)  # held at the end
    for m, w in ((9, 0.25), (10, 0.5), (11, 0.75)):  # linear between frames 8 and 12
        np.testing.assert_allclose(pts[m], (1 - w) * pts[8] + w * pts[12], atol=1e-3)
    measured = ~seq.flags
    err = point_errors(pts, video.truth)
    assert err[measured].mean() < MEAN_TOL_PX
    # Filled frames follow the smooth motion approximately (measured 2.6 px at 384 px).
    assert err[[9, 10, 11]].mean() < 4.0


@pytest.mark.parametrize("content", ["cat", "noise"])
def test_video_without_any_face_raises(videos, detector, chelsea, content) -> None:
    if content == "cat":
        frames = [np.ascontiguousarray(np.roll(chelsea, 4 * i, axis=1)) for i in range(6)]
    else:
        rng = np.random.default_rng(1)
        frames = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(6)]
    path = write_video(videos / f"{content}.mp4", frames, 25)
    with pytest.raises(NoFaceError, match=r"no face found in any of its 6 frames") as info:
        detect_driving_landmarks(path, detector=detector)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# Several faces


@pytest.mark.parametrize("track", [True, False])
def test_follows_the_same_face_among_two(videos, detector, track) -> None:
    video = make_two_face_video(videos / f"two_{track}.mp4", frames=24, hidden=(12, 13))
    assert video.other is not None
    seq = detect_driving_landmarks(video.path, detector=detector, track=track)
    assert np.flatnonzero(seq.flags).tolist() == [12, 13]
    measured = ~seq.flags
    to_followed = point_errors(seq.points, video.truth).mean(axis=1)
    to_other = point_errors(seq.points, video.other).mean(axis=1)
    assert to_followed[measured].max() < 2.0
    assert to_other.min() > 100  # never switched, not even while the followed face was hidden


def test_two_face_clip_would_fool_a_largest_face_rule(detector) -> None:
    """The two-face test means something: the followed face starts larger, but by the end the
    *other* face is the largest detection."""
    frames, truth_a, truth_b = render_two_faces(frames=24)
    assert np.ptp(truth_a[0][:, 0]) > 1.2 * np.ptp(truth_b[0][:, 0])
    last = max(detector.detect(frames[-1]), key=lambda b: b.area)
    assert np.hypot(*(np.subtract(last.center, truth_b[-1].mean(axis=0)))) < 30


# ---------------------------------------------------------------------------------------------
# Smoothing


def _blink_metrics(smoothed: np.ndarray, clean: np.ndarray, depth: float) -> tuple[float, float]:
    open_gap = eye_opening(clean)[:25].mean()
    closure = (open_gap - eye_opening(smoothed)[28:37].min()) / depth
    jitter = float((smoothed[5:25] - clean[5:25]).std())
    return closure, jitter


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_euro_keeps_a_blink_and_reduces_jitter(seed) -> None:
    # A 4-frame blink at 25 fps (half, full, full, half closed) and the jitter the default
    # detector leaves: 0.27 % of the inter-ocular distance per coordinate, which reads as
    # 0.48 % frame to frame (measured on the shared videos: 0.45-0.47 %).
    base = astronaut_landmarks()
    sigma = 0.0027 * stability.interocular(base[None])
    noisy, clean, depth = make_blink(base, seed=seed, jitter=sigma)
    raw_jitter = float((noisy[5:25] - clean[5:25]).std())
    smoothed = smooth_points(noisy, 25.0)
    closure, jitter = _blink_metrics(smoothed, clean, depth)
    assert closure > 0.9, f"blink kept only {closure:.0%} of its depth"
    assert jitter < 0.65 * raw_jitter, f"jitter {raw_jitter:.2f} -> {jitter:.2f} px"
    # The same through the measures of the stability module (measured: 0.48 -> 0.15 %, >= 95 %).
    assert stability.jitter(smoothed) < 0.4 * stability.jitter(noisy)
    assert stability.amplitude_kept(noisy, smoothed)["blink"] > 0.9
    # The measure discriminates: a plain low-pass filter (beta=0) loses the blink.
    flat = smooth_points(noisy, 25.0, OneEuroParams(beta=0.0))
    assert _blink_metrics(flat, clean, depth)[0] < 0.6
    assert stability.amplitude_kept(noisy, flat)["blink"] < 0.6


def test_smoothing_keeps_still_input_and_sequence_metadata() -> None:
    still = np.repeat(astronaut_landmarks()[None], 10, axis=0)
    np.testing.assert_allclose(smooth_points(still, 30.0), still, atol=1e-4)
    seq = LandmarkSequence(still, (512, 512), 30.0, np.arange(10) == 3)
    out = smooth_sequence(seq)
    assert out.fps == 30.0 and out.flags.tolist() == seq.flags.tolist()


def test_smoothing_spec_is_validated() -> None:
    assert resolve_smoothing(None) is None and resolve_smoothing(False) is None
    assert resolve_smoothing("none") is None
    assert resolve_smoothing("one_euro") == resolve_smoothing(True) == OneEuroParams()
    assert resolve_smoothing(DEFAULT_SMOOTHING) == OneEuroParams()
    assert resolve_smoothing({"beta": 2, "zero_lag": 0}) == OneEuroParams(beta=2.0, zero_lag=False)
    with pytest.raises(ValueError, match="unknown smoothing"):
        resolve_smoothing("kalman")
    with pytest.raises(ValueError, match="unknown One-Euro parameter"):
        resolve_smoothing({"speed": 1})
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroParams(min_cutoff=0)
    with pytest.raises(TypeError, match="smoothing must be"):
        resolve_smoothing(3)  # type: ignore[arg-type]


def _lag(points: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance (px) by which ``points`` trail ``truth`` along its direction of motion."""
    velocity = truth[2:] - truth[:-2]
    ahead = velocity / np.maximum(np.linalg.norm(velocity, axis=-1, keepdims=True), 1e-9)
    return float(((truth[1:-1] - points[1:-1]) * ahead).sum(axis=-1).mean())


def test_detect_smooths_by_default_without_lag(moving, moving_landmarks, detector) -> None:
    smooth = detect_driving_landmarks(moving.path, detector=detector)  # smoothing on by default
    explicit = detect_driving_landmarks(moving.path, detector=detector, smoothing="one_euro")
    np.testing.assert_array_equal(smooth.points, explicit.points)
    assert 0 < point_errors(smooth.points, moving_landmarks.points).mean() < 0.5
    # Zero-lag smoothing stays as close to the moving truth as the raw detections (measured
    # 0.26 vs 0.25 px) and does not trail it (0.02 px); the causal filter alone trails the
    # motion (0.20 px with the default parameters, 0.8 px with beta=12).
    assert point_errors(smooth.points, moving.truth).mean() < MEAN_TOL_PX
    assert abs(_lag(smooth.points, moving.truth)) < 0.08
    causal = smooth_points(moving_landmarks.points, 25.0, OneEuroParams(zero_lag=False))
    assert _lag(causal, moving.truth) > 0.12


# ---------------------------------------------------------------------------------------------
# Cache and outputs


class _Exploding:
    """A detector with dlib's cache key that fails if asked to detect anything."""

    name = "dlib"

    def __init__(self, inner: DlibDetector) -> None:
        self.inner = inner

    def cache_key(self) -> str:
        return self.inner.cache_key()

    def detect(self, image, near=None):
        raise AssertionError("detection ran although the result was cached")

    landmarks = box_from_landmarks = detect


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_cache_round_trip_writes_only_into_the_cache_dir(tmp_path, moving, detector) -> None:
    inputs, cache = tmp_path / "in", tmp_path / "cache"
    inputs.mkdir()
    video = Path(shutil.copy(moving.path, inputs / "drive.mp4"))
    first = detect_driving_landmarks(video, detector=detector, cache_dir=cache)
    assert _listing(inputs) == ["drive.mp4"]
    entries = list(cache.glob("*.npz"))
    assert entries == [cache_path(video, cache, detector)]
    assert entries[0].name.startswith("drive.")

    again = detect_driving_landmarks(video, detector=_Exploding(detector), cache_dir=cache)
    np.testing.assert_array_equal(again.points, first.points)
    assert again.flags.tolist() == first.flags.tolist()
    assert (again.image_size, again.fps) == (first.image_size, first.fps)

    # Keyed by content, not name: a renamed copy hits the same entry.
    renamed = Path(shutil.copy(video, inputs / "renamed.mp4"))
    hit = detect_driving_landmarks(renamed, detector=_Exploding(detector), cache_dir=cache)
    np.testing.assert_array_equal(hit.points, first.points)
    # The cache holds the raw detections; the (default) smoothing is applied on top of them.
    raw = detect_driving_landmarks(
        video, detector=_Exploding(detector), cache_dir=cache, smoothing=None
    )
    assert not np.array_equal(raw.points, first.points)
    np.testing.assert_array_equal(smooth_sequence(raw).points, first.points)
    # Other settings, other entries.
    assert cache_path(video, cache, detector, track=False) != entries[0]
    assert cache_path(video, cache, DlibDetector(near_threshold=0.0)) != entries[0]
    assert cache_path(video, cache, DlibDetector(ensemble=1)) != entries[0]
    assert cache_path(video, cache, detector, face=0) != entries[0]
    assert cache_path(video, cache, detector, face=(10, 20)) != entries[0]


def test_no_cache_means_no_files_written(tmp_path, moving, detector, monkeypatch) -> None:
    video = Path(shutil.copy(moving.path, tmp_path / "drive.mp4"))
    monkeypatch.chdir(tmp_path)
    detect_driving_landmarks(video, detector=detector)
    assert _listing(tmp_path) == ["drive.mp4"]


def test_unreadable_cache_entry_is_recomputed(tmp_path, moving, detector) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    entry = cache_path(moving.path, cache, detector)
    entry.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="ignoring unreadable landmark cache"):
        seq = detect_driving_landmarks(moving.path, detector=detector, cache_dir=cache)
    assert len(seq) == 30
    assert detect_driving_landmarks(moving.path, detector=_Exploding(detector), cache_dir=cache)


def test_progress_callback_and_rich(moving, detector, capsys) -> None:
    calls: list[tuple[int, int]] = []
    detect_driving_landmarks(
        moving.path, detector=detector, progress=lambda e: calls.append((e.done, e.total))
    )
    assert [d for d, _ in calls] == list(range(1, 31))
    assert calls[-1] == (30, 30)
    detect_driving_landmarks(moving.path, detector=detector, progress="rich")
    assert capsys.readouterr().out == ""  # the bar goes to stderr, never stdout
    with pytest.raises(TypeError, match="progress"):
        detect_driving_landmarks(moving.path, detector=detector, progress=3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The FAN detector (facexlib is not installed here: error paths and the glue around fakes)


def test_wflw98_to_ibug68_mapping() -> None:
    assert len(WFLW98_TO_IBUG68) == 68
    used = {i for group in WFLW98_TO_IBUG68 for i in group}
    assert used <= set(range(96)) and not {96, 97} & used  # pupils unused
    assert [g[0] for g in WFLW98_TO_IBUG68[:17]] == list(range(0, 33, 2))
    assert [g[0] for g in WFLW98_TO_IBUG68[48:]] == list(range(76, 96))
    pts98 = np.stack([np.arange(98.0), np.arange(98.0) * 2], axis=1)
    pts68 = wflw98_to_ibug68(pts98)
    assert pts68[18].tolist() == [37.5, 75.0]  # midpoint of brow edges 34 and 41
    assert pts68[36].tolist() == [60.0, 120.0] and pts68[45].tolist() == [72.0, 144.0]
    with pytest.raises(ValueError, match="98"):
        wflw98_to_ibug68(np.zeros((68, 2)))


def test_fan_without_facexlib_says_how_to_install(monkeypatch, moving) -> None:
    for name in ("torch", "facexlib", "facexlib.detection", "facexlib.alignment"):
        monkeypatch.setitem(sys.modules, name, None)  # makes "import name" fail
    with pytest.raises(MissingDependencyError, match=r"facexlib and torch.*faceshot\[fan\]"):
        FanDetector()
    with pytest.raises(MissingDependencyError, match=r"faceshot\[fan\]"):
        get_detector("fan")
    with pytest.raises(MissingDependencyError, match=r"faceshot\[fan\]"):
        detect_driving_landmarks(moving.path, detector="fan")
    with pytest.raises(MissingDependencyError, match="pass weights_dir="):
        find_weights()


class _FakeRetinaFace:
    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def detect_faces(self, bgr: np.ndarray, threshold: float) -> np.ndarray:
        self.seen.append(bgr)
        h, w = bgr.shape[:2]
        return np.array([[0.25 * w, 0.25 * h, 0.75 * w, 0.75 * h, 0.99] + [0.0] * 10])


class _FakeFan:
    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def get_landmarks(self, crop: np.ndarray) -> np.ndarray:
        self.seen.append(crop)
        return np.stack([np.arange(98.0), np.arange(98.0) * 0.5], axis=1)


@pytest.fixture
def fake_facexlib(monkeypatch, tmp_path):
    """Fake torch + facexlib modules and a weights folder with (empty) weight files."""
    calls: dict[str, object] = {}
    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(is_available=lambda: False)  # type: ignore[attr-defined]
    facexlib = types.ModuleType("facexlib")
    facexlib.__version__ = "0.3.0"  # type: ignore[attr-defined]
    detection = types.ModuleType("facexlib.detection")
    alignment = types.ModuleType("facexlib.alignment")

    def init_detection_model(name, half=False, device="cuda", model_rootpath=None):
        calls["detection"] = (name, device, model_rootpath)
        return _FakeRetinaFace()

    def init_alignment_model(name, half=False, device="cuda", model_rootpath=None):
        calls["alignment"] = (name, device, model_rootpath)
        return _FakeFan()

    detection.init_detection_model = init_detection_model  # type: ignore[attr-defined]
    alignment.init_alignment_model = init_alignment_model  # type: ignore[attr-defined]
    for module in (torch, facexlib, detection, alignment):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    weights = tmp_path / "weights"
    weights.mkdir()
    return weights, calls


def test_fan_missing_weights_are_listed(fake_facexlib, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingDependencyError) as info:
        FanDetector(weights_dir=empty)
    message = str(info.value)
    assert str(empty) in message and "does not download" in message
    for name, url in WEIGHTS.values():
        assert name in message and url in message
    (empty / WEIGHTS["awing_fan"][0]).write_bytes(b"x")
    with pytest.raises(MissingDependencyError, match=r"detection_Resnet50_Final\.pth") as info:
        find_weights(empty)
    assert "alignment_WFLW_4HG.pth" not in str(info.value)


def test_fan_glue_with_fake_facexlib(fake_facexlib) -> None:
    weights, calls = fake_facexlib
    for name, _ in WEIGHTS.values():
        (weights / name).write_bytes(b"weights")
    det = get_detector("fan", weights_dir=weights)
    assert isinstance(det, FanDetector)
    assert calls["detection"] == ("retinaface_resnet50", "cpu", str(weights))
    assert calls["alignment"] == ("awing_fan", "cpu", str(weights))
    assert det.cache_key().startswith("fan-facexlib0.3.0-")

    # Whole-frame detection runs on a downscaled BGR copy and maps boxes back.
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[..., 0] = 200  # red in RGB; facexlib must receive it as the last (BGR) channel
    (box,) = det.detect(frame)
    assert (box.x0, box.y0, box.x1, box.y1) == pytest.approx((320, 180, 960, 540), abs=1)
    seen = det._det.seen[-1]
    assert max(seen.shape[:2]) == 640 and seen[0, 0, 2] == 200 and seen[0, 0, 0] == 0

    # Nearby search maps crop coordinates back too.
    (near,) = det.detect(frame, near=Box(600, 300, 700, 400))
    assert near.center == pytest.approx((650, 350), abs=1)

    # Landmarks: FAN sees the box crop (BGR); 98 -> 68 conversion; offset by the box corner.
    pts = det.landmarks(frame, Box(100, 50, 300, 250))
    assert det._align.seen[-1].shape == (200, 200, 3)
    assert pts.shape == (68, 2) and pts.dtype == np.float32
    assert pts[0].tolist() == [100.0, 50.0]  # WFLW 0 at (0, 0) in the crop
    assert pts[48].tolist() == [176.0, 88.0]  # WFLW 76 -> (76, 38) + (100, 50)


# ---------------------------------------------------------------------------------------------
# Real faces and videos (../shared/data; skipped when absent)


@pytest.mark.shared_data
def test_nme_on_annotated_faces(shared_data, detector) -> None:
    from faceshot_core.images import load_image
    from faceshot_core.landmark_files import load_landmarks

    found: dict[str, float] = {}
    files = sorted((shared_data / "faces").glob("*.pts"))
    assert files
    for pts_file in files:
        truth = load_landmarks(pts_file)
        image_file = next(
            p for p in (shared_data / "faces").glob(pts_file.stem + ".*") if p.suffix != ".pts"
        )
        image = load_image(image_file)
        anchor = detector.box_from_landmarks(truth.points)
        points = FaceTracker(detector, track=False, anchor=anchor).update(image)
        if points is not None:
            nme = point_errors(points, truth.points).mean() / truth.interocular * 100
            found[pts_file.stem] = float(nme)
    # Measured: LFPW 1.3-2.5 %, takeo 3.6 %; einstein (small, tilted head) is missed at the
    # default detection size.
    assert len(found) >= len(files) - 1, f"annotated face found in only {sorted(found)}"
    assert max(found.values()) < 5.0, found
    assert np.mean(list(found.values())) < 3.0, found


@pytest.mark.shared_data
def test_shared_driving_video_tracks_every_frame(shared_data, detector) -> None:
    path = shared_data / "videos" / "liveportrait_driving_d0.mp4"
    tracked = detect_driving_landmarks(path, detector=detector, smoothing=None)
    assert tracked.image_size == (512, 512) and len(tracked) == 78
    assert not tracked.flags.any()
    per_frame = detect_driving_landmarks(path, detector=detector, track=False, smoothing=None)
    # Measured 0.36 px apart on average (1.1 px with single fits and no held box).
    assert point_errors(tracked.points, per_frame.points).mean() < 1.0
