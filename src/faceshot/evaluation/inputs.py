"""The result video and its reposed landmarks, checked to belong together before any work.

Every figure compares the video's frame ``m`` with landmark frame ``m`` in the same pixels, so a
result evaluated against another run's landmarks would give confident nonsense.  Two checks
catch that at once, in one line each: the frame counts must match, and so must the sizes, up to
the one column or row the encoder adds to an odd size (yuv420p needs even sizes; see
:func:`faceshot_core.video.even_size`; the padding is at the right and bottom edge, so pixel
coordinates are unchanged).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from faceshot_core.errors import FaceshotUserError
from faceshot_core.landmark_files import load_sequence
from faceshot_core.landmarks import LandmarkSequence
from faceshot_core.video import VideoInfo, even_size, probe_video

__all__ = ["EvalInputError", "EvalInputs", "load_inputs"]


class EvalInputError(FaceshotUserError):
    """A result video and landmarks that do not belong together (frames or size differ)."""


@dataclass(frozen=True)
class EvalInputs:
    """The result video's header and the reposed sequence it was rendered from."""

    video: VideoInfo
    sequence: LandmarkSequence

    @property
    def frames(self) -> int:
        return len(self.sequence)


def load_inputs(result: str | os.PathLike[str], landmarks: str | os.PathLike[str]) -> EvalInputs:
    """Probe ``result``, read ``landmarks`` and check that they match (frames, size)."""
    info = probe_video(result)
    sequence = load_sequence(landmarks)
    if info.frame_count != len(sequence):
        raise EvalInputError(
            f"{result} has {info.frame_count} frames but {landmarks} has {len(sequence)}: "
            "give the landmarks saved with this result"
        )
    width, height = sequence.image_size
    if info.size not in {(width, height), even_size(width, height)}:
        raise EvalInputError(
            f"{result} is {info.width}x{info.height} but {landmarks} is for {width}x{height} "
            "images: give the landmarks saved with this result"
        )
    return EvalInputs(info, sequence)
