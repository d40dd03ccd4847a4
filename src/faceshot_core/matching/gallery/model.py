"""The in-memory gallery: per part and domain, stored target features and a mean embedding.

A :class:`Gallery` holds, for each of the five parts (:data:`~faceshot_core.schema.PARTS`) and
each *domain* (human, cat, anime, toy ...), a :class:`GalleryDomain`: the Eq. 4 average of the
part's landmark features over the domain's ``k`` annotated images, and the mean image embedding
of the part crops.  Construction validates everything a file or a builder could get wrong
(parts, shapes, finiteness, domain names), so loading, building and importing all end in the
same checks and a :class:`Gallery` in hand is always usable.

A gallery also records the :class:`FeatureSpec` it was built with and the embedder's name, and
refuses to serve another extractor or embedder (:class:`GalleryMismatchError`): features of
another model, timestep or block are not comparable, and the argmax would be meaningless rather
than merely worse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceshot_core.errors import FaceshotUserError
from faceshot_core.matching.base import FeatureSpec
from faceshot_core.matching.sampling import normalize_rows
from faceshot_core.schema import NUM_POINTS, PARTS

#: What a domain name may look like (it becomes a folder and a tensor-name component).
DOMAIN_NAME = re.compile(r"^[^/\\\x00-\x1f.][^/\\\x00-\x1f]*$")


class GalleryError(FaceshotUserError):
    """A gallery folder or ``target_domains`` tree that is missing, malformed or unreadable."""


class GalleryMismatchError(GalleryError):
    """A gallery built with another feature extractor or embedder than the one in use."""


@dataclass(frozen=True)
class GalleryDomain:
    """One domain of one part: Eq. 4's averaged point features and the mean crop embedding.

    ``num_images`` is ``k``, or None when unknown (galleries imported from the reference code).
    """

    point_features: np.ndarray
    embedding: np.ndarray
    num_images: int | None = None

    def __post_init__(self) -> None:
        for name in ("point_features", "embedding"):
            arr = np.ascontiguousarray(getattr(self, name), dtype=np.float32)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)


@dataclass(frozen=True)
class Gallery:
    """Per part, per domain: stored target features (see the module docstring).

    Construction validates everything a file could get wrong (parts, shapes, finiteness), so a
    :class:`Gallery` in hand is always usable.
    """

    spec: FeatureSpec
    embedder: str
    parts: Mapping[str, Mapping[str, GalleryDomain]]
    note: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _validate_parts(self.parts, self.spec.channels, source="gallery")

    @property
    def embedding_dim(self) -> int:
        first = next(iter(next(iter(self.parts.values())).values()))
        return int(first.embedding.shape[0])

    def domains(self, part: str) -> tuple[str, ...]:
        """The domain names of ``part``, in stored order."""
        return tuple(self.parts[part])

    def check_compatible(
        self, spec: FeatureSpec | None = None, embedder_name: str | None = None
    ) -> None:
        """Raise :class:`GalleryMismatchError` naming both sides if ``spec`` or embedder differ."""
        if spec is not None and not spec.compatible_with(self.spec):
            raise GalleryMismatchError(
                f"the gallery was built with features {_describe(self.spec)}, but the extractor "
                f"produces {_describe(spec)}; rebuild the gallery with this extractor or use "
                "the extractor it was built with"
            )
        if embedder_name is not None and embedder_name != self.embedder:
            raise GalleryMismatchError(
                f"the gallery's embeddings come from {self.embedder!r}, but the embedder in use "
                f"is {embedder_name!r}; their embeddings cannot be compared"
            )

    def part_vectors(self, part: str, domain: str | None = None) -> np.ndarray:
        """Normalised ``[n_points, C]`` target vectors of ``part`` from one domain, or from all.

        ``domain=None`` averages the domains' normalised vectors with equal weights (pass 1 of
        :func:`~faceshot_core.matching.gallery.match_with_gallery`), then re-normalises.
        """
        domains = self.parts[part]
        if domain is not None:
            if domain not in domains:
                raise GalleryError(
                    f"part {part!r} has no domain {domain!r} (it has {', '.join(domains)})"
                )
            return normalize_rows(domains[domain].point_features)
        stacked = np.stack([normalize_rows(d.point_features) for d in domains.values()])
        return normalize_rows(stacked.astype(np.float64).mean(axis=0))

    def target_vectors(self, choice: Mapping[str, str] | None = None) -> np.ndarray:
        """``[68, C]`` target vectors: each part from its chosen domain (or from all domains)."""
        out = np.zeros((NUM_POINTS, self.spec.channels), dtype=np.float32)
        for part, indices in PARTS.items():
            domain = None if choice is None else choice[part]
            out[list(indices)] = self.part_vectors(part, domain)
        return out


def _describe(spec: FeatureSpec) -> str:
    prompt = spec.image_prompt or "no image prompt"
    return (
        f"[model {spec.model}, timestep {spec.timestep}, block {spec.block}, "
        f"{spec.channels} channels, {prompt}]"
    )


def check_part_names(names: Sequence[str], source: str) -> None:
    """Raise :class:`GalleryError` unless ``names`` are exactly the five parts."""
    missing = [p for p in PARTS if p not in names]
    unknown = [p for p in names if p not in PARTS]
    if missing or unknown:
        problems = [f"missing part(s) {', '.join(missing)}"] if missing else []
        problems += [f"unknown part(s) {', '.join(unknown)}"] if unknown else []
        raise GalleryError(f"{source}: {'; '.join(problems)} (the parts are {', '.join(PARTS)})")


def _validate_parts(
    parts: Mapping[str, Mapping[str, GalleryDomain]], channels: int, source: str
) -> None:
    """Every part present with >= 1 domain, shapes [n_points, C] and [D] (one D), finite."""
    check_part_names(list(parts), source)
    dims = set()
    for part, domains in parts.items():
        if not domains:
            raise GalleryError(f"{source}: part {part!r} has no domains")
        n_points = len(PARTS[part])
        for name, dom in domains.items():
            where = f"{source}: {part}/{name}"
            if not DOMAIN_NAME.match(name):
                raise GalleryError(f"{where}: invalid domain name {name!r}")
            _check_array(dom.point_features, (n_points, channels), f"{where} point features")
            _check_array(dom.embedding, (None,), f"{where} embedding")
            dims.add(dom.embedding.shape[0])
            if dom.num_images is not None and dom.num_images < 1:
                raise GalleryError(f"{where}: num_images must be >= 1, got {dom.num_images}")
    if len(dims) != 1:
        raise GalleryError(f"{source}: embeddings of different sizes {sorted(dims)}")


def _check_array(arr: np.ndarray, shape: tuple[int | None, ...], what: str) -> None:
    ok = arr.ndim == len(shape) and all(
        s is None or s == a for s, a in zip(shape, arr.shape, strict=True)
    )
    if not ok or arr.size == 0:
        want = "[" + ", ".join("D" if s is None else str(s) for s in shape) + "]"
        raise GalleryError(f"{what}: expected shape {want}, got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise GalleryError(f"{what}: contains NaN or infinite values")
