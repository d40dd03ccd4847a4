"""The extractor: Stable Diffusion features after DDIM inversion, batched and cached.

:class:`DiffusionFeatureExtractor` runs what the package docstring
(:mod:`faceshot_core.matching.diffusion`) describes step by step: VAE latents sampled with a
per-image seed, the inverse DDIM steps up to the capture timestep, the chosen block's output
captured by a forward hook that also cuts the last UNet call short.  It loads the real
checkpoints offline (:meth:`DiffusionFeatureExtractor.from_pretrained`) or takes loaded modules
(the tests' tiny ones).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from faceshot_core.matching.base import FeatureSpec
from faceshot_core.matching.clip_embedder import ClipImageEmbedder, as_rgb_uint8
from faceshot_core.matching.diffusion.cache import CacheKey, FeatureCache, array_digest
from faceshot_core.matching.diffusion.checkpoint import load_modules
from faceshot_core.matching.diffusion.ip_adapter import (
    attach_ip_adapter,
    has_ip_adapter,
    load_ip_adapter_state_dict,
)
from faceshot_core.matching.diffusion.schedule import (
    block_channels,
    inverse_scheduler,
    inversion_timesteps,
)
from faceshot_core.matching.runtime import (
    matcher_device,
    matcher_dtype,
    require_torch,
)
from faceshot_core.matching.weights import IP_ADAPTER_FILE, IP_ADAPTER_REPO, SD15_REPO
from faceshot_core.torch_support import place, seeded_generator

if TYPE_CHECKING:
    import torch

DEFAULT_PROMPT = "a photo of a face"


class _FeatureCaptured(Exception):  # noqa: N818 - control flow, not an error
    """Raised from the block's hook to end a UNet call once the feature is in hand."""

    def __init__(self, feature: torch.Tensor):
        super().__init__("feature captured")
        self.feature = feature


