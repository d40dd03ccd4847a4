"""The working-size mapping: landmarks stay on the pixels they mark, both ways, for any size."""

from __future__ import annotations

import numpy as np
import pytest

from faceshot_backends.capabilities import WorkingSize
from faceshot_backends.framing import FrameMapping, working_request
from faceshot_backends.request import Runtime

RULES = [
    WorkingSize(short_side=512, multiple=64),  # MOFA-Video's rule
    WorkingSize(width=256, height=256),  # a fixed square, padded
    WorkingSize(width=256, height=256, fit="crop"),
    WorkingSize(width=200, height=120, fit="stretch"),
    WorkingSize(multiple=8),  # the reference's own size, rounded up
]


def _dots(size: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """A grey image with a bright 5x5 Gaussian blob centred on each point (sub-pixel)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.zeros((h, w), np.float32)
    for x, y in points:
        image += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2))
    return np.repeat((40 + 200 * np.clip(image, 0, 1)).astype(np.uint8)[:, :, None], 3, axis=2)


def _centroid(image: np.ndarray, near: np.ndarray, radius: int = 6) -> np.ndarray:
    grey = image[:, :, 0].astype(np.float64) - 40
    x0, y0 = (round(float(v)) for v in near)
    win = grey[max(0, y0 - radius) : y0 + radius + 1, max(0, x0 - radius) : x0 + radius + 1]
    win = np.clip(win, 0, None)
    ys, xs = np.mgrid[max(0, y0 - radius) : y0 + radius + 1, max(0, x0 - radius) : x0 + radius + 1]
    ys, xs = ys[: win.shape[0], : win.shape[1]], xs[: win.shape[0], : win.shape[1]]
    return np.array([(xs * win).sum() / win.sum(), (ys * win).sum() / win.sum()])


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.describe())
@pytest.mark.parametrize("size", [(451, 300), (300, 451), (781, 523)])
def test_landmarks_stay_on_their_pixels_both_ways(rule: WorkingSize, size: tuple[int, int]) -> None:
    w, h = size
    points = np.array([[w * 0.45, h * 0.4], [w * 0.55, h * 0.42], [w * 0.5, h * 0.6]], np.float32)
    image = _dots(size, points)
    mapping = FrameMapping.fit(size, rule, focus=tuple(points.mean(axis=0)))
    working = mapping.image_to_working(image)
    assert working.shape[1::-1] == mapping.working_size
    if rule.multiple > 1:
        assert all(v % rule.multiple == 0 for v in mapping.working_size)
    for p, q in zip(points, mapping.points_to_working(points), strict=True):
        assert (
            np.linalg.norm(_centroid(working, q, radius=int(6 * mapping.scale[0]) + 2) - q) < 0.6
        ), p
    back = mapping.frame_to_output(working)
    assert back.shape[1::-1] == mapping.output_size
    lost = max(1.0, 1.0 / min(mapping.scale))  # a shrunk canvas holds less detail to map back
    for q in mapping.points_to_output(points):
        assert np.linalg.norm(_centroid(back, q) - q) < 0.4 * lost
    if rule.fit != "crop":  # nothing is lost: the round trip gives the picture back
        assert mapping.output_size == size
        assert np.abs(back.astype(float) - image).mean() < 2.0


def test_crop_keeps_the_face_and_reports_the_region() -> None:
    mapping = FrameMapping.fit((800, 300), WorkingSize(width=256, height=256, fit="crop"),
                               focus=(700.0, 150.0))  # fmt: skip
    x0, y0, rw, rh = mapping.region
    assert (y0, rh) == (0.0, 300.0) and rw == pytest.approx(300.0)
    assert x0 <= 700 - 100 and x0 + rw >= 700 + 50  # the face is inside, clamped to the image
    assert mapping.output_size == (300, 300)


def test_no_rule_is_the_identity() -> None:
    image = np.random.default_rng(0).integers(0, 255, (31, 47, 3), dtype=np.uint8)
    mapping = FrameMapping.fit((47, 31), None)
    assert mapping.is_identity and mapping.image_to_working(image) is image
    assert mapping.frame_to_output(image) is image


def test_working_request_maps_everything_and_keeps_flags() -> None:
    from faceshot_backends.testing import sample_character, sample_sequence

    image, points = sample_character((451, 300))
    seq = sample_sequence(points, 4)
    flags = np.array([False, True, False, False])
    request, mapping = working_request(
        image, points, seq, fps=24.0, runtime=Runtime(seed=5),
        working_size=WorkingSize(short_side=512, multiple=64), interpolated=flags,
    )  # fmt: skip
    assert request.size == mapping.working_size == (832, 512)
    np.testing.assert_allclose(request.sequence, mapping.points_to_working(seq), rtol=1e-6)
    np.testing.assert_array_equal(request.interpolated, flags)
    assert request.runtime.seed == 5 and request.fps == 24.0


def test_working_size_follows_a_backends_options() -> None:
    from typing import ClassVar

    from faceshot_backends import BackendOptions, BaseBackend, Capabilities
    from faceshot_backends.framing import working_size_of

    class SizedOptions(BackendOptions):
        short_side: int = 512

    class Sized(BaseBackend):
        name: ClassVar[str] = "sized"
        Options: ClassVar[type[BackendOptions]] = SizedOptions
        capabilities: ClassVar[Capabilities] = Capabilities(
            working_size=WorkingSize(short_side=512, multiple=64)
        )

        @classmethod
        def working_size(cls, options: BackendOptions) -> WorkingSize | None:
            return WorkingSize(short_side=getattr(options, "short_side", 512), multiple=64)

    class Plain(BaseBackend):
        name: ClassVar[str] = "plain"
        capabilities: ClassVar[Capabilities] = Capabilities(
            working_size=WorkingSize(width=64, height=32)
        )

    assert working_size_of(Sized) == WorkingSize(short_side=512, multiple=64)
    assert working_size_of(Sized, Sized.parse_options({"short_side": 128})) == WorkingSize(
        short_side=128, multiple=64
    )
    # The base class answers with the declared size, and an object without the hook too.
    assert working_size_of(Plain, Plain.default_options()) == WorkingSize(width=64, height=32)
    legacy = type("Legacy", (), {"capabilities": Capabilities()})
    assert working_size_of(legacy, object()) is None
