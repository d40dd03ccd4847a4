"""Evaluate a result: per-clip figures to compare backends (``faceshot eval``).

::

    import faceshot
    report = faceshot.evaluate("cat.mp4", "cat_landmarks.npz", driving="driving.mp4",
                               reference="cat.png")
    report.value("point_tracking.nme"), report.to_json()

Four groups of figures (:data:`~faceshot.evaluation.report.FIGURES`; docs/evaluation.md says
what each means and which way is better):

* point tracking (:mod:`~faceshot.evaluation.tracking`): landmarks found on the result against
  the reposed sequence it was rendered from (the paper's Point-Tracking, NME), and the frames
  where no face was found;
* anatomy and motion (:mod:`~faceshot.evaluation.motion`): the sequence's validity, and how it
  follows the driving face's mouth, eyes and blinks (needs ``driving``);
* stability (:mod:`~faceshot.evaluation.stability`): landmark jitter, background flicker;
* identity (:mod:`~faceshot.evaluation.identity`): CLIP similarity of the frames to the
  reference (needs ``reference`` and a CLIP image encoder on this machine).

A figure that cannot be measured is kept with its reason.  Mistakes in the inputs (frames or
size of the landmarks unlike the video's, an unknown tracker, a matcher without its gallery or
weights) raise one :class:`~faceshot_core.errors.FaceshotUserError` before any long work.
The package imports :mod:`faceshot.pipeline` and the core, never the reverse.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from faceshot.evaluation.identity import identity_figures
from faceshot.evaluation.inputs import EvalInputError, load_inputs
from faceshot.evaluation.motion import driving_points, motion_figures
from faceshot.evaluation.report import FIGURES, EvalReport, Figure, Series, report_table
from faceshot.evaluation.stability import flicker, stability_figures
from faceshot.evaluation.tracking import detect_on_result, match_on_result, tracking_figures
from faceshot.matching_api import MatchSettings, load_models
from faceshot_core.detection import FaceDetector
from faceshot_core.images import load_image
from faceshot_core.progress import ProgressSink

__all__ = [
    "FIGURES",
    "TRACKERS",
    "EvalInputError",
    "EvalReport",
    "Figure",
    "Series",
    "evaluate",
    "report_table",
]

PathLike = str | os.PathLike[str]
TRACKERS = ("detector", "matcher")


def evaluate(
    result: PathLike,
    landmarks: PathLike,
    *,
    driving: PathLike | None = None,
    reference: PathLike | None = None,
    tracker: str = "detector",
    detector: str | FaceDetector = "dlib",
    clip: PathLike | None = None,
    matching: MatchSettings | None = None,
    every: int = 1,
    progress: ProgressSink | None = None,
) -> EvalReport:
    """Figures of the result video ``result`` rendered from the reposed ``landmarks``.

    ``driving``: the driving video (detected as ``faceshot run`` does) or its saved landmarks,
    for the motion figures; ``reference``: the character image, for identity.  ``tracker``:
    ``"detector"`` (``detector`` finds the faces) or ``"matcher"`` (on every ``every``-th
    frame, with ``matching``'s gallery and models, else ``$FACESHOT_GALLERY`` and the default
    models).  ``clip``: the CLIP image encoder (folder or Hub id in the cache; default: see
    :mod:`faceshot.evaluation.encoder`).  ``progress`` receives the steps' progress events.
    """
    from faceshot import __version__

    started = time.perf_counter()
    timings: dict[str, float] = {}
    inputs = load_inputs(result, landmarks)
    if tracker not in TRACKERS:
        raise EvalInputError(f"unknown tracker {tracker!r}; choose from {', '.join(TRACKERS)}")
    if every < 1:
        raise EvalInputError(f"every must be a positive number of frames, got {every}")
    image = load_image(reference) if reference is not None else None
    settings = matching or MatchSettings()
    matcher = None
    if tracker == "matcher":  # gallery and weights checked before anything long
        from faceshot_core.matching.gallery import load_gallery

        t = time.perf_counter()
        matcher = (load_gallery(settings.gallery_path()), load_models(settings))
        timings["matcher_load"] = time.perf_counter() - t

    t = time.perf_counter()
    reposed = inputs.sequence.points
    drive = None
    if driving is not None:
        drive = driving_points(driving, inputs.frames, detector=detector, progress=progress)
    timings["driving"] = time.perf_counter() - t

    t = time.perf_counter()
    if matcher is not None:
        gallery, models = matcher
        track = match_on_result(result, inputs.frames, settings, every=every, models=models,
                                gallery=gallery, progress=progress)  # fmt: skip
    else:
        track = detect_on_result(result, detector=detector, progress=progress)
    figures, series = tracking_figures(track, reposed)
    timings["tracking"] = time.perf_counter() - t

    figures += motion_figures(reposed, drive, "no driving video or landmarks given (--driving)")
    t = time.perf_counter()
    more, extra = stability_figures(track, reposed, flicker(result, reposed, progress=progress))
    figures, series = figures + more, {**series, **extra}
    timings["stability"] = time.perf_counter() - t

    t = time.perf_counter()
    more, extra, encoder = identity_figures(
        result, inputs.frames, image, clip=clip, progress=progress
    )
    figures, series = figures + more, {**series, **extra}
    timings["identity"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started

    order = list(FIGURES)
    return EvalReport(
        result=str(result),
        landmarks=str(landmarks),
        driving=None if driving is None else str(driving),
        reference=None if reference is None else str(reference),
        frames=inputs.frames,
        fps=inputs.video.fps,
        size=inputs.video.size,
        tracker=track.tracker,
        encoder=encoder,
        figures=sorted(figures, key=lambda f: order.index(f.key)),
        series=series,
        timings=timings,
        version=__version__,
    )


def default_landmarks(result: PathLike) -> Path:
    """Where ``faceshot run`` saves a result's reposed landmarks: ``<stem>_landmarks.npz``."""
    path = Path(result)
    return path.with_name(f"{path.stem}_landmarks.npz")
