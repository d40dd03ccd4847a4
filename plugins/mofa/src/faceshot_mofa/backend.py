"""The ``mofa`` backend: MOFA-Video's landmark adapter on Stable Video Diffusion xt 1.1.

``faceshot run --backend mofa`` loads the released weights once (see :mod:`faceshot_mofa.weights`)
and animates each clip in overlapping 25-frame windows, so any length works.  The runner brings
the reference to the working size first (short side 512 by default, sides multiples of 64, the
border padded by repeating edge pixels) and maps the frames back, so any reference size works
and the landmarks stay aligned.

It runs on a CUDA GPU in float16 (or bfloat16); the CPU path exists for tests and tiny models
(a real-size clip on a CPU would take hours).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from faceshot_backends import BackendOptions, Capabilities, Runtime, WorkingSize
from faceshot_backends.diffusion import DiffusionAnimator, DiffusionBackend, DiffusionOptions
from faceshot_backends.gpu_faults import GpuOutOfMemoryError
from faceshot_backends.torch_modules import compile_blocks
from faceshot_core.progress import ProgressSink
from faceshot_core.torch_support import torch_dtype
from faceshot_core.weights import WeightSpec, find_weights
from faceshot_mofa.windowing import STRIDE, WINDOW


class MofaOptions(DiffusionOptions):
    """What ``--option key=value`` can set for ``mofa``."""

    weights: str | None = Field(
        default=None,
        description="folder with the MOFA-Video-Hybrid files "
        "(default: $FACESHOT_MOFA_WEIGHTS, then the Hugging Face cache)",
    )
    steps: int = Field(default=25, ge=1, le=200, description="Euler denoising steps")
    min_guidance: float = Field(
        default=1.0, ge=0.0, le=20.0, description="guidance on a window's first frame"
    )
    max_guidance: float = Field(
        default=3.0, ge=0.0, le=20.0, description="guidance on a window's last frame"
    )
    conditioning_scale: float = Field(
        default=1.0, ge=0.0, le=5.0, description="strength of the landmark adapter"
    )
    context_pairing: Literal["upstream", "per_video"] = Field(
        default="upstream",
        description="CLIP context of the temporal attention under guidance: as MOFA's release "
        "ran it (upstream) or each video its own, as SVD's reference code (per_video)",
    )

    @model_validator(mode="after")
    def _guidance_order(self) -> MofaOptions:
        if self.min_guidance > self.max_guidance:
            raise ValueError("min_guidance must not exceed max_guidance")
        return self


def _settings(options: MofaOptions) -> Any:
    from faceshot_mofa.pipeline import GenerationSettings

    return GenerationSettings(
        steps=options.steps, guidance=(options.min_guidance, options.max_guidance),
        conditioning_scale=options.conditioning_scale, decode_chunk=options.decode_chunk,
    )  # fmt: skip


class MofaOutOfMemoryError(GpuOutOfMemoryError):
    """The GPU ran out of memory; the settings that need less are named in the message."""


class MofaAnimator(DiffusionAnimator):
    """The loaded models; animates many clips, frees the GPU on ``close()``."""

    out_of_memory = MofaOutOfMemoryError

    def settings(self) -> Any:
        assert isinstance(self.options, MofaOptions)
        return _settings(self.options)


class MofaBackend(DiffusionBackend):
    """MOFA-Video (landmark adapter + CMP flow on SVD xt 1.1), windowed, any length."""

    name: ClassVar[str] = "mofa"
    description: ClassVar[str] = "MOFA-Video: landmark-driven Stable Video Diffusion (GPU)"
    Options: ClassVar[type[BackendOptions]] = MofaOptions
    capabilities: ClassVar[Capabilities] = Capabilities(
        temporal="windowed", window=WINDOW, stride=STRIDE, min_frames=2,
        working_size=WorkingSize(short_side=512, multiple=64),
        devices=("cuda", "cpu"), dtypes=("float16", "bfloat16", "float32"), deterministic=True,
    )  # fmt: skip

    @classmethod
    def weight_specs(cls, options: BackendOptions) -> tuple[WeightSpec, ...]:
        from faceshot_mofa.weights import weight_spec

        return (weight_spec(),)

    @classmethod
    def load(
        cls, options: BackendOptions, runtime: Runtime, progress: ProgressSink | None = None
    ) -> MofaAnimator:
        import torch

        from faceshot_mofa.context_pairing import pair_contexts
        from faceshot_mofa.pipeline import MofaPipeline
        from faceshot_mofa.weights import load_models, weight_spec

        assert isinstance(options, MofaOptions)
        location = find_weights(weight_spec(), cls.weights_folder(options))
        if not location.ready:
            raise location.error("or --option weights=DIR")
        models = load_models(location, torch.device(runtime.device),
                             torch_dtype(runtime.dtype), offload=options.offload,
                             progress=progress)  # fmt: skip
        pair_contexts([models.unet, models.adapter], options.context_pairing)
        if options.compile:
            compile_blocks(models.unet, models.adapter)
        return MofaAnimator(options, runtime, MofaPipeline(models))
