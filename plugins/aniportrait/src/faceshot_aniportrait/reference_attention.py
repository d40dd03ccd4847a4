"""Reference attention: the denoising UNet's self-attention also looks at the reference image.

AniPortrait keeps the reference image's appearance by running a second SD 1.5 UNet (the
reference UNet) once on the reference latents and letting every spatial transformer block of the
denoising UNet attend to the tokens of its twin block in the reference UNet ("full" fusion, 16
block pairs at SD 1.5's layout).  What upstream does (``mutual_self_attention.py`` and the
pose-to-video pipeline), restated:

* **pairing**: both UNets' transformer blocks are collected in module order (down, up, mid:
  the order diffusers registers them), stably sorted by width and zipped.  Since both UNets list
  the same blocks in the same order, that pairs the blocks at the same module path, which is
  how :class:`ReferenceAttention` pairs them (and refuses UNets whose paths differ);
* **write**: the reference UNet runs at timestep 0 (batch 2 under classifier-free guidance, with
  contexts ``[zeros, CLIP]``); each block stores the ``norm1`` output, i.e. the normalised tokens
  entering its self-attention (not the raw hidden states);
* **storage dtype**: upstream copies the stored tokens to float16 even in float32 runs (a small
  rounding); ``store_dtype=torch.float16`` (the default) does the same, ``None`` keeps them in
  the dtype they were computed in.  They are cast to the denoising UNet's dtype when read;
* **read**: in the denoising UNet, a block's self-attention takes its own tokens as queries and
  ``[own tokens, reference tokens]`` (the reference tokens repeated for every frame of their
  batch item) as keys and values.  Under classifier-free guidance (batch ``[uncond, cond]``)
  the unconditional half uses plain self-attention and only the conditional half reads the
  conditional half of the stored tokens.

Nothing is patched permanently: :meth:`ReferenceAttention.write` holds forward hooks on the
reference UNet's ``norm1`` layers only while it runs, and :meth:`ReferenceAttention.reading`
installs an attention processor of its own on the denoising blocks' ``attn1`` (wrapping
whatever processor was there, which still does the attention) and restores the old one on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers.models.attention_processor import Attention
from torch import nn

#: Where the UNets' block paths start (anything before, e.g. a wrapper's prefix, is ignored).
_TOP_LEVEL = ("down_blocks", "mid_block", "up_blocks")


def transformer_blocks(unet: nn.Module) -> dict[str, nn.Module]:
    """The spatial transformer blocks of a UNet, by path from ``down_blocks``/``mid_block``/...

    A block is a module with a self-attention ``attn1`` (diffusers ``Attention``) fed by a
    LayerNorm ``norm1``: diffusers' ``BasicTransformerBlock``.  The motion modules' temporal
    blocks have neither and are not included.  Order: module (registration) order.
    """
    blocks: dict[str, nn.Module] = {}
    for name, module in unet.named_modules():
        attn1, norm1 = getattr(module, "attn1", None), getattr(module, "norm1", None)
        if isinstance(attn1, Attention) and isinstance(norm1, nn.LayerNorm):
            parts = name.split(".")
            starts = [i for i, p in enumerate(parts) if p in _TOP_LEVEL]
            blocks[".".join(parts[starts[0] :]) if starts else name] = module
    return blocks


class _CapturedError(Exception):
    """Not a failure: raised from a hook once every reference block has stored its tokens, to
    end the reference UNet's pass there (caught by :meth:`ReferenceAttention.write`)."""


def _norm1(block: nn.Module) -> nn.LayerNorm:
    norm = block.norm1
    assert isinstance(norm, nn.LayerNorm)  # guaranteed by transformer_blocks
    return norm


def _attn1(block: nn.Module) -> Attention:
    attn = block.attn1
    assert isinstance(attn, Attention)
    return attn


