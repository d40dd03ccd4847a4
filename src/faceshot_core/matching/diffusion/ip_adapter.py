"""IP-Adapter (Eq. 3's image prompt): read the released checkpoint, check it, attach it.

The loading path is diffusers' own (``UNet2DConditionModel._load_ip_adapter_weights``, the
method ``load_ip_adapter`` ends in), fed with the released checkpoint's state dict
(``{"image_proj": {"proj.weight", ...}, "ip_adapter": {"1.to_k_ip.weight", ...}}``) after
checking its layout against the UNet, so a wrong file fails with a clear message rather than
deep inside diffusers.  Only the plain IP-Adapter (4 image tokens) is supported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from faceshot_core.errors import FaceshotUserError, MissingDependencyError
from faceshot_core.matching.runtime import require_diffusers, require_torch

IPAdapterStateDict = dict[str, dict[str, Any]]


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