class DiffusionFeatureExtractor:
    """FaceShot's dense features: ``up_blocks[1]`` at t=301 of DDIM inversion (see the package doc).

    Built from loaded modules (tests pass tiny ones); :meth:`from_pretrained` loads the real
    checkpoints offline.  ``image_encoder`` is only used when ``unet`` carries an IP-Adapter
    (see :func:`attach_ip_adapter`).

    Attributes worth knowing: :attr:`spec` (what the maps mean), :attr:`timesteps` (the UNet
    calls made per batch), :attr:`last_unet_calls` (UNet forward passes during the last
    :meth:`feature_maps` call; 16 per batch of misses at t=301, 0 when all were cached),
    :attr:`cache`.
    """

    def __init__(
        self,
        *,
        unet: Any,
        vae: Any,
        text_encoder: Any,
        tokenizer: Any,
        scheduler_config: Mapping[str, Any],
        model_id: str,
        image_encoder: ClipImageEmbedder | None = None,
        ip_adapter_name: str = IP_ADAPTER_FILE,
        timestep: int = 301,
        block: str = "up_blocks.1",
        num_inference_steps: int = 50,
        prompt: str = DEFAULT_PROMPT,
        seed: int = 42,
        image_size: int = 512,
        batch_size: int = 4,
        device: str | torch.device | None = None,
        dtype: Any = None,
        cache_size: int = 32,
        cache_dir: str | os.PathLike[str] | None = None,
        stop_early: bool = True,
    ) -> None:
        torch_ = require_torch()
        if image_size % 8:
            raise ValueError(
                f"image_size must be a multiple of 8 (the VAE's factor), got {image_size}"
            )
        self.device = matcher_device(device)
        self.dtype = matcher_dtype(self.device, dtype)
        # The VAE stays float32: encoding is a small part of the cost and fp16 VAEs can overflow.
        self.unet = place(unet, self.device, self.dtype)
        self.vae = place(vae, self.device, torch_.float32)
        self.text_encoder = place(text_encoder, self.device, self.dtype)
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.timestep = int(timestep)
        self.block = block
        self.num_inference_steps = int(num_inference_steps)
        self.prompt = prompt
        self.seed = int(seed)
        self.image_size = int(image_size)
        self.batch_size = max(1, int(batch_size))
        self.stop_early = stop_early
        self.scheduler = inverse_scheduler(scheduler_config, self.num_inference_steps)
        self.timesteps = inversion_timesteps(self.scheduler, self.timestep)
        self.ip_adapter = has_ip_adapter(self.unet)
        if self.ip_adapter and image_encoder is None:
            raise ValueError("the UNet carries an IP-Adapter: pass its image_encoder")
        self.image_encoder = image_encoder if self.ip_adapter else None
        self.spec = FeatureSpec(
            model=model_id,
            timestep=self.timestep,
            block=block,
            channels=block_channels(self.unet.config, block),
            image_prompt=ip_adapter_name if self.ip_adapter else None,
        )
        self.cache = FeatureCache(cache_size, cache_dir)
        self.last_unet_calls = 0
        self.total_unet_calls = 0
        self._text_embedding: torch.Tensor | None = None
        self._prompt_embeds: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._capture = False
        self._captured: torch.Tensor | None = None
        self._hook = self.unet.get_submodule(block).register_forward_hook(self._on_block_output)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike[str] = SD15_REPO,
        *,
        ip_adapter: str | os.PathLike[str] | None = IP_ADAPTER_REPO,
        device: str | None = None,
        dtype: Any = None,
        timestep: int = 301,
        block: str = "up_blocks.1",
        num_inference_steps: int = 50,
        prompt: str = DEFAULT_PROMPT,
        seed: int = 42,
        image_size: int = 512,
        batch_size: int = 4,
        cache_size: int = 32,
        cache_dir: str | os.PathLike[str] | None = None,
        hf_cache_dir: str | os.PathLike[str] | None = None,
    ) -> DiffusionFeatureExtractor:
        """Load a Stable Diffusion checkpoint (and IP-Adapter) from a folder or the HF cache.

        Defaults are the paper's: SD 1.5 + ``ip-adapter_sd15``.  The reference code's default
        is ``from_pretrained("stabilityai/stable-diffusion-2-1", ip_adapter=None)``.  Every
        needed file is checked first; all missing ones are reported in one
        MissingDependencyError.  Nothing is downloaded.
        """
        from faceshot_core.matching.weights import locate_weights

        paths = locate_weights(model, ip_adapter=ip_adapter, cache_dir=hf_cache_dir)
        dev = matcher_device(device)
        compute = matcher_dtype(dev, dtype)
        modules = load_modules(paths.model, compute)
        encoder = None
        if paths.ip_adapter is not None:
            attach_ip_adapter(
                modules["unet"],
                load_ip_adapter_state_dict(paths.ip_adapter.file("ip_adapter:weights")),
            )
            encoder_dir = paths.image_encoder_dir
            assert encoder_dir is not None
            encoder = ClipImageEmbedder.from_folder(encoder_dir, device=str(dev), dtype=compute)
        return cls(
            **modules,
            model_id=paths.model.name,
            image_encoder=encoder,
            timestep=timestep,
            block=block,
            num_inference_steps=num_inference_steps,
            prompt=prompt,
            seed=seed,
            image_size=image_size,
            batch_size=batch_size,
            device=dev,
            dtype=compute,
            cache_size=cache_size,
            cache_dir=cache_dir,
        )

    # ------------------------------------------------------------------ public API

    def feature_maps(
        self, images: Sequence[np.ndarray], prompts: Sequence[np.ndarray | None] | None = None
    ) -> list[np.ndarray]:
        """One float32 ``[C, h, w]`` map per RGB uint8 image (what it is: the package docstring).

        ``prompts[i]`` is the IP-Adapter image prompt for ``images[i]`` (ignored without an
        IP-Adapter).  Cached maps are returned without any model call; the others go through
        the VAE and the UNet together, ``batch_size`` images at a time.
        """
        rgb = [as_rgb_uint8(im) for im in images]
        prompt_list = list(prompts) if prompts is not None else [None] * len(rgb)
        if len(prompt_list) != len(rgb):
            raise ValueError(f"{len(rgb)} images but {len(prompt_list)} prompts")
        prompt_rgb = [
            as_rgb_uint8(p) if p is not None and self.ip_adapter else None for p in prompt_list
        ]
        keys = [self._key(im, p) for im, p in zip(rgb, prompt_rgb, strict=True)]
        self.last_unet_calls = 0
        results: dict[CacheKey, np.ndarray] = {}
        todo: dict[CacheKey, tuple[np.ndarray, np.ndarray | None]] = {}
        for key, im, p in zip(keys, rgb, prompt_rgb, strict=True):
            if key in results or key in todo:
                continue
            hit = self.cache.get(key)
            if hit is None:
                todo[key] = (im, p)
            else:
                results[key] = hit
        pending = list(todo.items())
        for start in range(0, len(pending), self.batch_size):
            chunk = pending[start : start + self.batch_size]
            feats = self._extract([im for _, (im, _) in chunk], [p for _, (_, p) in chunk])
            for (key, _), feat in zip(chunk, feats, strict=True):
                self.cache.put(key, feat)
                results[key] = feat
        return [np.array(results[key], dtype=np.float32, copy=True) for key in keys]

    def close(self) -> None:
        """Remove the forward hook from the UNet (for callers that keep using the UNet)."""
        self._hook.remove()

    # ------------------------------------------------------------------ internals

    def _key(self, image: np.ndarray, prompt: np.ndarray | None) -> CacheKey:
        return CacheKey(
            image=array_digest(image),
            prompt_image=array_digest(prompt) if prompt is not None else None,
            model=self.model_id,
            timestep=self.timestep,
            block=self.block,
            seed=self.seed,
            image_size=self.image_size,
            num_inference_steps=self.num_inference_steps,
            prompt=self.prompt,
            dtype=str(self.dtype).removeprefix("torch."),
        )

    def _extract(
        self, images: list[np.ndarray], prompts: list[np.ndarray | None]
    ) -> list[np.ndarray]:
        """Features of one batch: VAE, then the inversion up to the capturing UNet call."""
        torch = require_torch()
        with torch.inference_mode():
            latents = self._encode(images)
            text = self._text_condition().expand(len(images), -1, -1)
            added = self._image_condition(prompts)
            feature = self._invert(latents, text, added)
        expected = self.spec.channels
        if feature.shape[1] != expected:
            raise RuntimeError(
                f"{self.block} gave {feature.shape[1]} channels, expected {expected}"
            )
        out = feature.float().cpu().numpy()
        return [np.ascontiguousarray(f) for f in out]

    def _pixels(self, images: list[np.ndarray]) -> torch.Tensor:
        """``[B, 3, S, S]`` float32 in [-1, 1]: whole image resized (bicubic) to S x S."""
        from PIL import Image

        torch = require_torch()
        s = self.image_size
        arrs = [
            np.asarray(Image.fromarray(im).resize((s, s), Image.Resampling.BICUBIC))
            for im in images
        ]
        batch = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float()
        return (batch / 127.5 - 1.0).to(self.device)

    def _encode(self, images: list[np.ndarray]) -> torch.Tensor:
        """VAE latents *sampled* with one CPU generator seeded ``seed`` per image (float32)."""
        posterior = self.vae.encode(self._pixels(images)).latent_dist
        generators = [seeded_generator(self.seed, "cpu") for _ in images]
        latents = posterior.sample(generator=generators)
        shift = getattr(self.vae.config, "shift_factor", None)
        if shift is not None:
            latents = latents - shift
        return latents * self.vae.config.scaling_factor

    def _text_condition(self) -> torch.Tensor:
        """The prompt's CLIP text embedding ``[1, L, D]``, computed on first use and kept."""
        if self._text_embedding is None:
            max_length = min(
                int(self.tokenizer.model_max_length),
                int(self.text_encoder.config.max_position_embeddings),
            )
            ids = self.tokenizer(
                [self.prompt],
                padding="max_length",
                max_length=max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(self.device)
            self._text_embedding = self.text_encoder(ids)[0].to(self.dtype)
        return self._text_embedding

    def _image_condition(self, prompts: list[np.ndarray | None]) -> dict[str, Any] | None:
        """``added_cond_kwargs`` with one CLIP image embedding per image (zeros for none)."""
        if not self.ip_adapter:
            return None
        assert self.image_encoder is not None
        torch = require_torch()
        digests = [array_digest(p) if p is not None else None for p in prompts]
        new = {
            d: p
            for d, p in zip(digests, prompts, strict=True)
            if d is not None and p is not None and d not in self._prompt_embeds
        }
        if new:
            embeds = self.image_encoder.image_embeds(list(new.values()))
            for d, e in zip(new, embeds, strict=True):
                self._prompt_embeds[d] = e
            while len(self._prompt_embeds) > 256:
                self._prompt_embeds.popitem(last=False)
        zero = torch.zeros(self.image_encoder.dim, device=self.device, dtype=self.dtype)
        rows = [self._prompt_embeds[d] if d is not None else zero for d in digests]
        stacked = torch.stack(rows).to(device=self.device, dtype=self.dtype)
        return {"image_embeds": [stacked[:, None, :]]}

    def _invert(
        self, latents: torch.Tensor, text: torch.Tensor, added: dict[str, Any] | None
    ) -> torch.Tensor:
        """Run the inverse DDIM steps; return the block's output during the call at ``timestep``."""
        for t in self.timesteps:
            last = t == self.timestep
            with self._capturing(last):
                try:
                    noise = self._unet(latents, t, text, added)
                except _FeatureCaptured as done:
                    return done.feature
            if last:
                assert self._captured is not None
                return self._captured
            latents = self.scheduler.step(noise.float(), t, latents).prev_sample
        raise AssertionError("unreachable: the schedule ends at the capture timestep")

    def _unet(
        self, latents: torch.Tensor, t: int, text: torch.Tensor, added: dict[str, Any] | None
    ) -> torch.Tensor:
        self.last_unet_calls += 1
        self.total_unet_calls += 1
        out = self.unet(
            latents.to(self.dtype), t, encoder_hidden_states=text, added_cond_kwargs=added
        )
        return out.sample

    @contextmanager
    def _capturing(self, on: bool) -> Iterator[None]:
        self._capture, self._captured = on, None
        try:
            yield
        finally:
            self._capture = False

    def _on_block_output(self, module: Any, args: Any, output: Any) -> None:
        if not self._capture:
            return
        feature = output[0] if isinstance(output, tuple) else output
        if self.stop_early:
            raise _FeatureCaptured(feature)
        self._captured = feature