class _ReadProcessor:
    """``attn1`` of a denoising block while reading: keys/values ``[own, reference]`` tokens."""

    def __init__(self, inner: Any, reference: torch.Tensor, cfg_halves: bool) -> None:
        self.inner = inner
        self.reference = reference
        self.cfg_halves = cfg_halves

    def _with_reference(self, attn: Attention, tokens: torch.Tensor, ref: torch.Tensor) -> Any:
        """Each stored row serves ``rows / stored`` consecutive token rows: its item's frames."""
        rows, stored = tokens.shape[0], ref.shape[0]
        if rows % stored:
            raise ValueError(f"{rows} token rows cannot share {stored} stored reference rows")
        ref = ref.to(tokens.device, tokens.dtype).repeat_interleave(rows // stored, dim=0)
        return self.inner(attn, tokens, torch.cat([tokens, ref], dim=1))

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if encoder_hidden_states is not None or attention_mask is not None or args or kwargs:
            raise ValueError("reference attention reads plain self-attention calls only")
        if not self.cfg_halves:
            return self._with_reference(attn, hidden_states, self.reference)
        if hidden_states.shape[0] % 2:
            raise ValueError("cfg_halves needs a denoising batch [uncond, cond] (even)")
        uncond, cond = hidden_states.chunk(2)
        plain = self.inner(attn, uncond)
        mixed = self._with_reference(attn, cond, self.reference[self.reference.shape[0] // 2 :])
        return torch.cat([plain, mixed])


class ReferenceAttention:
    """Pairs a reference UNet with the denoising UNet and moves tokens between them.

    Usage (the pipeline's order)::

        attention = ReferenceAttention(reference_unet, denoising_unet)
        attention.write(reference_latents, torch.cat([zeros, clip_embeds]))  # once per video
        with attention.reading(cfg_halves=True):
            for window, step ...: denoising_unet(latents_2x, t, context_2x, poses)
        attention.clear()
    """

    def __init__(
        self,
        reference_unet: nn.Module,
        denoising_unet: nn.Module,
        *,
        store_dtype: torch.dtype | None = torch.float16,
    ) -> None:
        self.reference_unet = reference_unet
        self.denoising_unet = denoising_unet
        self.store_dtype = store_dtype
        writers, readers = transformer_blocks(reference_unet), transformer_blocks(denoising_unet)
        if set(writers) != set(readers):
            raise ValueError(
                "the UNets' transformer blocks differ: only in the reference UNet "
                f"{sorted(set(writers) - set(readers))}, only in the denoising UNet "
                f"{sorted(set(readers) - set(writers))}"
            )
        for path, block in writers.items():
            width = _norm1(block).normalized_shape
            other = _norm1(readers[path]).normalized_shape
            if width != other:
                raise ValueError(f"{path}: reference width {width}, denoising {other}")
        self._writers, self._readers = writers, readers
        self._bank: dict[str, torch.Tensor] = {}
        self._reading = False

    @property
    def paths(self) -> list[str]:
        """The paired blocks' paths (the same in both UNets), in module order."""
        return list(self._readers)

    @property
    def bank(self) -> dict[str, torch.Tensor]:
        """The stored reference tokens ``[B_ref, L, C]`` by block path (empty before write)."""
        return dict(self._bank)

    def write(
        self,
        reference_latents: torch.Tensor,
        context: torch.Tensor,
        timestep: torch.Tensor | float = 0,
    ) -> None:
        """Run the reference UNet once and store every block's self-attention input.

        ``reference_latents`` ``[B_ref or 1, 4, h, w]`` (VAE mean x 0.18215), ``context``
        ``[B_ref, L, D]``; upstream, under guidance: one latent, contexts ``[zeros, CLIP]``.
        Replaces what an earlier call stored.  The pass stops as soon as the last block has
        stored its tokens: the reference UNet's output is never used (AniPortrait's has no
        ``conv_norm_out``/``conv_out``).
        """
        if self._reading:
            raise RuntimeError("write() inside reading()")
        if reference_latents.shape[0] == 1:
            reference_latents = reference_latents.expand(context.shape[0], -1, -1, -1)
        bank: dict[str, torch.Tensor] = {}

        def store(path: str) -> Any:
            def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
                dtype = self.store_dtype or output.dtype
                bank[path] = output.detach().to(dtype, copy=True)
                if len(bank) == len(self._writers):
                    raise _CapturedError

            return hook

        handles = [_norm1(b).register_forward_hook(store(p)) for p, b in self._writers.items()]
        try:
            self.reference_unet(reference_latents, timestep, encoder_hidden_states=context)
        except _CapturedError:
            pass
        finally:
            for handle in handles:
                handle.remove()
        if len(bank) != len(self._writers):
            raise RuntimeError(f"reference UNet ran {len(bank)} of {len(self._writers)} blocks")
        self._bank = bank

    @contextmanager
    def reading(self, cfg_halves: bool = True) -> Iterator[None]:
        """Within the block, the denoising UNet's blocks attend to the stored tokens.

        ``cfg_halves=True``: the denoising batch is ``[uncond, cond]`` and the stored batch
        ``[uncond, cond]`` (as :meth:`write` with contexts ``[zeros, CLIP]`` leaves it); the
        unconditional half keeps plain self-attention, the conditional half reads the stored
        conditional half.  ``False``: every batch item reads its stored item (one stored item
        may serve all).  Either way the stored rows are repeated for every frame.
        """
        if not self._bank:
            raise RuntimeError("nothing stored: call write() first")
        if cfg_halves and next(iter(self._bank.values())).shape[0] % 2:
            raise ValueError("cfg_halves needs stored tokens for [uncond, cond] (an even batch)")
        if self._reading:
            raise RuntimeError("reading() is already active")
        originals: dict[str, Any] = {}
        try:
            self._reading = True
            for path, block in self._readers.items():
                attn1 = _attn1(block)
                originals[path] = attn1.processor
                # typed for diffusers' own processor classes; any callable with their
                # signature is accepted at run time
                reader: Any = _ReadProcessor(attn1.processor, self._bank[path], cfg_halves)
                attn1.set_processor(reader)
            yield
        finally:
            for path, processor in originals.items():
                _attn1(self._readers[path]).set_processor(processor)
            self._reading = False

    def clear(self) -> None:
        """Forget the stored tokens (they hold 16 maps of the reference image's size)."""
        self._bank = {}
