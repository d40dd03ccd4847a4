"""faceshot_backends: the backend contract, the built-in animators, a conformance kit.

* :mod:`faceshot_backends.contract` - what a backend implements (``Backend``, ``BaseBackend``)
  and is given (``AnimationRequest``), with readiness reports.
* :mod:`faceshot_backends.builtin` - ``warp`` (CPU piecewise-affine animator, the default) and
  ``landmarks`` (the sequence drawn as video), registered through the plugin hook.
* :mod:`faceshot_backends.testing` - a pytest base class third-party backends subclass.
"""

from faceshot_backends.contract import (
    AnimationRequest,
    Backend,
    BackendOptions,
    BaseBackend,
    MissingFile,
    PerFrameBackend,
    Readiness,
    Requirements,
    WeightFile,
)

__all__ = [
    "AnimationRequest",
    "Backend",
    "BackendOptions",
    "BaseBackend",
    "MissingFile",
    "PerFrameBackend",
    "Readiness",
    "Requirements",
    "WeightFile",
]
