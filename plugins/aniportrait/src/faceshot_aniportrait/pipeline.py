"""The AniPortrait generation: a reference image and a landmark sequence in, frames out.

What happens, in order (each step as the released weights expect it):

1. **Reference.**  The image (already at the working size, sides multiples of 64) is encoded
   twice: by CLIP for the cross-attention context (resized to 224x224 with Pillow's bicubic
   filter, aspect ratio not kept, then CLIP's mean/std normalisation: what upstream's
   ``ref_image.resize((224, 224))`` followed by ``CLIPImageProcessor`` does), giving the
   projected ``image_embeds`` ``[1, 1, 768]``; and by the VAE (``latent_dist.mean`` x 0.18215).
   The unconditional context is zeros.
2. **Reference attention.**  The reference UNet runs once, at timestep 0, on the reference
   latents with the contexts ``[zeros, CLIP]``; every transformer block's self-attention input is
   stored (rounded to float16 by default, as upstream) and read by the denoising UNet's twin
   block for the whole clip (:mod:`faceshot_aniportrait.reference_attention`).
3. **Poses.**  Each frame's 68 landmarks are drawn as a pose image in AniPortrait's training
   style and fed to the PoseGuider in ``[-1, 1]`` (:mod:`faceshot_aniportrait.pose_images`; the
   official scripts feed ``[-1, 509]`` by mistake).  Drawn per window, when it is denoised,
   with BatchNorm statistics over the window's frames as the released pipeline ran it.  The
   five features go to both guidance branches.
4. **Denoising.**  25 DDIM steps over 16-frame windows overlapping by 4, guidance 3.5
   (:mod:`faceshot_aniportrait.sampling`).
5. **Decoding.**  The VAE decodes one frame per call by default (upstream's choice, the
   smallest peak); frames are yielded as they are decoded.

Frames the driving detector only interpolated are generated like any other: the model has no
notion of landmark confidence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from faceshot_aniportrait.pose_images import pose_images, to_network
from faceshot_aniportrait.reference_attention import ReferenceAttention
from faceshot_aniportrait.sampling import Schedule, sample_windows
from faceshot_aniportrait.windowing import OVERLAP, WINDOW, context_windows
from faceshot_backends.decoding import decode_in_chunks
from faceshot_backends.torch_modules import offload_except
from faceshot_core.progress import ProgressSink, report

#: Latent scale of Stable Diffusion 1.5's VAE, hard-coded upstream for encoding and decoding.
LATENT_SCALE = 0.18215
#: CLIP's normalisation (``CLIPImageProcessor``'s defaults, OpenAI's values).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class GenerationSettings:
    """How one clip is generated (the backend's options map onto these)."""

    steps: int = 25
    #: Classifier-free guidance scale; 1 or less runs the conditional branch alone.
    guidance: float = 3.5
    #: PoseGuider BatchNorms: the window's statistics (as released) or the stored running ones.
    batch_statistics: bool = True
    #: Round the stored reference tokens to float16, as upstream does even in float32 runs.
    reference_float16: bool = True
    decode_chunk: int = 1
    window: int = WINDOW
    overlap: int = OVERLAP


@dataclass
class AniPortraitModels:
    """Every loaded module.  ``device``/``dtype``: where and how the networks run."""

    reference_unet: Any
    denoising_unet: Any
    pose_guider: Any
    vae: Any
    image_encoder: Any
    scheduler: Any
    device: torch.device
    dtype: torch.dtype
    offload: bool = False

    def modules(self) -> tuple[Any, ...]:
        return (self.reference_unet, self.denoising_unet, self.pose_guider, self.vae,
                self.image_encoder)  # fmt: skip

    def on_device(self, *modules: Any) -> None:
        """With offloading, bring ``modules`` to the device and send every other one back."""
        if self.offload:
            offload_except(self.modules(), modules, self.device)

    def release(self) -> None:
        for name in ("reference_unet", "denoising_unet", "pose_guider", "vae", "image_encoder",
                     "scheduler"):  # fmt: skip
            setattr(self, name, None)


def _pixels(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 ``[H, W, 3]`` -> float32 ``[1, 3, H, W]`` in ``[0, 1]`` on the CPU."""
    x = torch.from_numpy(np.array(image, dtype=np.float32)) / 255.0
    return x.permute(2, 0, 1).unsqueeze(0)


class AniPortraitPipeline:
    """Generates clips with loaded :class:`AniPortraitModels`; holds nothing between clips."""

    def __init__(self, models: AniPortraitModels) -> None:
        self.models = models

    @torch.no_grad()
    def clip_embedding(self, image: np.ndarray) -> torch.Tensor:
        """``[1, 1, D]``: CLIP's projected embedding of the reference, upstream's way."""
        m = self.models
        m.on_device(m.image_encoder)
        size = int(m.image_encoder.config.image_size)
        resized = Image.fromarray(np.ascontiguousarray(image)).resize(
            (size, size), Image.Resampling.BICUBIC
        )
        pixels = _pixels(np.asarray(resized))
        mean = torch.tensor(CLIP_MEAN).reshape(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).reshape(1, 3, 1, 1)
        pixels = ((pixels - mean) / std).to(m.device, m.image_encoder.dtype)
        embeds = m.image_encoder(pixel_values=pixels).image_embeds
        return embeds.unsqueeze(1).to(m.dtype)

    @torch.no_grad()
    def reference_latents(self, image: np.ndarray) -> torch.Tensor:
        """``[1, 4, H/8, W/8]``: the VAE's mean of the reference, times 0.18215."""
        m = self.models
        m.on_device(m.vae)
        pixels = (_pixels(image) * 2 - 1).to(m.device, m.vae.dtype)
        latents = m.vae.encode(pixels).latent_dist.mean * LATENT_SCALE
        return latents.to(m.dtype)

    def _predictor(
        self, contexts: torch.Tensor, sequence: np.ndarray, settings: GenerationSettings
    ) -> Any:
        """The denoising UNet's output for one window (both guidance branches when given)."""
        m = self.models

        def predict(model_input: torch.Tensor, frames: list[int], t: torch.Tensor) -> torch.Tensor:
            height, width = model_input.shape[-2:]
            drawings = pose_images(sequence[frames], (8 * width, 8 * height))
            poses = to_network(drawings).to(m.device, m.dtype)
            features = m.pose_guider(poses, batch_statistics=settings.batch_statistics)
            output = m.denoising_unet(model_input.to(m.dtype), t, contexts, features)
            return output.to(torch.float32)

        return predict

    @torch.no_grad()
    def decode(
        self, latents: torch.Tensor, chunk: int, progress: ProgressSink | None = None
    ) -> Iterator[np.ndarray]:
        """RGB uint8 frames from ``latents`` ``[1, 4, T, h, w]``, ``chunk`` frames per VAE call."""
        m = self.models
        m.on_device(m.vae)

        def decode(part: torch.Tensor) -> torch.Tensor:
            return m.vae.decode(part).sample

        frames = latents[0].transpose(0, 1)  # [T, 4, h, w]
        yield from decode_in_chunks(decode, frames, chunk, scaling_factor=LATENT_SCALE,
                                    dtype=m.vae.dtype, progress=progress)  # fmt: skip

    @torch.no_grad()
    def generate(
        self,
        image: np.ndarray,
        sequence: np.ndarray,
        *,
        seed: int,
        settings: GenerationSettings | None = None,
        progress: ProgressSink | None = None,
    ) -> Iterator[np.ndarray]:
        """One RGB uint8 frame per pose of ``sequence`` ``[T, 68, 2]`` (pixels of ``image``).

        The initial noise comes from a CPU generator seeded with ``seed``, so a seed gives the
        same start on every device (upstream also draws it with ``torch.manual_seed``).
        """
        cfg = settings or GenerationSettings()
        m = self.models
        h, w = image.shape[:2]
        if h % 64 or w % 64:
            raise ValueError(f"AniPortrait works on sides that are multiples of 64, got {w}x{h}")
        points = np.array(sequence, dtype=np.float32)  # a copy: the caller's array is left alone
        windows = context_windows(len(points), cfg.window, cfg.overlap)
        guided = cfg.guidance > 1
        report(progress, "conditioning", 0, 3, "parts")
        embedding = self.clip_embedding(image)
        contexts = torch.cat([torch.zeros_like(embedding), embedding]) if guided else embedding
        latents_ref = self.reference_latents(image)
        report(progress, "conditioning", 1, 3, "parts")
        store = torch.float16 if cfg.reference_float16 else None
        attention = ReferenceAttention(m.reference_unet, m.denoising_unet, store_dtype=store)
        m.on_device(m.reference_unet)
        attention.write(latents_ref, contexts, timestep=0)
        report(progress, "conditioning", 2, 3, "parts")

        schedule = Schedule.from_scheduler(m.scheduler, cfg.steps, m.device)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        shape = (1, latents_ref.shape[1], len(points), h // 8, w // 8)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32)
        latents = noise.to(m.device) * schedule.init_noise_sigma
        predict = self._predictor(contexts, points, cfg)
        report(progress, "conditioning", 3, 3, "parts")
        m.on_device(m.denoising_unet, m.pose_guider)
        try:
            with attention.reading(cfg_halves=guided):
                latents = sample_windows(latents, schedule, predict, windows=windows,
                                         guidance=cfg.guidance if guided else None,
                                         progress=progress)  # fmt: skip
        finally:
            attention.clear()
        yield from self.decode(latents, cfg.decode_chunk, progress)
