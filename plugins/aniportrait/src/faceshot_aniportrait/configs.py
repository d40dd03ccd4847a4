"""The architectures of AniPortrait's own networks: the release's, a tiny one, and an override file.

The released ``.pth`` files are bare state dicts: unlike a diffusers folder, nothing beside them
says how large the networks are, and upstream builds them from Stable Diffusion 1.5's UNet
config plus constants in its scripts.  Here those are code defaults
(:meth:`ModelConfigs.released`).  Weights of any other size - the tiny random networks the tests
and the plumbing checks use - carry their architecture in an optional JSON file beside them,
:data:`CONFIG_FILE`, written by :func:`faceshot_aniportrait.testing.write_random_weights`; the
release has none, so it is built at the defaults.  (The VAE and the CLIP image encoder come
with diffusers/transformers config files of their own.)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from faceshot_aniportrait.pose_guider import PoseGuiderConfig
from faceshot_aniportrait.reference_unet import SD15_UNET_CONFIG, tiny_unet_config
from faceshot_aniportrait.unet3d import DenoisingUNetConfig, tiny_denoising_config
from faceshot_core.checkpoints import CheckpointError

#: The optional architecture file beside the AniPortrait weights (absent from the release).
CONFIG_FILE = "faceshot-aniportrait-config.json"


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back to the tuples the dataclasses and diffusers' configs hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


@dataclass(frozen=True)
class ModelConfigs:
    """How the reference UNet, the denoising UNet and the PoseGuider are built.

    ``reference_unet``: diffusers ``UNet2DConditionModel`` arguments (the head is dropped);
    ``denoising_unet`` and ``pose_guider``: this package's configs.  The three must agree: the
    reference UNet's 2D layers are the denoising UNet's (they are paired block by block for
    reference attention) and the PoseGuider's five features have the denoising UNet's widths.
    """

    reference_unet: dict[str, Any] = field(default_factory=lambda: dict(SD15_UNET_CONFIG))
    denoising_unet: DenoisingUNetConfig = field(default_factory=DenoisingUNetConfig)
    pose_guider: PoseGuiderConfig = field(default_factory=PoseGuiderConfig)

    @classmethod
    def released(cls) -> ModelConfigs:
        """The released networks: SD 1.5's UNet twice, the 320-channel PoseGuider."""
        return cls()

    @classmethod
    def tiny(cls) -> ModelConfigs:
        """The released structure (every block, key name and motion module) at widths
        32/64/128/128: a forward pass over a 16-frame window at 64 px takes milliseconds."""
        denoising = tiny_denoising_config()
        guider = PoseGuiderConfig(latent_channels=denoising.block_out_channels[0],
                                  num_attention_heads=2, attention_head_dim=4,
                                  norm_num_groups=4)  # fmt: skip
        return cls(reference_unet=tiny_unet_config(), denoising_unet=denoising, pose_guider=guider)

    def check(self) -> None:
        """Raise ``ValueError`` when the three networks cannot work together."""
        den = self.denoising_unet
        ref = {k: self.reference_unet.get(k) for k in ("block_out_channels", "cross_attention_dim")}
        if tuple(ref["block_out_channels"] or ()) != den.block_out_channels:
            raise ValueError(f"reference UNet widths {ref['block_out_channels']} differ from "
                             f"the denoising UNet's {den.block_out_channels}")  # fmt: skip
        if ref["cross_attention_dim"] != den.cross_attention_dim:
            raise ValueError("reference and denoising UNets differ in cross_attention_dim")
        widths = den.block_out_channels
        wanted = (widths[0], widths[0], widths[1], widths[2], widths[3])
        if self.pose_guider.feature_channels() != wanted:
            raise ValueError(f"PoseGuider features {self.pose_guider.feature_channels()} do not "
                             f"fit the denoising UNet's widths {wanted}")  # fmt: skip

    def to_json(self) -> str:
        return json.dumps({"reference_unet": self.reference_unet,
                           "denoising_unet": asdict(self.denoising_unet),
                           "pose_guider": asdict(self.pose_guider)}, indent=1)  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> ModelConfigs:
        """Parse :meth:`to_json`'s output; missing entries keep the released values."""
        data = json.loads(text)
        released = cls.released()
        reference = {**released.reference_unet, **_tuples(data.get("reference_unet", {}))}
        known = {f.name for f in fields(DenoisingUNetConfig)}
        denoising = _tuples({k: v for k, v in data.get("denoising_unet", {}).items() if k in known})
        guider = {k: v for k, v in data.get("pose_guider", {}).items()
                  if k in {f.name for f in fields(PoseGuiderConfig)}}  # fmt: skip
        configs = cls(reference_unet=reference, denoising_unet=DenoisingUNetConfig(**denoising),
                      pose_guider=PoseGuiderConfig(**guider))  # fmt: skip
        configs.check()
        return configs

    @classmethod
    def beside(cls, folder: Path | None) -> ModelConfigs:
        """The configs of the weights in ``folder``: :data:`CONFIG_FILE` there, else released."""
        path = folder / CONFIG_FILE if folder is not None else None
        if path is None or not path.is_file():
            return cls.released()
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: not a valid AniPortrait architecture file "
                                  f"({type(exc).__name__}: {exc})") from exc  # fmt: skip
