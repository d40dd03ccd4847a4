"""MOFA-Video for faceshot: ``faceshot run --backend mofa``.

The landmark-driven MOFA-Video animator (the landmark adapter and the CMP flow network on Stable
Video Diffusion xt 1.1), written on diffusers and loading the released checkpoints unchanged.
This module is the plugin's entry point: it registers :class:`~faceshot_mofa.backend.MofaBackend`
and imports nothing heavy (torch and diffusers load only when the backend does).

Modules: :mod:`~faceshot_mofa.backend` (options, loading, the animator),
:mod:`~faceshot_mofa.weights` (the released files and loading them),
:mod:`~faceshot_mofa.pipeline` (one clip, from conditioning to decoded frames),
:mod:`~faceshot_mofa.sampling` and :mod:`~faceshot_mofa.windowing` (windowed Euler sampling),
:mod:`~faceshot_mofa.landmark_adapter` / :mod:`~faceshot_mofa.adapter` (the adapter) and
:mod:`~faceshot_mofa.adapter_files` (its weights folder),
:mod:`~faceshot_mofa.unet` (the UNet forward with the adapter's residuals),
:mod:`~faceshot_mofa.cmp` (sparse-to-dense flow), :mod:`~faceshot_mofa.conditioning` and
:mod:`~faceshot_mofa.splatting`, and :mod:`~faceshot_mofa.testing` (random weights in the
released layout, for tests).
"""

from __future__ import annotations

from faceshot_core.hookspecs import BackendRegistrar, hookimpl

__version__ = "0.1.0"


@hookimpl
def register_backends(register: BackendRegistrar) -> None:
    from faceshot_mofa.backend import MofaBackend

    register(MofaBackend)
