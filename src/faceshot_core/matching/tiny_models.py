"""Tiny architectures built in code, for tests and benchmarks without weights.

No weights can be downloaded where faceshot's tests run, so the matcher's real code paths run on
miniatures of the released models (diffusers' own testing approach): a Stable Diffusion U-Net
with SD's four levels (so ``up_blocks[1]`` sits where SD's does), an 8x VAE and a CLIP text
encoder with a real BPE tokenizer, plus IP-Adapter weights in the released file's layout.
:func:`write_tiny_checkpoint` and :func:`write_tiny_ip_adapter` save them in the released folder
layouts, so that loading goes through the same offline ``from_pretrained`` path as real weights.
The tiny CLIP image encoder is :meth:`ClipImageEmbedder.tiny
<faceshot_core.matching.clip_embedder.ClipImageEmbedder.tiny>`; the *full-size* architectures
are :mod:`faceshot_core.matching.architectures`.

faceshot itself does not use this module.  Like the rest of the matcher, it imports torch,
diffusers and transformers on first use, not on import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from faceshot_core.matching.architectures import (
    SD15_SCHEDULER,
    SD21_SCHEDULER,
    SD_DOWN_BLOCKS,
    SD_UP_BLOCKS,
)
from faceshot_core.matching.diffusion import cross_attention_layers
from faceshot_core.matching.runtime import require_diffusers, require_torch, require_transformers

if TYPE_CHECKING:
    from faceshot_core.matching.clip_embedder import ClipImageEmbedder

__all__ = [
    "TINY_MERGES",
    "TinySD",
    "released_ip_adapter",
    "tiny_sd",
    "tiny_tokenizer",
    "write_tiny_checkpoint",
    "write_tiny_ip_adapter",
]

#: The BPE merges of :func:`tiny_tokenizer`: enough for "a photo of a face" to merge a little.
TINY_MERGES = (("p", "h"), ("o", "t"), ("ph", "ot"), ("f", "a"), ("c", "e</w>"), ("fa", "ce</w>"))


def tiny_tokenizer(model_max_length: int = 16) -> Any:
    """A real CLIP BPE tokenizer with a 70-entry vocabulary that covers the prompt.

    Its ids are all below CLIP's 49408, so it also feeds the full-size text encoder (the
    benchmarks pass ``model_max_length=77``, SD's prompt length).
    """
    transformers = require_transformers()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    merges = list(TINY_MERGES)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return transformers.CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


class TinySD(NamedTuple):
    """The parts :class:`~faceshot_core.matching.diffusion.DiffusionFeatureExtractor` takes."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict[str, Any]


def tiny_sd(seed: int = 0, *, sd21: bool = False) -> TinySD:
    """SD-shaped miniatures: 4 UNet levels (so up_blocks[1] sits where SD's does), 8x VAE.

    ``sd21``: SD 2.1's variant (wider cross-attention, per-level heads, linear projections,
    v-prediction scheduler).  Weights are random from ``seed``, set on torch's global generator.
    """
    torch, diffusers, transformers = require_torch(), require_diffusers(), require_transformers()
    cross = 24 if sd21 else 16
    torch.manual_seed(seed)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(8, 16, 32, 32),
        layers_per_block=1,
        cross_attention_dim=cross,
        norm_num_groups=4,
        attention_head_dim=(1, 2, 4, 4) if sd21 else 2,
        use_linear_projection=sd21,
        down_block_types=SD_DOWN_BLOCKS,
        up_block_types=SD_UP_BLOCKS,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    tokenizer = tiny_tokenizer()
    text_encoder = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            vocab_size=len(tokenizer.get_vocab()),
            hidden_size=cross,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    sched = SD21_SCHEDULER if sd21 else SD15_SCHEDULER
    return TinySD(unet, vae, text_encoder, tokenizer, dict(sched))


def released_ip_adapter(
    unet: Any, image_embed_dim: int, seed: int = 1, *, scale: float = 1.0
) -> dict[str, Any]:
    """Random IP-Adapter weights in the released checkpoint's layout (ip-adapter_sd15.bin).

    Fits any SD-1.5-style ``unet``, tiny or full-size: an image projection to 4 tokens of its
    cross-attention width, and ``to_k_ip`` / ``to_v_ip`` for every cross-attention layer.
    ``scale`` multiplies every random deviation: 1 gives the lively values the tests want (the
    image prompt visibly changes the features); full-size models in float16 want about 0.02,
    the magnitude of trained weights, so that activations stay finite.
    """
    torch = require_torch()
    g = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    state: dict[str, Any] = {
        "image_proj": {
            "proj.weight": torch.randn(4 * cross, image_embed_dim, generator=g) * (0.5 * scale),
            "proj.bias": torch.randn(4 * cross, generator=g) * (0.1 * scale),
            "norm.weight": 1 + (0.1 * scale) * torch.randn(cross, generator=g),
            "norm.bias": (0.1 * scale) * torch.randn(cross, generator=g),
        },
        "ip_adapter": {},
    }
    for i, name in enumerate(cross_attention_layers(unet)):
        hidden = unet.get_submodule(name.removesuffix(".processor")).to_k.weight.shape[0]
        for w in ("to_k_ip", "to_v_ip"):
            weight = torch.randn(hidden, cross, generator=g) * scale
            state["ip_adapter"][f"{2 * i + 1}.{w}.weight"] = weight
    return state


def write_tiny_checkpoint(root: Path, parts: TinySD) -> None:
    """The diffusers layout, text encoder in the *released* key layout (text_model.* prefix)."""
    from safetensors.torch import save_file

    parts.unet.save_pretrained(root / "unet")
    parts.vae.save_pretrained(root / "vae")
    (root / "text_encoder").mkdir(parents=True)
    parts.text_encoder.config.save_pretrained(root / "text_encoder")
    sd = parts.text_encoder.state_dict()
    released = {
        k if k.startswith("text_model.") else f"text_model.{k}": v.contiguous()
        for k, v in sd.items()
    }
    save_file(released, str(root / "text_encoder" / "model.safetensors"))
    tok = root / "tokenizer"
    tok.mkdir()
    vocab = parts.tokenizer.get_vocab()
    (tok / "vocab.json").write_text(json.dumps(vocab))
    merges = [f"{a} {b}" for a, b in TINY_MERGES]
    (tok / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (tok / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16}))
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(parts.scheduler_config))


def write_tiny_ip_adapter(root: Path, state: dict[str, Any], encoder: ClipImageEmbedder) -> None:
    """An IP-Adapter folder as released: ``models/ip-adapter_sd15.bin`` + its image encoder."""
    torch = require_torch()
    (root / "models").mkdir(parents=True)
    torch.save(state, root / "models" / "ip-adapter_sd15.bin")
    encoder.model.save_pretrained(root / "models" / "image_encoder")
