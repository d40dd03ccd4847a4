"""Stable Diffusion features after DDIM inversion (FaceShot Sec. 3.2, Eq. 2-3).

What is computed, exactly (paper + reference code, see ``docs/faceshot-method.md``):

1. The image is resized to ``image_size`` x ``image_size`` (512; the whole image, no crop, so a
   feature cell maps back to the image by scaling each axis), scaled to [-1, 1] and encoded by
   the VAE.  The latent is *sampled* from the VAE posterior (mean + std * noise), not its mean,
   with noise from a CPU generator seeded ``seed`` (42) *per image*, so an image gets the same
   latent alone or in any batch, on any device; then multiplied by the VAE's scaling factor.
2. DDIM inversion with ``DDIMInverseScheduler`` built from the model's own scheduler config
   (betas, ``set_alpha_to_one`` = False and ``clip_sample`` = False for SD 1.5 and 2.1,
   ``prediction_type``: epsilon for 1.5, v for 2.1), with ``timestep_spacing="leading"`` and
   ``steps_offset=1`` imposed: on the 50-step schedule the timesteps are 1, 21, 41, ..., 981,
   and t=301 is the 16th.  Text condition "a photo of a face" (its CLIP text embedding is
   computed once and reused), no classifier-free guidance.
3. The feature is the output of ``unet.up_blocks[1]`` (1280 x 32 x 32 for a 512 input; the
   paper's "layer l=6", the DIFT convention) during the UNet call *with timestep 301*.  That
   call is the 16th; its input latent is the one produced by the 15th inversion step (the step
   at t=281), i.e. z0 inverted to noise level alpha_bar[281] - this is the paper's
   eps_theta(z^{t-1}, t-1, c, c') with t-1 = 301 in its notation.  Inversion stops there: the
   scheduler step at t=301 is never taken (its output is not needed), and the UNet call itself
   is cut short by raising from the block's forward hook, so the decoder blocks after
   ``up_blocks[1]`` (the most expensive, highest-resolution ones) do not run.  Exactly 16 UNet
   calls per batch, exposed as :attr:`DiffusionFeatureExtractor.last_unet_calls`.
4. IP-Adapter (the paper's setting, SD 1.5 + ``ip-adapter_sd15``: 4 image tokens, scale 1.0):
   ``prompts[i]`` - the *other* image of Eq. 3 - goes through the CLIP ViT-H-14 image encoder,
   the adapter's image projection, and the decoupled cross-attention of every ``attn2``.  An
   image given no prompt in IP-Adapter mode gets a zero CLIP embedding: this is IP-Adapter's
   own "no image" condition (it was trained with the image embedding zeroed at random for
   classifier-free guidance, and diffusers uses zeros as the negative image embedding), and it
   keeps every batch the same shape.  Without an IP-Adapter (the reference code's default,
   SD 2.1) prompts are ignored and ``spec.image_prompt`` is None.

The loading path for IP-Adapter is diffusers' own (``UNet2DConditionModel.
_load_ip_adapter_weights``, the method ``load_ip_adapter`` ends in), fed with the released
checkpoint's state dict (``{"image_proj": {"proj.weight", ...}, "ip_adapter": {"1.to_k_ip.weight",
...}}``) after checking its layout against the UNet, so a wrong file fails with a clear message
rather than deep inside diffusers.

Features are cached (in memory, LRU; and optionally on disk as safetensors) under a key of
everything that determines them, so the gallery's and the reference's features are computed
once.  torch and diffusers are imported lazily.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceshot_core.errors import FaceshotUserError, MissingDependencyError
from faceshot_core.matching.base import FeatureSpec
from faceshot_core.matching.clip_embedder import ClipImageEmbedder, as_rgb_uint8
from faceshot_core.matching.runtime import (
    matcher_device,
    matcher_dtype,
    require_diffusers,
    require_torch,
    require_transformers,
)
from faceshot_core.matching.weights import IP_ADAPTER_FILE, IP_ADAPTER_REPO, SD15_REPO
from faceshot_core.torch_support import place, seeded_generator

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_PROMPT",
    "DiffusionFeatureExtractor",
    "FeatureCache",
    "attach_ip_adapter",
    "block_channels",
    "check_ip_adapter_layout",
    "cross_attention_layers",
    "has_ip_adapter",
    "inverse_scheduler",
    "inversion_timesteps",
    "load_ip_adapter_state_dict",
]

DEFAULT_PROMPT = "a photo of a face"
IPAdapterStateDict = dict[str, dict[str, Any]]


# --------------------------------------------------------------------------- schedule, blocks


def inverse_scheduler(config: Mapping[str, Any], num_inference_steps: int = 50) -> Any:
    """``DDIMInverseScheduler`` from a model's scheduler config, on FaceShot's timestep grid.

    Betas, ``set_alpha_to_one``, ``clip_sample`` and ``prediction_type`` come from the model
    (SD 1.5 and 2.1 ship ``set_alpha_to_one: false``, ``clip_sample: false``); the spacing is
    imposed ("leading", offset 1: timesteps 1, 21, ..., 981 for 50 steps) because t=301 is a
    point of that grid and means nothing on another.
    """
    diffusers = require_diffusers()
    # Keep what DDIMInverseScheduler understands: a PNDM config (SD 1.5) also carries
    # skip_prk_steps etc., which would only produce a warning.
    accepted = set(inspect.signature(diffusers.DDIMInverseScheduler.__init__).parameters)
    cfg = {k: v for k, v in dict(config).items() if k in accepted}
    cfg.update(timestep_spacing="leading", steps_offset=1)
    scheduler = diffusers.DDIMInverseScheduler.from_config(cfg)
    scheduler.set_timesteps(num_inference_steps)
    return scheduler


def inversion_timesteps(scheduler: Any, timestep: int) -> list[int]:
    """The inverse schedule's timesteps up to and including ``timestep`` (which must be on it)."""
    steps = [int(t) for t in scheduler.timesteps]
    if timestep not in steps:
        raise ValueError(
            f"timestep {timestep} is not on the {len(steps)}-step inversion schedule "
            f"({steps[0]}, {steps[1]}, ..., {steps[-1]})"
        )
    return steps[: steps.index(timestep) + 1]


