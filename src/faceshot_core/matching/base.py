"""Interfaces of the appearance-guided landmark matcher (FaceShot, Sec. 3.2 and Eq. 3-4).

The matcher needs two things from a model, kept behind small protocols so that the matching
arithmetic, the gallery and the tests do not depend on diffusers:

* a :class:`FeatureExtractor` - dense semantic features of an image (FaceShot: the U-Net
  decoder feature of Stable Diffusion after DDIM inversion to t=301, with the *other* image as
  IP-Adapter image prompt);
* an :class:`ImageEmbedder` - one global embedding per image (CLIP image embeddings), used to
  choose, per facial part, the gallery domain that looks most like the reference's part.

Both describe themselves with a :class:`FeatureSpec`; a gallery stores the spec it was built
with and refuses to be used with another (features of different models, timesteps or blocks
are not comparable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class FeatureSpec:
    """What a feature map means: which model, at which timestep, from which block."""

    model: str
    timestep: int
    block: str
    channels: int
    image_prompt: str | None = None  # e.g. "ip-adapter_sd15" or None (no image prompt)

    @property
    def model_key(self) -> str:
        """The model's identity for comparisons: its repository or folder name, lower case.

        The same weights are named by Hub id (``stabilityai/stable-diffusion-2-1``) when loaded
        from the cache and by folder name (``stable-diffusion-2-1``) when loaded from a local
        copy; both, and mirrors under another organisation, mean the same features.
        """
        return self.model.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1].lower()

    def compatible_with(self, other: FeatureSpec) -> bool:
        """Whether features described by ``self`` and ``other`` can be compared."""
        return (self.model_key, self.timestep, self.block, self.channels, self.image_prompt) == (
            other.model_key, other.timestep, other.block, other.channels, other.image_prompt
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(**{k: data[k] for k in ("model", "timestep", "block", "channels")},
                   image_prompt=data.get("image_prompt"))  # fmt: skip


@runtime_checkable
class FeatureExtractor(Protocol):
    """Dense features of images."""

    spec: FeatureSpec

    def feature_maps(
        self, images: Sequence[np.ndarray], prompts: Sequence[np.ndarray | None] | None = None
    ) -> list[np.ndarray]:
        """One float32 ``[C, h, w]`` map per RGB uint8 image, at the model's own resolution.

        ``prompts[i]`` is the image prompt used while extracting ``images[i]`` (FaceShot's Eq. 3:
        the reference is the prompt for a target image and vice versa); ``None`` for none.
        Maps are neither upsampled nor normalised: the matcher does that.
        """
        ...


@runtime_checkable
class ImageEmbedder(Protocol):
    """One global embedding per image (for choosing gallery domains per part)."""

    name: str

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, D]`` float32, L2-normalised rows, for RGB uint8 images (any sizes)."""
        ...
