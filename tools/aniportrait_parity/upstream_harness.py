"""Running one step of upstream's own ``Pose2VideoPipeline`` on CPU, and recording it.

Imported by ``upstream_side.py`` in the upstream environment.  Nothing here is upstream code,
and nothing of upstream is changed; the pipeline's ``__call__`` runs as released, with

* stand-ins for the two networks the check does not compare (``StubVAE``: ``encode`` gives
  the check's reference latent mean, ``decode`` is never reached; ``StubImageEncoder``: the
  check's CLIP image embedding), so the reference and pose inputs are known tensors;
* a DDIM scheduler (the scripts' class and configuration) whose ``set_timesteps`` keeps one
  timestep of the 25-step schedule, so the loop runs exactly one denoising step, mid-schedule;
  its ``step`` still sees ``num_inference_steps = 25``, so the update is the real one;
* forward hooks (``Recorder``) that copy what goes into and comes out of the PoseGuider, the
  reference UNet, the denoising UNet and the scheduler step, and the reference-attention banks
  at the moment the denoising UNet reads them (the pipeline clears them afterwards).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class StubVAE(ModelMixin):
    """Stands in for ``AutoencoderKL``: ``encode`` returns the given latent mean."""

    def __init__(self, latent_mean: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("latent_mean", latent_mean.clone())
        # sd-vae-ft-mse's widths: the pipeline only derives its scale factor (8) from them.
        self.config = SimpleNamespace(block_out_channels=[128, 256, 512, 512])
        self.encoded: list[torch.Tensor] = []

    def encode(self, image: torch.Tensor) -> Any:
        self.encoded.append(image)
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=self.latent_mean.clone()))

    def decode(self, latents: torch.Tensor) -> Any:  # pragma: no cover - never reached
        raise AssertionError("the parity harness replaces decode_latents")


class StubImageEncoder(ModelMixin):
    """Stands in for ``CLIPVisionModelWithProjection``: returns the given ``image_embeds``."""

    def __init__(self, image_embeds: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("image_embeds", image_embeds.clone())

    def forward(self, pixel_values: torch.Tensor) -> Any:
        return SimpleNamespace(image_embeds=self.image_embeds.clone())


def one_step_scheduler(kwargs: dict[str, Any], index: int, recorder: Recorder) -> Any:
    """The scripts' ``DDIMScheduler(**kwargs)``, keeping only timestep ``index`` in the loop."""
    from diffusers import DDIMScheduler

    class OneStepDDIM(DDIMScheduler):  # type: ignore[misc]
        def set_timesteps(self, num_inference_steps: int, device: Any = None) -> None:
            super().set_timesteps(num_inference_steps, device)
            recorder.store("schedule_timesteps", self.timesteps.float())
            self.timesteps = self.timesteps[index : index + 1]

        def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
                 *args: Any, **kwargs: Any) -> Any:  # fmt: skip
            out = super().step(model_output, timestep, sample, *args, **kwargs)
            recorder.store("step_guided", model_output)
            recorder.store("step_timestep", torch.as_tensor(timestep).reshape(1).float())
            recorder.store("step_sample", sample)
            recorder.store("step_prev_sample", out.prev_sample)
            return out

    return OneStepDDIM(**kwargs)


def _blocks_with_bank(unet: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in unet.named_modules() if isinstance(getattr(m, "bank", None), list)}


class Recorder:
    """Copies of tensors seen during the pipeline call, by name (each name recorded once)."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.handles: list[Any] = []

    def store(self, name: str, tensor: torch.Tensor) -> None:
        if name in self.tensors:
            raise AssertionError(f"{name} recorded twice: more than one step or window ran")
        self.tensors[name] = tensor.detach().clone().contiguous()

    def attach(self, pose_guider: nn.Module, reference: nn.Module, denoising: nn.Module) -> None:
        def pose_hook(_m: nn.Module, args: tuple[Any, ...], output: list[torch.Tensor]) -> None:
            self.store("pipe_pose_input", args[0])
            for k, feature in enumerate(output):
                self.store(f"pipe_pose_{k}", feature)

        def reference_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self.store("ref_latents", args[0])
            self.store("ref_timestep", torch.as_tensor(args[1]).reshape(1).float())
            self.store("ref_context", kwargs["encoder_hidden_states"])

        def denoising_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self.store("unet_input", args[0])
            self.store("unet_timestep", torch.as_tensor(args[1]).reshape(1).float())
            self.store("unet_context", kwargs["encoder_hidden_states"])
            # The banks as the denoising UNet reads them (float16 copies), and the reference
            # UNet's own (float32): the pipeline clears both after the loop.
            for name, block in _blocks_with_bank(denoising).items():
                (bank,) = block.bank
                self.store(f"bank.{name}", bank)
            for name, block in _blocks_with_bank(reference).items():
                (bank,) = block.bank
                self.store(f"writer_bank.{name}", bank)

        def denoising_out(
            _m: nn.Module, _a: tuple[Any, ...], _k: dict[str, Any], output: Any
        ) -> None:
            self.store("unet_pred", output[0])

        self.handles = [
            pose_guider.register_forward_hook(pose_hook),
            reference.register_forward_pre_hook(reference_hook, with_kwargs=True),
            denoising.register_forward_pre_hook(denoising_hook, with_kwargs=True),
            denoising.register_forward_hook(denoising_out, with_kwargs=True),
        ]

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


def run_pipeline_step(
    pipeline_cls: Any,
    modules: dict[str, nn.Module],
    scheduler: Any,
    inputs: dict[str, Any],
    settings: dict[str, Any],
    recorder: Recorder,
) -> torch.Tensor:
    """Upstream's ``Pose2VideoPipeline.__call__`` for one step; returns its output latents.

    ``inputs``: PIL images ``ref_image``, ``pose_images`` (a list), ``ref_pose_image``;
    ``settings``: ``width``, ``height``, ``video_length``, ``num_inference_steps``,
    ``guidance_scale``, ``seed``.  ``decode_latents`` is replaced on the instance so that the
    call returns the latents after the step instead of decoding them.
    """
    pipe = pipeline_cls(
        vae=StubVAE(inputs["ref_latent_mean"]),
        image_encoder=StubImageEncoder(inputs["clip_image_embeds"]),
        reference_unet=modules["reference_unet"],
        denoising_unet=modules["denoising_unet"],
        pose_guider=modules["pose_guider"],
        scheduler=scheduler,
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.decode_latents = lambda latents: latents.cpu().float().numpy()
    original_prepare = pipe.prepare_latents

    def prepare_latents(*args: Any, **kwargs: Any) -> torch.Tensor:
        latents: torch.Tensor = original_prepare(*args, **kwargs)
        recorder.store("init_latents", latents)
        return latents

    pipe.prepare_latents = prepare_latents
    recorder.attach(modules["pose_guider"], modules["reference_unet"], modules["denoising_unet"])
    try:
        out = pipe(
            inputs["ref_image"],
            inputs["pose_images"],
            inputs["ref_pose_image"],
            settings["width"],
            settings["height"],
            settings["video_length"],
            settings["num_inference_steps"],
            settings["guidance_scale"],
            generator=torch.manual_seed(settings["seed"]),
        )
    finally:
        recorder.detach()
    videos: torch.Tensor = out.videos
    return videos