def block_channels(unet_config: Any, block: str) -> int:
    """Output channels of ``block`` (``up_blocks.N``, ``down_blocks.N`` or ``mid_block``)."""
    channels = list(unet_config.block_out_channels)
    name, _, index = block.partition(".")
    if name == "mid_block" and not index:
        return channels[-1]
    if name in ("up_blocks", "down_blocks") and index.isdigit() and int(index) < len(channels):
        i = int(index)
        return channels[::-1][i] if name == "up_blocks" else channels[i]
    raise ValueError(
        f"block {block!r} is not a UNet block; use up_blocks.N, down_blocks.N (N < "
        f"{len(channels)}) or mid_block"
    )


# --------------------------------------------------------------------------- IP-Adapter


def load_ip_adapter_state_dict(path: str | os.PathLike[str]) -> IPAdapterStateDict:
    """The released IP-Adapter checkpoint as ``{"image_proj": {...}, "ip_adapter": {...}}``.

    ``.bin``: a pickled dict of tensors, read with ``weights_only=True`` (no code runs);
    ``.safetensors``: flat keys ``image_proj.*`` / ``ip_adapter.*``, split as diffusers does.
    """
    torch = require_torch()
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        flat = load_file(str(p), device="cpu")
        state: IPAdapterStateDict = {"image_proj": {}, "ip_adapter": {}}
        for key, value in flat.items():
            group, _, rest = key.partition(".")
            if group in state:
                state[group][rest] = value
        return state
    loaded = torch.load(str(p), map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict):
        raise FaceshotUserError(f"{p} is not an IP-Adapter checkpoint (not a dict)")
    return loaded


def cross_attention_layers(unet: Any) -> list[str]:
    """Names of the UNet's cross-attention processors, in diffusers' (= IP-Adapter's) order."""
    return [name for name in unet.attn_processors if name.endswith("attn2.processor")]


