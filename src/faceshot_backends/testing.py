"""A conformance kit for backend authors: subclass :class:`BackendConformance` in your tests.

::

    # tests/test_conformance.py of your plugin package
    from faceshot_backends.testing import BackendConformance
    from my_plugin import MyBackend

    class TestMyBackend(BackendConformance):
        backend_class = MyBackend
        options = {"steps": 2}           # fast settings for the test
        reference_tolerance = None       # or a mean grey-level bound for frame 0

pytest then runs every ``test_*`` method below against your backend: the declared contract,
option validation, the readiness report, and (when ``check()`` says ready; otherwise those
tests skip with its reason) streaming, sizes, determinism and that inputs are left alone.  The
data are real: scikit-image's chelsea.png with the 68 landmarks shipped in faceshot, moved by
a known head motion with a blink and an opening mouth.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

from faceshot_backends.contract import (
    AnimationRequest,
    Backend,
    BackendOptionError,
    BackendOptions,
    Readiness,
    Requirements,
)
from faceshot_core.sample_data import chelsea, chelsea_landmarks
from faceshot_core.synthetic import HeadMotion, expression_sequence


def sample_character(size: tuple[int, int] = (160, 120)) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's cat at ``size`` = (width, height), and its 68 landmarks scaled to it."""
    image = chelsea()
    face = chelsea_landmarks()
    h, w = image.shape[:2]
    scale = np.array([size[0] / w, size[1] / h], dtype=np.float32)
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return resized, (face.points * scale).astype(np.float32)


def sample_sequence(points: np.ndarray, frames: int) -> np.ndarray:
    """``frames`` poses of ``points``: a head motion, a blink and a mouth opening; frame 0 rest."""
    motion = HeadMotion(shift_x=4.0, shift_y=2.0, roll_degrees=4.0, scale=0.02, period=frames)
    return expression_sequence(points, frames, motion=motion)


class BackendConformance:
    """Base class of a backend's conformance tests (not collected itself: no ``Test`` prefix)."""

    #: The backend class under test (set it in your subclass).
    backend_class: ClassVar[type[Any]]
    #: Options for the test runs (fast settings); validated by the backend.
    options: ClassVar[dict[str, Any]] = {}
    #: Frames in the test sequence, and the reference size (width, height).
    num_frames: ClassVar[int] = 6
    image_size: ClassVar[tuple[int, int]] = (160, 120)
    #: Whether the same seed must give the same frames.
    deterministic: ClassVar[bool] = True
    #: If set, frame 0 must be within this mean absolute grey-level difference of the reference.
    reference_tolerance: ClassVar[float | None] = None

    # -- fixtures ---------------------------------------------------------------------------

    @pytest.fixture
    def backend(self) -> Any:
        return self.backend_class()

    @pytest.fixture
    def parsed_options(self, backend: Any) -> BackendOptions:
        return backend.parse_options(self.options)

    @pytest.fixture
    def ready_backend(self, backend: Any, parsed_options: BackendOptions) -> Any:
        readiness = backend.check(parsed_options)
        if not readiness.ready:
            pytest.skip(f"backend {backend.name!r} is not ready here: {readiness.summary()}")
        return backend

    @pytest.fixture
    def animation_request(self, parsed_options: BackendOptions) -> AnimationRequest:
        frames = max(self.num_frames, self.backend_class.requirements.min_frames)
        image, points = sample_character(self.image_size)
        return AnimationRequest(
            reference_image=image, reference_landmarks=points,
            sequence=sample_sequence(points, frames), fps=25.0, seed=1234,
            options=parsed_options,
        )  # fmt: skip

    # -- the declared contract --------------------------------------------------------------

    def test_declares_the_contract(self, backend: Any) -> None:
        cls = self.backend_class
        assert isinstance(cls.name, str) and cls.name.replace("-", "_").isidentifier()
        assert issubclass(cls.Options, BackendOptions)
        assert isinstance(cls.requirements, Requirements)
        assert isinstance(backend, Backend)

    def test_unknown_option_is_refused(self, backend: Any) -> None:
        with pytest.raises(BackendOptionError, match="no_such_option_for_conformance"):
            backend.parse_options({"no_such_option_for_conformance": 1})

    def test_check_reports_readiness(self, backend: Any, parsed_options: BackendOptions) -> None:
        readiness = backend.check(parsed_options)
        assert isinstance(readiness, Readiness)
        if not readiness.ready:
            assert readiness.summary() != "ready" and (readiness.problems or readiness.missing)
        for missing in readiness.missing:
            assert missing.path and missing.searched, "say what is missing and where you looked"

    # -- running ----------------------------------------------------------------------------

    def _frames(self, backend: Any, request: AnimationRequest, **kw: Any) -> list[np.ndarray]:
        stream = backend.animate(request, **kw)
        assert isinstance(stream, Iterator), "animate() must return an iterator (stream frames)"
        return list(stream)

    def test_streams_one_frame_per_pose(
        self, ready_backend: Any, animation_request: AnimationRequest
    ) -> None:
        calls: list[tuple[int, int | None]] = []
        frames = self._frames(ready_backend, animation_request,
                              progress=lambda d, t: calls.append((d, t)))  # fmt: skip
        assert len(frames) == animation_request.num_frames
        w, h = animation_request.size
        for frame in frames:
            assert frame.dtype == np.uint8 and frame.shape == (h, w, 3)
        done = [d for d, _ in calls]
        assert done == sorted(done), "progress must not go backwards"
        assert all(t in (None, animation_request.num_frames) for _, t in calls)

    def test_honours_output_size(
        self, ready_backend: Any, animation_request: AnimationRequest
    ) -> None:
        if self.backend_class.requirements.frame_size is not None:
            pytest.skip("the backend works at a fixed frame size")
        request = animation_request.model_copy(update={"output_size": (96, 80)})
        frames = self._frames(ready_backend, request)
        assert {f.shape for f in frames} == {(80, 96, 3)}

    def test_same_seed_same_frames(
        self, ready_backend: Any, animation_request: AnimationRequest
    ) -> None:
        if not self.deterministic:
            pytest.skip("declared non-deterministic")
        first = self._frames(ready_backend, animation_request)
        second = self._frames(self.backend_class(), animation_request)
        for a, b in zip(first, second, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_inputs_are_left_alone(
        self, ready_backend: Any, animation_request: AnimationRequest
    ) -> None:
        image = animation_request.reference_image.copy()
        sequence = animation_request.sequence.copy()
        self._frames(ready_backend, animation_request)
        np.testing.assert_array_equal(animation_request.reference_image, image)
        np.testing.assert_array_equal(animation_request.sequence, sequence)

    def test_first_frame_is_the_reference(
        self, ready_backend: Any, animation_request: AnimationRequest
    ) -> None:
        if self.reference_tolerance is None:
            pytest.skip("no reference_tolerance declared")
        frame = next(ready_backend.animate(animation_request))
        diff = np.abs(frame.astype(np.int16) - animation_request.reference_image).mean()
        assert diff <= self.reference_tolerance
