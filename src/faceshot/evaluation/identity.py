"""Identity: does every frame of the result still look like the reference character?

The cosine similarity of each sampled frame's CLIP image embedding to the reference image's
(``CLIPVisionModelWithProjection.image_embeds``, L2-normalised; the preprocessing of
``CLIPImageProcessor``, see :mod:`faceshot_core.matching.clip_embedder`).  CLIP embeddings
describe what an image shows (a grey cat with green eyes on a sofa), which is what drifts when
an animator loses the character: the mean says how close the result stays, the worst frame
where it strays most.  Whole frames are compared, as the reference is a whole image.

Frames are sampled every ``every``-th (by default so that at most :data:`MAX_FRAMES` are
embedded: identity changes slowly, and a ViT-H forward pass is not free on a CPU).  Without
an encoder on this machine (:mod:`faceshot.evaluation.encoder`), without torch and
transformers, or without a reference image the figures are "not measured" with the reason:
evaluating the other figures must not depend on a 2.5 GB download.
"""

from __future__ import annotations

import importlib.util
import math
import os
from typing import Any

import numpy as np

from faceshot.evaluation.encoder import find_encoder, load_vision_model
from faceshot.evaluation.report import Figure, Series, measured, not_measured
from faceshot_core.progress import ProgressSink, StageReporter
from faceshot_core.video import iter_frames

__all__ = ["MAX_FRAMES", "frame_similarities", "identity_figures", "load_embedder", "sample_every"]

#: Default number of frames embedded at most.
MAX_FRAMES = 32
#: Frames embedded together (at 4K, four decoded frames are 100 MB).
BATCH = 4
KEYS = ("identity.similarity", "identity.similarity_worst")


def sample_every(frames: int, max_frames: int = MAX_FRAMES) -> int:
    """The step that samples at most ``max_frames`` of ``frames`` (1 for a short clip)."""
    return max(1, math.ceil(frames / max_frames))


def load_embedder(
    clip: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Any, str]:
    """``(ClipImageEmbedder, encoder name)``, or ``(None, why not)``; never raises."""
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        return None, f"needs {' and '.join(missing)}: pip install 'faceshot[match]'"
    search = find_encoder(clip, cache_dir=cache_dir)
    if search.folder is None:
        return None, search.reason
    from faceshot_core.matching.clip_embedder import ClipImageEmbedder

    try:
        model = load_vision_model(search.folder)
    except Exception as exc:  # safetensors, torch and transformers each raise their own kinds
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"the CLIP image encoder in {search.folder} does not load: {first}"
    return ClipImageEmbedder(model, name=search.name), search.name


def frame_similarities(
    video: str | os.PathLike[str],
    reference: np.ndarray,
    embedder: Any,
    *,
    frames: int,
    every: int,
    progress: ProgressSink | None = None,
) -> tuple[list[int], np.ndarray]:
    """Frame indices ``0, every, ...`` and their cosine similarity to ``reference``.

    Frames are embedded in batches of at most :data:`BATCH` as they are decoded, so memory
    holds a few frames whatever the video's length and size.
    """
    ref = embedder.embed([reference])[0]
    indices: list[int] = []
    sims: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    size = max(1, min(BATCH, int(getattr(embedder, "batch_size", BATCH))))
    step = StageReporter(progress, "identity", math.ceil(frames / every))
    for m, frame in enumerate(iter_frames(video)):
        if m >= frames:
            break
        if m % every:
            continue
        indices.append(m)
        batch.append(frame)
        if len(batch) == size:
            sims.append(embedder.embed(batch) @ ref)
            step.step(len(batch))
            batch = []
    if batch:
        sims.append(embedder.embed(batch) @ ref)
        step.step(len(batch))
    values = np.concatenate(sims) if sims else np.zeros(0)
    return indices, np.clip(values.astype(np.float64), -1.0, 1.0)


def identity_figures(
    video: str | os.PathLike[str],
    frames: int,
    reference: np.ndarray | None,
    *,
    clip: str | os.PathLike[str] | None = None,
    every: int | None = None,
    embedder: Any = None,
    progress: ProgressSink | None = None,
) -> tuple[list[Figure], dict[str, Series], str | None]:
    """The identity figures, the per-frame series and the encoder's name (None: not measured).

    ``embedder`` may be passed in (anything with ``embed(images) -> [N, D]`` unit rows).
    """
    if reference is None:
        why = "no reference image given (--reference)"
        return [not_measured(k, why) for k in KEYS], {}, None
    name = getattr(embedder, "name", "embedder")
    if embedder is None:
        embedder, name = load_embedder(clip)
        if embedder is None:
            return [not_measured(k, name) for k in KEYS], {}, None
    step = every or sample_every(frames)
    indices, sims = frame_similarities(
        video, reference, embedder, frames=frames, every=step, progress=progress
    )
    figures = [
        measured(KEYS[0], float(sims.mean()) if sims.size else float("nan"), "no frame"),
        measured(KEYS[1], float(sims.min()) if sims.size else float("nan"), "no frame"),
    ]
    return figures, {"identity.similarity": Series(frames=indices, values=sims.tolist())}, name
