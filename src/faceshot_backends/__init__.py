"""faceshot_backends: the backend contract, the built-in animators, a conformance kit.

* :mod:`~faceshot_backends.contract` - contract 2: the class-level description
  (``BaseBackend``), the load step and the :class:`Animator` it returns, readiness reports;
* :mod:`~faceshot_backends.capabilities` - how a backend consumes time, sizes, devices, dtypes;
* :mod:`~faceshot_backends.request` - what an animator is given (``AnimationRequest``,
  ``Runtime``); :mod:`~faceshot_backends.framing` - the mapping to a working size and back;
* :mod:`~faceshot_backends.per_frame` - ``PerFrameBackend`` for backends that stream;
  :mod:`~faceshot_backends.windows` - window schedules for clip generators;
* :mod:`~faceshot_backends.decoding`, :mod:`~faceshot_backends.gpu_faults` and
  :mod:`~faceshot_backends.torch_modules` - what the diffusion plugins share: chunked VAE
  decoding, out-of-memory errors in one line, offloading and compiling model blocks;
* :mod:`~faceshot_backends.loading` - ``load_backend``: every cheap check, then one load;
* :mod:`~faceshot_backends.registry` - the backends registered by plugins;
* :mod:`~faceshot_backends.builtin` - ``warp`` (CPU animator, the default) and ``landmarks``;
* :mod:`~faceshot_backends.testing` - the conformance kit third-party backends subclass.
"""

from faceshot_backends.capabilities import Capabilities, WorkingSize
from faceshot_backends.contract import (
    CONTRACT_VERSION,
    Animator,
    Backend,
    BackendNotReadyError,
    BaseAnimator,
    BaseBackend,
    Readiness,
    contract_problems,
)
from faceshot_backends.framing import FrameMapping
from faceshot_backends.loading import load_backend, resolve_runtime
from faceshot_backends.options import BackendOptionError, BackendOptions
from faceshot_backends.per_frame import PerFrameBackend
from faceshot_backends.request import AnimationRequest, Runtime
from faceshot_backends.windows import window_spans

__all__ = [
    "CONTRACT_VERSION",
    "AnimationRequest",
    "Animator",
    "Backend",
    "BackendNotReadyError",
    "BackendOptionError",
    "BackendOptions",
    "BaseAnimator",
    "BaseBackend",
    "Capabilities",
    "FrameMapping",
    "PerFrameBackend",
    "Readiness",
    "Runtime",
    "WorkingSize",
    "contract_problems",
    "load_backend",
    "resolve_runtime",
    "window_spans",
]
