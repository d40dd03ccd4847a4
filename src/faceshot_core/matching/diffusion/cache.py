"""The feature cache: in memory (LRU) and optionally on disk, keyed by all that shapes a map.

A feature map depends on the image, the image prompt, the model, timestep, block, seed, image
size, schedule length, text prompt and dtype; :class:`CacheKey` holds all of them, so two equal
keys mean two equal maps.  The gallery's and the reference's features are then computed once,
and with a cache folder once across processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


def array_digest(image: np.ndarray) -> str:
    """Content hash of an image (shape and pixels): same pixels, same key, whatever the source."""
    arr = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{arr.shape}{arr.dtype.str}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """Everything a feature map depends on (two equal keys, two equal maps)."""

    image: str
    prompt_image: str | None
    model: str
    timestep: int
    block: str
    seed: int
    image_size: int
    num_inference_steps: int
    prompt: str
    dtype: str

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


class FeatureCache:
    """LRU in memory, and optionally one safetensors file per feature in ``directory``.

    The disk cache makes gallery and reference features survive across processes: a second
    ``faceshot`` run on the same character does no UNet call at all.  Files are written
    atomically; an unreadable file counts as a miss and is rewritten.
    """

    def __init__(self, max_entries: int = 32, directory: str | os.PathLike[str] | None = None):
        self.max_entries = int(max_entries)
        self.directory = Path(directory) if directory is not None else None
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self._memory)

    def _path(self, digest: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{digest}.safetensors"

    def get(self, key: CacheKey) -> np.ndarray | None:
        digest = key.digest()
        arr = self._memory.get(digest)
        if arr is None and self.directory is not None:
            arr = self._read(self._path(digest))
            if arr is not None:
                self._remember(digest, arr)
        if arr is None:
            self.misses += 1
            return None
        self._memory.move_to_end(digest)
        self.hits += 1
        return arr

    def put(self, key: CacheKey, feature: np.ndarray) -> None:
        digest = key.digest()
        arr = np.ascontiguousarray(feature, dtype=np.float32)
        arr.setflags(write=False)
        self._remember(digest, arr)
        if self.directory is not None:
            self._write(self._path(digest), arr, key)

    def _remember(self, digest: str, arr: np.ndarray) -> None:
        if self.max_entries <= 0:
            return
        self._memory[digest] = arr
        self._memory.move_to_end(digest)
        while len(self._memory) > self.max_entries:
            self._memory.popitem(last=False)

    @staticmethod
    def _read(path: Path) -> np.ndarray | None:
        if not path.is_file():
            return None
        try:
            from safetensors.numpy import load_file

            arr = load_file(str(path))["feature"]
        except Exception as exc:  # a truncated or foreign file: recompute rather than fail
            warnings.warn(f"ignoring unreadable feature cache file {path}: {exc}", stacklevel=3)
            return None
        arr.setflags(write=False)
        return arr

    @staticmethod
    def _write(path: Path, arr: np.ndarray, key: CacheKey) -> None:
        from safetensors.numpy import save_file

        from faceshot_core.atomic import atomic_output

        meta = {k: str(v) for k, v in asdict(key).items()}
        with atomic_output(path) as tmp:
            save_file({"feature": arr}, str(tmp), metadata=meta)
