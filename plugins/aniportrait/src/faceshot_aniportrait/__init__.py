"""AniPortrait for faceshot: ``faceshot run --backend aniportrait``.

The pose-to-video AniPortrait animator (a reference UNet, a 3D denoising UNet with motion
modules and a PoseGuider on Stable Diffusion 1.5), written on diffusers and loading the
released checkpoints unchanged.  This module is the plugin's entry point: it registers
:class:`~faceshot_aniportrait.backend.AniPortraitBackend` and imports nothing heavy (torch and
diffusers load only when the backend does).

Modules: :mod:`~faceshot_aniportrait.backend` (options, loading, the animator),
:mod:`~faceshot_aniportrait.weights` (the released files and loading them),
:mod:`~faceshot_aniportrait.configs` (the networks' architectures),
:mod:`~faceshot_aniportrait.pipeline` (one clip, from conditioning to decoded frames),
:mod:`~faceshot_aniportrait.sampling` and :mod:`~faceshot_aniportrait.windowing` (windowed
DDIM sampling), :mod:`~faceshot_aniportrait.pose_images` (68 landmarks as pose images),
:mod:`~faceshot_aniportrait.pose_guider`, :mod:`~faceshot_aniportrait.reference_unet`,
:mod:`~faceshot_aniportrait.unet3d` (with :mod:`~faceshot_aniportrait.blocks3d` and
:mod:`~faceshot_aniportrait.motion_module`), :mod:`~faceshot_aniportrait.reference_attention`,
:mod:`~faceshot_aniportrait.checkpoints` (reading the released files) and
:mod:`~faceshot_aniportrait.testing` (random weights in the released layout, for tests).
"""

from __future__ import annotations

from faceshot_core.hookspecs import BackendRegistrar, hookimpl

__version__ = "0.1.0"


@hookimpl
def register_backends(register: BackendRegistrar) -> None:
    from faceshot_aniportrait.backend import AniPortraitBackend

    register(AniPortraitBackend)
