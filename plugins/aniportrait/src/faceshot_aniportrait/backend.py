"""The ``aniportrait`` backend: AniPortrait's pose-image-driven Stable Diffusion 1.5 video model.

``faceshot run --backend aniportrait`` loads the released weights once (see
:mod:`faceshot_aniportrait.weights`) and animates each clip in 16-frame windows overlapping by 4,
so any length works.  The runner brings the reference to the working size first (short side
512 by default - the size AniPortrait was trained at - sides multiples of 64, the border padded
by repeating edge pixels) and maps the frames back, so any reference size works and the
landmarks stay aligned.  The driving landmarks become pose images in AniPortrait's training
style; no face detector runs on the reference, so stylised and non-human characters work as
long as their 68 landmarks are given.

It runs on a CUDA GPU in float16 (or bfloat16); the CPU path exists for tests and tiny models
(a real-size clip on a CPU would take hours).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from faceshot_aniportrait.windowing import OVERLAP, WINDOW
from faceshot_backends import BackendOptions, Capabilities, Runtime, WorkingSize
from faceshot_backends.diffusion import DiffusionAnimator, DiffusionBackend, DiffusionOptions
from faceshot_backends.gpu_faults import GpuOutOfMemoryError
from faceshot_backends.torch_modules import compile_blocks
from faceshot_core.progress import ProgressSink
from faceshot_core.torch_support import torch_dtype
from faceshot_core.weights import WeightSpec


class AniPortraitOptions(DiffusionOptions):
    """What ``--option key=value`` can set for ``aniportrait``."""

    weights: str | None = Field(
        default=None,
        description="folder with the AniPortrait files (default: "
        "$FACESHOT_ANIPORTRAIT_WEIGHTS, then the Hugging Face cache)",
    )
    steps: int = Field(default=25, ge=1, le=200, description="DDIM denoising steps")
    guidance: float = Field(
        default=3.5, ge=1.0, le=20.0,
        description="classifier-free guidance scale (1: no guidance, half the work)",
    )  # fmt: skip
    decode_chunk: int = Field(
        default=1, ge=1, le=64, description="frames per VAE decode call (more: faster, more memory)"
    )
    batch_statistics: bool = Field(
        default=True,
        description="PoseGuider BatchNorm with each window's statistics, as the release ran it "
        "(false: the stored running statistics, frames independent of their window)",
    )
    reference_float16: bool = Field(
        default=True,
        description="round the stored reference-attention tokens to float16, as upstream does",
    )


def _settings(options: AniPortraitOptions) -> Any:
    from faceshot_aniportrait.pipeline import GenerationSettings

    return GenerationSettings(
        steps=options.steps, guidance=options.guidance,
        batch_statistics=options.batch_statistics, reference_float16=options.reference_float16,
        decode_chunk=options.decode_chunk,
    )  # fmt: skip


class AniPortraitOutOfMemoryError(GpuOutOfMemoryError):
    """The GPU ran out of memory; the settings that need less are named in the message."""


class AniPortraitAnimator(DiffusionAnimator):
    """The loaded models; animates many clips, frees the GPU on ``close()``."""

    out_of_memory = AniPortraitOutOfMemoryError

    def settings(self) -> Any:
        assert isinstance(self.options, AniPortraitOptions)
        return _settings(self.options)


class AniPortraitBackend(DiffusionBackend):
    """AniPortrait (reference UNet, 3D denoising UNet, PoseGuider on SD 1.5), windowed."""

    name: ClassVar[str] = "aniportrait"
    description: ClassVar[str] = "AniPortrait: pose-image-driven Stable Diffusion 1.5 video (GPU)"
    Options: ClassVar[type[BackendOptions]] = AniPortraitOptions
    capabilities: ClassVar[Capabilities] = Capabilities(
        temporal="windowed", window=WINDOW, stride=WINDOW - OVERLAP, min_frames=2,
        working_size=WorkingSize(short_side=512, multiple=64),
        devices=("cuda", "cpu"), dtypes=("float16", "bfloat16", "float32"), deterministic=True,
    )  # fmt: skip

    @classmethod
    def weight_specs(cls, options: BackendOptions) -> tuple[WeightSpec, ...]:
        """The release's three specs, or the single-file spec when that layout is found."""
        from faceshot_aniportrait.weights import find_all

        return tuple(location.spec for location in find_all(cls.weights_folder(options)))

    @classmethod
    def load(
        cls, options: BackendOptions, runtime: Runtime, progress: ProgressSink | None = None
    ) -> AniPortraitAnimator:
        import torch

        from faceshot_aniportrait.pipeline import AniPortraitPipeline
        from faceshot_aniportrait.weights import find_all, load_models

        assert isinstance(options, AniPortraitOptions)
        locations = find_all(cls.weights_folder(options))
        for location in locations:
            if not location.ready:
                raise location.error("or --option weights=DIR")
        models = load_models(locations, torch.device(runtime.device), torch_dtype(runtime.dtype),
                             offload=options.offload, progress=progress)  # fmt: skip
        if options.compile:
            compile_blocks(models.denoising_unet)
        return AniPortraitAnimator(options, runtime, AniPortraitPipeline(models))
