"""Options of the commands that load the matcher's models (match, gallery build, run --match)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from faceshot.matching_api import MatchSettings
from faceshot_core.matching.weights import IP_ADAPTER_REPO, SD15_REPO

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option(
        "--model",
        default=SD15_REPO,
        show_default=True,
        metavar="PATH|ID",
        help="Stable Diffusion weights: a local diffusers folder or a Hub id already in "
        "the Hugging Face cache (nothing is downloaded).",
    ),
    click.option(
        "--ip-adapter",
        default=IP_ADAPTER_REPO,
        show_default=True,
        metavar="PATH|ID",
        help="IP-Adapter folder or Hub id (models/ip-adapter_sd15.bin and models/image_encoder/).",
    ),
    click.option(
        "--no-ip-adapter",
        is_flag=True,
        help="No image prompts (the reference code's setting, e.g. with SD 2.1).",
    ),
    click.option(
        "--image-encoder",
        default=None,
        metavar="PATH|ID",
        help="CLIP image encoder for the domain choice (default: IP-Adapter's).",
    ),
    click.option(
        "--hf-cache",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Hugging Face cache folder (default: HF_HUB_CACHE / HF_HOME).",
    ),
)


_DEVICE_OPTIONS = (
    click.option(
        "--device", "match_device", default=None, help="cuda or cpu (default: cuda when available)."
    ),
    click.option(
        "--dtype",
        "match_dtype",
        type=click.Choice(["float16", "bfloat16", "float32"]),
        default=None,
        help="Precision on GPU (default float16; CPU always float32).",
    ),
)


def model_options(func: F) -> F:
    """Attach the model options (with --device/--dtype) to a command."""
    for option in reversed(_OPTIONS + _DEVICE_OPTIONS):
        func = option(func)
    return func


def weights_options(func: F) -> F:
    """Attach the model options without --device/--dtype (for commands that already have them)."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def settings_from(
    gallery: Path | None, respace: bool = False, first_pass: str = "average", **kw: Any
) -> MatchSettings:
    """MatchSettings from the parsed model options."""
    return MatchSettings(
        gallery=gallery,
        model=kw["model"],
        ip_adapter=None if kw["no_ip_adapter"] else kw["ip_adapter"],
        image_encoder=kw["image_encoder"],
        device=kw.get("match_device"),
        dtype=kw.get("match_dtype"),
        respace=respace,
        first_pass=first_pass,  # type: ignore[arg-type]
        hf_cache_dir=kw["hf_cache"],
    )
