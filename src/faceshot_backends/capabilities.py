"""What a backend declares about itself: how it consumes time, sizes, devices and dtypes.

The runner reads these *before* anything is loaded and honours every field:

* ``temporal`` - ``per_frame``: each pose is rendered on its own and frames stream out as they
  are made (the ``warp`` animator); ``clip``: the whole sequence is generated at once, up to
  ``max_frames``; ``windowed``: the backend generates overlapping windows of ``window`` frames
  every ``stride`` frames and blends them itself, so any length works (a long driving video is
  never refused).  Windowed and clip backends get the whole sequence in one request.
* ``min_frames`` / ``max_frames`` - a clip backend's limits; a longer video is refused with a
  hint (``--max-frames``), never silently cut.
* ``working_size`` - the frame size the model works at.  The runner maps the reference image
  and its landmarks into it (see :mod:`faceshot_backends.framing`) and maps the frames back to
  the output size, so any reference size works and the landmarks stay aligned.
* ``devices`` / ``dtypes`` - device types (``cpu``, ``cuda``) and precisions the backend runs
  with; ``--device auto`` / ``--dtype auto`` choose among them, and asking a GPU-only backend to
  run on a CPU is an error before anything loads.
* ``deterministic`` - whether the same seed gives the same frames (checked by the kit).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from faceshot_core.torch_support import DTYPES, DtypeName

Temporal = Literal["per_frame", "clip", "windowed"]
Fit = Literal["pad", "crop", "stretch"]
DEVICE_TYPES = ("cpu", "cuda")


class WorkingSize(BaseModel):
    """The frame size a model works at, as a rule applied to each reference image.

    Either a fixed ``width`` x ``height``, or ``short_side`` (the image is scaled so that its
    shorter side has this length), or neither (the reference's own size); then each side is
    brought to a multiple of ``multiple``.  ``fit`` says how the aspect ratio is reconciled:
    ``pad`` scales the whole image inside the canvas and fills the border by repeating the edge
    pixels (nothing is lost; the default), ``crop`` fills the canvas and cuts what sticks out,
    centred on the face (the output then shows that region), ``stretch`` scales each axis on
    its own (nothing is lost, the model sees a distorted face).
    """

    model_config = ConfigDict(frozen=True)

    width: int | None = Field(default=None, ge=8)
    height: int | None = Field(default=None, ge=8)
    short_side: int | None = Field(default=None, ge=8)
    multiple: int = Field(default=1, ge=1)
    fit: Fit = "pad"

    @model_validator(mode="after")
    def _one_rule(self) -> WorkingSize:
        fixed = (self.width is None) + (self.height is None)
        if fixed == 1:
            raise ValueError("give both width and height for a fixed working size")
        if fixed == 0 and self.short_side is not None:
            raise ValueError("give a fixed width x height or a short_side, not both")
        return self

    def describe(self) -> str:
        if self.width is not None:
            rule = f"{self.width}x{self.height}"
        elif self.short_side is not None:
            rule = f"short side {self.short_side}"
        else:
            rule = "reference size"
        if self.multiple > 1:
            rule += f", multiples of {self.multiple}"
        return f"{rule} ({self.fit})"


class Capabilities(BaseModel):
    """How a backend consumes time and what it runs on (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    temporal: Temporal = "per_frame"
    window: int | None = Field(default=None, ge=1)
    stride: int | None = Field(default=None, ge=1)
    min_frames: int = Field(default=1, ge=1)
    max_frames: int | None = Field(default=None, ge=1)
    working_size: WorkingSize | None = None
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[DtypeName, ...] = ("float32",)
    deterministic: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Capabilities:
        if self.temporal == "windowed":
            if self.window is None or self.stride is None:
                raise ValueError("a windowed backend declares its window and stride")
            if self.stride > self.window:
                raise ValueError(f"stride {self.stride} leaves gaps between windows of "
                                 f"{self.window} frames")  # fmt: skip
        elif self.window is not None or self.stride is not None:
            raise ValueError("window and stride are for temporal='windowed' backends")
        if self.max_frames is not None and self.max_frames < self.min_frames:
            raise ValueError("max_frames is smaller than min_frames")
        if not self.devices or set(self.devices) - set(DEVICE_TYPES):
            raise ValueError(f"devices must be a non-empty subset of {DEVICE_TYPES}")
        if not self.dtypes or set(self.dtypes) - set(DTYPES):
            raise ValueError(f"dtypes must be a non-empty subset of {DTYPES}")
        return self

    @property
    def gpu_only(self) -> bool:
        return "cpu" not in self.devices

    @property
    def streams(self) -> bool:
        """Whether frames come out as each pose is rendered (memory flat in video length)."""
        return self.temporal == "per_frame"

    def frame_limit(self) -> int | None:
        """The longest sequence one request may carry (``None``: any length)."""
        return None if self.temporal == "windowed" else self.max_frames

    def describe(self) -> str:
        """One line for ``faceshot backends -v``."""
        time = self.temporal.replace("_", "-")
        if self.temporal == "windowed":
            time += f" (window {self.window}, stride {self.stride})"
        limits = f"frames {self.min_frames}.." + (str(self.max_frames) if self.max_frames
                                                   else "any")  # fmt: skip
        size = self.working_size.describe() if self.working_size else "any size"
        return (f"{time}; {limits}; working size {size}; devices {', '.join(self.devices)}; "
                f"dtypes {', '.join(self.dtypes)}; "
                + ("deterministic" if self.deterministic else "not deterministic"))  # fmt: skip
