"""What every diffusion backend shares: its common options, its animator, its working size.

A diffusion plugin (MOFA-Video, AniPortrait) has a loaded *pipeline* whose
``generate(image, sequence, seed=, settings=, progress=)`` yields frames, and options of its
own on top of a common set: a weights folder, the working size as a short side (multiples of
64, what the latent models need), frames per VAE decode call, CPU offload of idle models and
``torch.compile``.  Those common parts live here once: :class:`DiffusionOptions`,
:class:`DiffusionAnimator` (generation with a GPU out-of-memory error explained in one line,
models released on ``close()``) and :class:`DiffusionBackend` (the working size answered from
``short_side``, contract 2.1).  Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from faceshot_backends.capabilities import WorkingSize
from faceshot_backends.contract import BaseAnimator, BaseBackend
from faceshot_backends.gpu_faults import GpuOutOfMemoryError, explain_out_of_memory, memory_hints
from faceshot_backends.options import BackendOptions
from faceshot_backends.request import AnimationRequest, Runtime
from faceshot_core.progress import ProgressSink
from faceshot_core.torch_support import free_accelerator_memory

#: Latent diffusion models work on sides that are multiples of this.
SIDE_MULTIPLE = 64


class DiffusionOptions(BackendOptions):
    """Options every diffusion backend has (subclasses add their own and may re-describe)."""

    weights: str | None = Field(
        default=None,
        description="folder with the weights (default: the backend's environment variable, "
        "then the Hugging Face cache)",
    )
    short_side: int = Field(
        default=512, ge=64, le=2048, description="working size: the short side, a multiple of 64"
    )
    decode_chunk: int = Field(
        default=8, ge=1, le=64, description="frames per VAE decode call (less: less memory)"
    )
    offload: bool = Field(
        default=False,
        description="keep idle models in CPU memory, moving each to the GPU only while it runs "
        "(less GPU memory, slower)",
    )
    compile: bool = Field(
        default=False, description="torch.compile the denoising networks' blocks (slow first clip)"
    )

    @field_validator("short_side")
    @classmethod
    def _multiple_of_64(cls, value: int) -> int:
        if value % SIDE_MULTIPLE:
            raise ValueError(f"must be a multiple of {SIDE_MULTIPLE}, got {value}")
        return value


class DiffusionAnimator(BaseAnimator):
    """A loaded pipeline; animates many clips, frees the GPU on ``close()``.

    Subclasses set :attr:`out_of_memory` (their error class) and write :meth:`settings` (the
    pipeline's generation settings from the options).
    """

    out_of_memory: ClassVar[type[GpuOutOfMemoryError]] = GpuOutOfMemoryError

    def __init__(self, options: BackendOptions, runtime: Runtime, pipeline: Any) -> None:
        super().__init__(options, runtime)
        self.pipeline = pipeline

    def settings(self) -> Any:
        raise NotImplementedError(f"{type(self).__qualname__} must implement settings()")

    def animate(
        self, request: AnimationRequest, progress: ProgressSink | None = None
    ) -> Iterator[np.ndarray]:
        self.check_open()
        frames = self.pipeline.generate(
            request.reference_image, request.sequence, seed=request.runtime.seed,
            settings=self.settings(), progress=progress,
        )  # fmt: skip
        return explain_out_of_memory(frames, memory_hints(self.options), self.out_of_memory)

    def release(self) -> None:
        if self.pipeline is not None:
            self.pipeline.models.release()
        self.pipeline = None
        free_accelerator_memory()


class DiffusionBackend(BaseBackend):
    """A backend whose working size is its ``short_side`` option in multiples of 64."""

    @classmethod
    def working_size(cls, options: BackendOptions) -> WorkingSize | None:
        side = getattr(options, "short_side", 512)
        return WorkingSize(short_side=side, multiple=SIDE_MULTIPLE)
