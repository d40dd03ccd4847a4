"""CLIP image embeddings: choosing gallery domains per part, and IP-Adapter image prompts.

FaceShot uses one CLIP vision tower for two jobs: the appearance gallery picks, for each facial
part, the domain whose mean CLIP embedding is closest to the reference's part (reference code:
``clip_feature.pt``, ``[1, 1024]``, CLIP ViT-H-14), and IP-Adapter turns the *other* image into
four extra cross-attention tokens (Eq. 3).  Both use the image encoder shipped with IP-Adapter
(``h94/IP-Adapter``, ``models/image_encoder``: ViT-H-14, hidden 1280, 32 layers, projection
1024), so one :class:`ClipImageEmbedder` serves both and the weights are loaded once.

Preprocessing is that of ``CLIPImageProcessor`` with its defaults (the encoder folder ships no
preprocessor config): shortest edge to 224 with bicubic resampling, centre crop 224x224, scale
to [0, 1], normalise with the OpenAI CLIP mean and std.  It is written out here rather than
calling the processor because transformers' default processor class now needs torchvision,
which has no CPU wheel on the registry; a test checks equality with transformers' PIL
processor.

torch and transformers are imported lazily (:mod:`~faceshot_core.matching.runtime`); importing
this module costs nothing.  Device and dtype follow the matcher's rule: CUDA when available,
float16 there by default, float32 on the CPU whatever was asked.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceshot_core.matching.runtime import (
    matcher_device,
    matcher_dtype,
    require_torch,
    require_transformers,
)

if TYPE_CHECKING:
    import torch

__all__ = ["CLIP_MEAN", "CLIP_STD", "ClipImageEmbedder", "as_rgb_uint8", "clip_preprocess"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP, as CLIPImageProcessor
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` uint8 from RGB, RGBA (alpha dropped) or grey uint8 input; else ValueError."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or min(arr.shape[:2]) < 1:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {arr.shape}")
    return np.ascontiguousarray(arr[:, :, :3])


def clip_preprocess(image: np.ndarray, size: int = 224) -> np.ndarray:
    """CLIPImageProcessor's default preprocessing of one RGB uint8 image: float32 ``[3, S, S]``."""
    from PIL import Image

    rgb = as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    # Shortest edge to `size`; the long edge truncated as transformers does (int(), not round()).
    if h <= w:
        new_h, new_w = size, int(size * w / h)
    else:
        new_h, new_w = int(size * h / w), size
    resized = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.BICUBIC))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    crop = resized[top : top + size, left : left + size].astype(np.float32) / 255.0
    mean = np.asarray(CLIP_MEAN, dtype=np.float32)
    std = np.asarray(CLIP_STD, dtype=np.float32)
    return np.ascontiguousarray(((crop - mean) / std).transpose(2, 0, 1))


class ClipImageEmbedder:
    """CLIP image embeddings (``CLIPVisionModelWithProjection.image_embeds``) of RGB images.

    :meth:`embed` gives L2-normalised numpy rows (the :class:`ImageEmbedder` protocol, used for
    domain choice by cosine similarity); :meth:`image_embeds` gives the raw, unnormalised
    projection as a tensor, which is what IP-Adapter's image projection was trained on.
    """

    def __init__(
        self,
        model: Any,
        *,
        name: str = "clip-image-encoder",
        device: str | torch.device | None = None,
        dtype: Any = None,
        batch_size: int = 16,
    ) -> None:
        self.device = matcher_device(device)
        self.dtype = matcher_dtype(self.device, dtype)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.name = name
        self.batch_size = int(batch_size)
        self.image_size = int(model.config.image_size)

    @property
    def dim(self) -> int:
        """Length of an embedding (the projection dimension; 1024 for ViT-H-14)."""
        return int(self.model.config.projection_dim)

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str] = "h94/IP-Adapter",
        *,
        device: str | None = None,
        dtype: Any = None,
        cache_dir: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> ClipImageEmbedder:
        """Load the image encoder from a folder or the Hub cache (never downloading).

        ``source``: the IP-Adapter repository (Hub id or folder), its ``models`` folder, or the
        encoder folder itself.  Missing files raise one MissingDependencyError.
        """
        from faceshot_core.matching.weights import locate_image_encoder

        folder = locate_image_encoder(source, cache_dir=cache_dir)
        return cls.from_folder(folder, device=device, dtype=dtype, name=name)

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike[str],
        *,
        device: str | None = None,
        dtype: Any = None,
        name: str | None = None,
    ) -> ClipImageEmbedder:
        """Load from a transformers folder known to be complete (``config.json`` + weights)."""
        transformers = require_transformers()
        path = Path(folder)
        variant = (
            "fp16"
            if not any(path.glob("model.safetensors")) and any(path.glob("*.fp16.*"))
            else None
        )
        model = transformers.CLIPVisionModelWithProjection.from_pretrained(
            path, local_files_only=True, variant=variant
        )
        return cls(
            model, name=name or _encoder_name(model.config, path), device=device, dtype=dtype
        )

    @classmethod
    def tiny(
        cls, *, seed: int = 0, projection_dim: int = 8, image_size: int = 32, device: str = "cpu"
    ) -> ClipImageEmbedder:
        """A randomly initialised miniature of the same architecture, for tests."""
        torch = require_torch()
        transformers = require_transformers()
        config = transformers.CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=8,
            projection_dim=projection_dim,
        )
        torch.manual_seed(seed)
        model = transformers.CLIPVisionModelWithProjection(config)
        return cls(model, name=f"tiny-clip-{seed}", device=device)

    def pixel_values(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Preprocessed batch ``[N, 3, S, S]`` on the model's device and dtype."""
        torch = require_torch()
        batch = np.stack([clip_preprocess(im, self.image_size) for im in images])
        return torch.from_numpy(batch).to(device=self.device, dtype=self.dtype)

    def image_embeds(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Raw ``image_embeds`` ``[N, D]`` (model dtype, model device), in batches."""
        torch = require_torch()
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pixels = self.pixel_values(images[start : start + self.batch_size])
                out.append(self.model(pixel_values=pixels).image_embeds)
        if not out:
            return torch.zeros((0, self.dim), device=self.device, dtype=self.dtype)
        return torch.cat(out)

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, D]`` float32 L2-normalised embeddings of RGB uint8 images of any size."""
        torch = require_torch()
        emb = self.image_embeds(images).float()
        emb = torch.nn.functional.normalize(emb, dim=-1)
        return emb.cpu().numpy().astype(np.float32)


def _encoder_name(config: Any, folder: Path) -> str:
    """A stable name for galleries: the architecture when it is IP-Adapter's ViT-H-14."""
    if (config.hidden_size, config.num_hidden_layers, config.projection_dim) == (1280, 32, 1024):
        return "clip-vit-h-14"
    return folder.name
