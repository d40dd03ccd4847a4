"""One weights layer for every component: what it needs, where it is, and how to get it.

A component (the matcher's Stable Diffusion and IP-Adapter, a backend's checkpoint) describes
its files as a :class:`WeightSpec`.  :func:`find_weights` looks for them (a folder, an
environment variable, the Hugging Face cache) without touching the network and says exactly
what is missing and where it looked; :func:`pull_weights` downloads exactly those files, and
only when asked (``faceshot weights pull NAME``).  Keeping the search in one place means every
component reports missing weights the same way, and none of them downloads behind the user's
back.
"""

from faceshot_core.weights.download import WeightsDownloadError, pull_weights
from faceshot_core.weights.locate import cached_snapshots, find_weights, hf_hub_cache
from faceshot_core.weights.spec import MissingFile, WeightFile, WeightLocation, WeightSpec

__all__ = [
    "MissingFile",
    "WeightFile",
    "WeightLocation",
    "WeightSpec",
    "WeightsDownloadError",
    "cached_snapshots",
    "find_weights",
    "hf_hub_cache",
    "pull_weights",
]