def check_ip_adapter_layout(unet: Any, state: Mapping[str, Any]) -> None:
    """Fail clearly unless ``state`` is a plain IP-Adapter (4 tokens) that fits ``unet``.

    The released layout: ``image_proj`` = {proj.weight [4*C, D], proj.bias, norm.weight [C],
    norm.bias} and ``ip_adapter`` = {``k.to_k_ip.weight``, ``k.to_v_ip.weight``} for
    k = 1, 3, 5, ... (the odd indices of the original attention processor list: one per
    cross-attention layer), each [hidden of that layer, C], with C the UNet's cross-attention
    dimension.
    """
    problems: list[str] = []
    proj = state.get("image_proj")
    adapter = state.get("ip_adapter")
    if not isinstance(proj, Mapping) or not isinstance(adapter, Mapping):
        raise FaceshotUserError("not an IP-Adapter checkpoint: needs 'image_proj' and 'ip_adapter'")
    cross = int(unet.config.cross_attention_dim)
    if set(proj) != {"proj.weight", "proj.bias", "norm.weight", "norm.bias"}:
        problems.append(
            f"image_proj keys {sorted(proj)} are not those of the plain IP-Adapter "
            "(Plus/Full-face/FaceID variants are not supported)"
        )
    else:
        tokens_dim = int(proj["proj.weight"].shape[0])
        norm_dim = int(proj["norm.weight"].shape[0])
        if tokens_dim != 4 * cross or norm_dim != cross:
            problems.append(
                f"image_proj makes {tokens_dim // 4}-dim tokens (norm {norm_dim}), the UNet's "
                f"cross-attention dim is {cross} (an SD 1.5 adapter on an SD 2.x UNet?)"
            )
    layers = cross_attention_layers(unet)
    expected = {
        f"{2 * i + 1}.{w}.weight" for i in range(len(layers)) for w in ("to_k_ip", "to_v_ip")
    }
    if set(adapter) != expected:
        problems.append(
            f"ip_adapter has {len(adapter)} tensors, the UNet's {len(layers)} cross-attention "
            f"layers need {len(expected)} (keys 1, 3, ..., {2 * len(layers) - 1})"
        )
    else:
        for i, name in enumerate(layers):
            to_k = unet.get_submodule(name.removesuffix(".processor")).to_k.weight
            for w in ("to_k_ip", "to_v_ip"):
                shape = tuple(adapter[f"{2 * i + 1}.{w}.weight"].shape)
                if shape != tuple(to_k.shape):
                    problems.append(
                        f"ip_adapter {2 * i + 1}.{w} {shape} != {name} {tuple(to_k.shape)}"
                    )
    if problems:
        raise FaceshotUserError("IP-Adapter does not fit this UNet: " + "; ".join(problems))


def attach_ip_adapter(unet: Any, state: IPAdapterStateDict) -> None:
    """Load an IP-Adapter into ``unet`` with diffusers' own machinery (scale 1.0).

    After this, ``unet.encoder_hid_proj`` maps CLIP image embeddings to the 4 image tokens and
    every ``attn2`` runs ``IPAdapterAttnProcessor2_0``; the UNet then expects
    ``added_cond_kwargs={"image_embeds": [tensor [B, 1, D]]}``.
    """
    check_ip_adapter_layout(unet, state)
    loader = getattr(unet, "_load_ip_adapter_weights", None)
    if loader is None:  # pragma: no cover - present in every diffusers the extra allows
        raise MissingDependencyError(
            "this diffusers has no UNet2DConditionModel._load_ip_adapter_weights; "
            "pip install 'faceshot[match]'"
        )
    with _quiet_diffusers():
        loader([state])


@contextmanager
def _quiet_diffusers() -> Iterator[None]:
    """Silence diffusers' warnings for a moment (its loader warns about its own no-op cast)."""
    logging = require_diffusers().utils.logging
    before = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(before)


def has_ip_adapter(unet: Any) -> bool:
    """Whether ``unet`` carries an IP-Adapter image projection (and so wants image tokens)."""
    return getattr(unet.config, "encoder_hid_dim_type", None) == "ip_image_proj" and (
        getattr(unet, "encoder_hid_proj", None) is not None
    )


# --------------------------------------------------------------------------- cache


