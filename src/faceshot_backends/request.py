"""What a backend is given: the runtime it was loaded for, and one animation request.

Both are validated at the boundary, so a backend never sees a half-formed request: images are
RGB uint8, landmarks are finite float32 of the right shape and inside the image, the flags
match the sequence.  Coordinates are pixels of ``reference_image``, which is already at the
backend's working size (the runner did the mapping; see :mod:`faceshot_backends.framing`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from faceshot_core.landmarks import check_points
from faceshot_core.torch_support import DtypeName, seeded_generator


class Runtime(BaseModel):
    """Where and how a backend runs: a concrete device, a dtype and the seed of this request.

    ``device`` is resolved (``cpu``, ``cuda``, ``cuda:1``; never ``auto``).  Each call of
    :meth:`generator` or :meth:`rng` starts a fresh stream from ``seed``, so a request replays
    exactly whatever the animator did before.
    """

    model_config = ConfigDict(frozen=True)

    device: str = "cpu"
    dtype: DtypeName = "float32"
    seed: int = 0

    @field_validator("device")
    @classmethod
    def _resolved(cls, value: str) -> str:
        kind = value.partition(":")[0]
        if kind not in ("cpu", "cuda", "mps"):
            raise ValueError(f"a resolved device (cpu, cuda, cuda:N), got {value!r}")
        return value

    def generator(self) -> Any:
        """A ``torch.Generator`` on :attr:`device` seeded with :attr:`seed` (needs torch)."""
        return seeded_generator(self.seed, self.device)

    def rng(self) -> np.random.Generator:
        """A numpy generator seeded with :attr:`seed`."""
        return np.random.default_rng(self.seed)


class AnimationRequest(BaseModel):
    """Everything a loaded animator is given to animate one clip.

    ``sequence[0]`` is the reference pose (FaceShot's convention: the first frame is the
    reference).  ``interpolated[m]`` is true where the driving detector found no face in frame
    ``m`` and the pose was filled in from its neighbours; backends may treat such frames with
    less confidence (the built-ins render them like any other).  The animator yields one RGB
    uint8 frame per pose, each the size of ``reference_image`` (:attr:`size`).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    reference_image: np.ndarray = Field(description="RGB uint8 [H, W, 3]")
    reference_landmarks: np.ndarray = Field(description="float32 [68, 2]")
    sequence: np.ndarray = Field(description="float32 [M, 68, 2], frame 0 = the reference")
    interpolated: np.ndarray | None = Field(default=None, description="bool [M]")
    fps: float = Field(gt=0, allow_inf_nan=False)
    runtime: Runtime = Field(default_factory=Runtime)

    @field_validator("reference_image")
    @classmethod
    def _rgb_uint8(cls, value: np.ndarray) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 2:
            raise ValueError(f"must be RGB uint8 [H, W, 3], got {arr.dtype} {list(arr.shape)}")
        return arr

    @model_validator(mode="after")
    def _landmarks(self) -> AnimationRequest:
        h, w = self.reference_image.shape[:2]
        ref = check_points(self.reference_landmarks, (w, h), sequence=False, source="reference")
        seq = check_points(self.sequence, (w, h), sequence=True, source="sequence")
        flags = (np.zeros(len(seq), dtype=bool) if self.interpolated is None
                 else np.asarray(self.interpolated, dtype=bool))  # fmt: skip
        if flags.shape != (len(seq),):
            raise ValueError(f"interpolated has {flags.size} flags for {len(seq)} frames")
        for name, value in (("reference_landmarks", ref), ("sequence", seq),
                            ("interpolated", flags)):  # fmt: skip
            object.__setattr__(self, name, value)
        return self

    @property
    def num_frames(self) -> int:
        return int(self.sequence.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames the animator yields: the reference's size."""
        h, w = self.reference_image.shape[:2]
        return w, h
