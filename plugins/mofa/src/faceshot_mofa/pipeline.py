"""The MOFA-Video generation: a reference image and a landmark sequence in, frames out.

What happens, in order (each step as the released weights expect it):

1. **Reference.**  The image (already at the working size, sides multiples of 64) is encoded
   three ways: by CLIP for the cross-attention embedding (resized with antialiasing to CLIP's
   input size and given to the vision model in ``[0, 1]`` *without* CLIP's mean/std
   normalisation, which is what MOFA's pipeline does); by the VAE after adding 2 % Gaussian
   noise (``latent_dist.mode()``, unscaled, repeated over the frames); and, in ``[-1, 1]``, as
   the adapter's reference image.
2. **Motion.**  CMP turns the sparse landmark displacements into a dense flow per frame
   (:func:`faceshot_mofa.cmp.dense_flow`), kept on the CPU and moved to the device one window
   at a time; each window's landmarks are drawn as the adapter's landmark images
   (:func:`faceshot_mofa.conditioning.landmark_images`) when it is denoised.
3. **Denoising.**  25 Euler steps over overlapping windows (:mod:`faceshot_mofa.sampling`).
   Guidance batches the unconditional and conditional branches together; the unconditional
   one zeroes only the CLIP embedding and the image latents (the adapter's inputs are the same
   in both), and the guidance scale rises from 1 on frame 0 to 3 on the window's last frame.
   The added time ids are fixed at fps 6, motion bucket 128, noise 0.02, as MOFA hard-codes.
4. **Decoding.**  The VAE decodes the latents a few frames at a time; frames are yielded as
   they are decoded.

Frames the driving detector only interpolated are generated like any other: the diffusion
model has no notion of landmark confidence, and dropping them would break the clip's timing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from faceshot_backends.decoding import decode_in_chunks
from faceshot_backends.torch_modules import offload_except
from faceshot_core.progress import ProgressSink, report
from faceshot_mofa.cmp import dense_flow
from faceshot_mofa.conditioning import landmark_images
from faceshot_mofa.sampling import Schedule, sample_windows
from faceshot_mofa.unet import unet_forward
from faceshot_mofa.windowing import STRIDE, WINDOW, frame_windows

#: ``[fps, motion bucket, noise augmentation]`` as MOFA fixes them, whatever the clip's fps.
TIME_IDS = (6.0, 128.0, 0.02)
NOISE_AUGMENTATION = 0.02


@dataclass(frozen=True)
class GenerationSettings:
    """How one clip is generated (the backend's options map onto these)."""

    steps: int = 25
    guidance: tuple[float, float] = (1.0, 3.0)
    conditioning_scale: float = 1.0
    window: int = WINDOW
    stride: int = STRIDE
    decode_chunk: int = 8
    flow_chunk: int = 8


@dataclass
class MofaModels:
    """Every loaded module.  ``device``/``dtype``: where and how the diffusion parts run."""

    unet: Any
    vae: Any
    image_encoder: Any
    adapter: Any
    cmp: Any
    scheduler: Any
    device: torch.device
    dtype: torch.dtype
    offload: bool = False

    def on_device(self, *modules: Any) -> None:
        """With offloading, bring ``modules`` to the device and send every other one back."""
        if self.offload:
            every = (self.unet, self.vae, self.image_encoder, self.adapter, self.cmp)
            offload_except(every, modules, self.device)

    def release(self) -> None:
        for name in ("unet", "vae", "image_encoder", "adapter", "cmp", "scheduler"):
            setattr(self, name, None)


def _image_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """RGB uint8 ``[H, W, 3]`` -> float32 ``[1, 3, H, W]`` in ``[0, 1]``."""
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device=device, dtype=torch.float32)
    return (x / 255.0).permute(2, 0, 1).unsqueeze(0)