def array_digest(image: np.ndarray) -> str:
    """Content hash of an image (shape and pixels): same pixels, same key, whatever the source."""
    arr = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{arr.shape}{arr.dtype.str}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """Everything a feature map depends on (two equal keys, two equal maps)."""

    image: str
    prompt_image: str | None
    model: str
    timestep: int
    block: str
    seed: int
    image_size: int
    num_inference_steps: int
    prompt: str
    dtype: str

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


class FeatureCache:
    """LRU in memory, and optionally one safetensors file per feature in ``directory``.

    The disk cache makes gallery and reference features survive across processes: a second
    ``faceshot`` run on the same character does no UNet call at all.  Files are written
    atomically; an unreadable file counts as a miss and is rewritten.
    """

    def __init__(self, max_entries: int = 32, directory: str | os.PathLike[str] | None = None):
        self.max_entries = int(max_entries)
        self.directory = Path(directory) if directory is not None else None
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self._memory)

    def _path(self, digest: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{digest}.safetensors"

    def get(self, key: CacheKey) -> np.ndarray | None:
        digest = key.digest()
        arr = self._memory.get(digest)
        if arr is None and self.directory is not None:
            arr = self._read(self._path(digest))
            if arr is not None:
                self._remember(digest, arr)
        if arr is None:
            self.misses += 1
            return None
        self._memory.move_to_end(digest)
        self.hits += 1
        return arr

    def put(self, key: CacheKey, feature: np.ndarray) -> None:
        digest = key.digest()
        arr = np.ascontiguousarray(feature, dtype=np.float32)
        arr.setflags(write=False)
        self._remember(digest, arr)
        if self.directory is not None:
            self._write(self._path(digest), arr, key)

    def _remember(self, digest: str, arr: np.ndarray) -> None:
        if self.max_entries <= 0:
            return
        self._memory[digest] = arr
        self._memory.move_to_end(digest)
        while len(self._memory) > self.max_entries:
            self._memory.popitem(last=False)

    @staticmethod
    def _read(path: Path) -> np.ndarray | None:
        if not path.is_file():
            return None
        try:
            from safetensors.numpy import load_file

            arr = load_file(str(path))["feature"]
        except Exception as exc:  # a truncated or foreign file: recompute rather than fail
            warnings.warn(f"ignoring unreadable feature cache file {path}: {exc}", stacklevel=3)
            return None
        arr.setflags(write=False)
        return arr

    @staticmethod
    def _write(path: Path, arr: np.ndarray, key: CacheKey) -> None:
        from safetensors.numpy import save_file

        from faceshot_core.atomic import atomic_output

        meta = {k: str(v) for k, v in asdict(key).items()}
        with atomic_output(path) as tmp:
            save_file({"feature": arr}, str(tmp), metadata=meta)


class _FeatureCaptured(Exception):  # noqa: N818 - control flow, not an error
    """Raised from the block's hook to end a UNet call once the feature is in hand."""

    def __init__(self, feature: torch.Tensor):
        super().__init__("feature captured")
        self.feature = feature


# --------------------------------------------------------------------------- extractor


class DiffusionFeatureExtractor:
    """FaceShot's dense features: ``up_blocks[1]`` at t=301 of DDIM inversion (see module doc).

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
        modules = _load_modules(paths.model, compute)
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
        """One float32 ``[C, h, w]`` map per RGB uint8 image (see the module doc for what it is).

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


def _load_modules(source: Any, dtype: Any) -> dict[str, Any]:
    """UNet, VAE, text encoder, tokenizer and scheduler config of a located checkpoint."""
    diffusers = require_diffusers()
    transformers = require_transformers()
    root = Path(source.root)
    unet = diffusers.UNet2DConditionModel.from_pretrained(
        root,
        subfolder="unet",
        local_files_only=True,
        torch_dtype=dtype,
        variant=source.variant("unet"),
    )
    vae = diffusers.AutoencoderKL.from_pretrained(
        root, subfolder="vae", local_files_only=True, variant=source.variant("vae")
    )
    text_encoder = transformers.CLIPTextModel.from_pretrained(
        root / "text_encoder", local_files_only=True, variant=source.variant("text_encoder")
    )
    tokenizer = transformers.CLIPTokenizer.from_pretrained(
        root / "tokenizer", local_files_only=True
    )
    config = json.loads(source.file("scheduler:config").read_text())
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler_config": config,
    }