class MofaPipeline:
    """Generates clips with loaded :class:`MofaModels`; holds nothing between clips."""

    def __init__(self, models: MofaModels) -> None:
        self.models = models

    @torch.no_grad()
    def clip_embedding(self, image01: torch.Tensor) -> torch.Tensor:
        """``[1, 1, D]``: CLIP's image embedding of the reference, MOFA's way (see the module)."""
        from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
            _resize_with_antialiasing,
        )

        m = self.models
        m.on_device(m.image_encoder)
        size = int(m.image_encoder.config.image_size)
        pixels = _resize_with_antialiasing(image01, (size, size))
        embeds = m.image_encoder(pixels.to(m.device, m.image_encoder.dtype)).image_embeds
        return embeds.unsqueeze(1).to(m.dtype)

    @torch.no_grad()
    def image_latents(self, image01: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``[1, 4, h, w]``: the VAE's mode of the slightly noised reference (not scaled)."""
        m = self.models
        m.on_device(m.vae)
        pixels = image01 * 2 - 1
        noise = torch.randn(pixels.shape, generator=generator, device=m.device,
                            dtype=torch.float32)  # fmt: skip
        pixels = pixels + NOISE_AUGMENTATION * noise
        upcast = m.vae.dtype == torch.float16 and getattr(m.vae.config, "force_upcast", False)
        vae_dtype = torch.float32 if upcast else m.vae.dtype
        if upcast:
            m.vae.to(dtype=torch.float32)
        try:
            latents = m.vae.encode(pixels.to(vae_dtype)).latent_dist.mode()
        finally:
            if upcast:
                m.vae.to(dtype=torch.float16)
        return latents.to(m.dtype)

    @torch.no_grad()
    def motion(
        self, image01: torch.Tensor, sequence: np.ndarray, settings: GenerationSettings
    ) -> torch.Tensor:
        """CMP's dense flow of every frame after the first, ``[T-1, 2, H, W]`` on the CPU.

        Kept in the run's dtype (what the adapter is given upstream too): 1 MB per frame at
        512x512 in float16, the only per-frame state besides the latents.  The landmark images
        are drawn per window instead (milliseconds), so they cost no memory per frame.
        """
        m = self.models
        m.on_device(m.cmp)
        points = torch.from_numpy(np.array(sequence, dtype=np.float32))
        flow = dense_flow(m.cmp, image01[0], points, chunk=settings.flow_chunk)
        return flow.to("cpu", m.dtype)

    def _predictor(
        self,
        embedding: torch.Tensor,
        image_latents: torch.Tensor,
        reference: torch.Tensor,
        flow: torch.Tensor,
        sequence: np.ndarray,
        settings: GenerationSettings,
    ) -> Any:
        """The guided model output of one window (both branches in one batch)."""
        m = self.models
        embeddings = torch.cat([torch.zeros_like(embedding), embedding])
        time_ids = torch.tensor([TIME_IDS, TIME_IDS], device=m.device, dtype=m.dtype)
        references = torch.cat([reference, reference])

        def predict(
            model_input: torch.Tensor, frames: list[int], t: torch.Tensor, scales: torch.Tensor
        ) -> torch.Tensor:
            count = len(frames)
            cond_latents = image_latents.unsqueeze(1).expand(-1, count, -1, -1, -1)
            conditioning = torch.cat([torch.zeros_like(cond_latents), cond_latents])
            sample = torch.cat([torch.cat([model_input] * 2), conditioning], dim=2)
            moved = flow[[f - 1 for f in frames[1:]]].to(m.device).unsqueeze(0)
            size = (reference.shape[-2], reference.shape[-1])
            drawings = landmark_images(sequence[frames], size)
            drawn = drawings.to(m.device, m.dtype).unsqueeze(0)
            down, mid = m.adapter(
                sample, t, embeddings, time_ids, references, torch.cat([moved, moved]),
                torch.cat([drawn, drawn]), conditioning_scale=settings.conditioning_scale,
            )  # fmt: skip
            output = unet_forward(m.unet, sample, t, embeddings, time_ids, down, mid)
            uncond, cond = output.float().chunk(2)
            guided = uncond + scales.reshape(1, count, 1, 1, 1) * (cond - uncond)
            return guided.to(model_input.dtype)

        return predict

    @torch.no_grad()
    def decode(
        self, latents: torch.Tensor, chunk: int, progress: ProgressSink | None = None
    ) -> Iterator[np.ndarray]:
        """RGB uint8 frames from ``latents`` ``[1, T, 4, h, w]``, ``chunk`` frames per VAE call."""
        m = self.models
        m.on_device(m.vae)

        def decode(part: torch.Tensor) -> torch.Tensor:
            return m.vae.decode(part, num_frames=part.shape[0]).sample

        yield from decode_in_chunks(decode, latents[0], chunk, dtype=m.vae.dtype,
                                    scaling_factor=m.vae.config.scaling_factor,
                                    progress=progress)  # fmt: skip

    def generate(
        self,
        image: np.ndarray,
        sequence: np.ndarray,
        *,
        seed: int,
        settings: GenerationSettings | None = None,
        progress: ProgressSink | None = None,
    ) -> Iterator[np.ndarray]:
        """One RGB uint8 frame per pose of ``sequence`` ``[T, 68, 2]`` (frame 0: the reference)."""
        cfg = settings or GenerationSettings()
        m = self.models
        h, w = image.shape[:2]
        if h % 64 or w % 64:
            raise ValueError(f"MOFA works on sides that are multiples of 64, got {w}x{h}")
        windows = frame_windows(len(sequence), cfg.window, cfg.stride)
        generator = torch.Generator(device=m.device).manual_seed(seed)
        image01 = _image_tensor(image, m.device)
        report(progress, "conditioning", 0, 3, "parts")
        embedding = self.clip_embedding(image01)
        image_latents = self.image_latents(image01, generator)
        report(progress, "conditioning", 1, 3, "parts")
        flow = self.motion(image01, sequence, cfg)
        report(progress, "conditioning", 2, 3, "parts")

        schedule = Schedule.from_scheduler(m.scheduler, cfg.steps, m.device)
        shape = (1, len(sequence), image_latents.shape[1], h // 8, w // 8)
        noise = torch.randn(shape, generator=generator, device=m.device, dtype=torch.float32)
        latents = (noise * schedule.init_noise_sigma).to(m.dtype)
        reference = (image01 * 2 - 1).to(m.dtype)
        points = np.asarray(sequence, dtype=np.float32)
        predict = self._predictor(embedding, image_latents, reference, flow, points, cfg)
        report(progress, "conditioning", 3, 3, "parts")
        m.on_device(m.unet, m.adapter)
        latents = sample_windows(latents, schedule, predict, windows=windows,
                                 guidance=cfg.guidance, progress=progress)  # fmt: skip
        del flow, predict
        yield from self.decode(latents, cfg.decode_chunk, progress)
