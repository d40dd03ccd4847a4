"""A conformance kit for backend authors: subclass :class:`BackendConformance` in your tests.

::

    # tests/test_conformance.py of your plugin package
    from faceshot_backends.testing import BackendConformance
    from my_plugin import MyBackend

    class TestMyBackend(BackendConformance):
        backend_class = MyBackend
        options = {"steps": 2}           # fast settings for the test
        reference_tolerance = None       # or a mean grey-level bound for frame 0

pytest then runs every ``test_*`` method below against your backend.  The backend is loaded
**once per test class** (as the runner, a batch worker or a UI would keep it) and closed at the
end.  The checks: the declared contract (the same check registration applies), option
validation, the readiness report, and, when the backend is ready here (otherwise those tests
skip with its reason; GPU-only backends are marked ``gpu`` and skip cleanly without CUDA):
one frame per pose at the working size, streaming for per-frame backends, every frame of a
sequence longer than two windows for windowed ones, the frame limit of clip backends, progress
events, determinism, that inputs are left alone, and that frame 0 is the reference pose.

The data are real: scikit-image's chelsea.png with the 68 landmarks shipped in faceshot,
moved by a known head motion with a blink and an opening mouth.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

from faceshot_backends.contract import CONTRACT_VERSION, Animator, Readiness, contract_problems
from faceshot_backends.framing import working_request, working_size_of
from faceshot_backends.loading import load_backend, resolve_runtime
from faceshot_backends.options import BackendOptionError
from faceshot_backends.request import AnimationRequest, Runtime
from faceshot_core.progress import ProgressEvent
from faceshot_core.sample_data import chelsea, chelsea_landmarks
from faceshot_core.synthetic import HeadMotion, expression_sequence
from faceshot_core.torch_support import cuda_available


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


def sample_request(
    backend_class: Any,
    frames: int,
    *,
    image_size: tuple[int, int] = (160, 120),
    runtime: Runtime | None = None,
    options: Any = None,
) -> AnimationRequest:
    """A request for ``backend_class`` at its working size (with ``options``), as the runner
    would build it."""
    image, points = sample_character(image_size)
    sequence = sample_sequence(points, frames)
    flags = np.zeros(frames, dtype=bool)
    flags[frames // 2 :: 5] = True  # a few poses the detector interpolated
    request, _ = working_request(
        image, points, sequence, fps=25.0, runtime=runtime or Runtime(seed=1234),
        working_size=working_size_of(backend_class, options), interpolated=flags,
    )  # fmt: skip
    return request


class BackendConformance:
    """Base class of a backend's conformance tests (not collected itself: no ``Test`` prefix)."""

    #: The backend class under test (set it in your subclass).
    backend_class: ClassVar[type[Any]]
    #: Options for the test runs (fast settings); validated by the backend.
    options: ClassVar[dict[str, Any]] = {}
    #: Device and dtype to load with (``auto``: CUDA when present and supported).
    device: ClassVar[str] = "auto"
    dtype: ClassVar[str] = "auto"
    #: Frames in the test sequence, and the reference size (width, height).
    num_frames: ClassVar[int] = 6
    image_size: ClassVar[tuple[int, int]] = (160, 120)
    #: If set, frame 0 must be within this mean absolute grey-level difference of the reference.
    reference_tolerance: ClassVar[float | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        backend = cls.__dict__.get("backend_class")
        caps = getattr(backend, "capabilities", None)
        if caps is not None and getattr(caps, "gpu_only", False):
            cls.pytestmark = [*getattr(cls, "pytestmark", []), pytest.mark.gpu]  # type: ignore[attr-defined]

    # -- fixtures ---------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def animator(cls) -> Iterator[Animator]:
        """The backend, loaded once for the whole test class, closed (twice: safely) after."""
        backend = cls.backend_class
        assert not contract_problems(backend), contract_problems(backend)
        if backend.capabilities.gpu_only and not cuda_available():
            pytest.skip(f"backend {backend.name!r} needs a CUDA GPU; none here")
        options = backend.parse_options(cls.options)
        runtime = resolve_runtime(backend, device=cls.device, dtype=cls.dtype)
        readiness = backend.readiness(options, runtime.device)
        if not readiness.ready:
            pytest.skip(f"backend {backend.name!r} is not ready here: {readiness.summary()}")
        with load_backend(backend, options, device=cls.device, dtype=cls.dtype) as loaded:
            yield loaded
        loaded.close()  # closing again must be harmless

    def request(self, frames: int | None = None, seed: int = 1234) -> AnimationRequest:
        cls = self.backend_class
        count = max(frames or self.num_frames, cls.capabilities.min_frames)
        runtime = resolve_runtime(cls, device=self.device, dtype=self.dtype, seed=seed)
        options = cls.parse_options(self.options)
        return sample_request(cls, count, image_size=self.image_size, runtime=runtime,
                              options=options)  # fmt: skip

    def run(self, animator: Animator, request: AnimationRequest, **kw: Any) -> list[np.ndarray]:
        stream = animator.animate(request, **kw)
        assert isinstance(stream, Iterator), "animate() must return an iterator (stream frames)"
        frames = list(stream)
        assert len(frames) == request.num_frames, "one frame per pose"
        w, h = request.size
        for frame in frames:
            assert isinstance(frame, np.ndarray)
            assert frame.dtype == np.uint8 and frame.shape == (h, w, 3), (
                f"frames must be RGB uint8 at the request's size {w}x{h}, got "
                f"{frame.dtype} {frame.shape}"
            )
        return frames

    # -- the declared contract --------------------------------------------------------------

    def test_satisfies_the_contract(self) -> None:
        assert contract_problems(self.backend_class) == []
        assert CONTRACT_VERSION[0] == 2

    def test_unknown_option_is_refused(self) -> None:
        with pytest.raises(BackendOptionError, match="no_such_option_for_conformance"):
            self.backend_class.parse_options({"no_such_option_for_conformance": 1})

    def test_readiness_is_reported(self) -> None:
        cls = self.backend_class
        readiness = cls.readiness(cls.parse_options(self.options))
        assert isinstance(readiness, Readiness)
        if not readiness.ready:
            assert readiness.summary() != "ready" and (readiness.problems or readiness.missing)
        for missing in readiness.missing:
            assert missing.path and missing.searched, "say what is missing and where you looked"
        for spec in cls.weight_specs(cls.parse_options(self.options)):
            assert spec.files, f"weight spec {spec.name!r} lists no files"

    # -- running ----------------------------------------------------------------------------

    def test_one_frame_per_pose_with_progress(self, animator: Animator) -> None:
        request = self.request()
        events: list[ProgressEvent] = []
        self.run(animator, request, progress=events.append)
        by_stage: dict[str, list[ProgressEvent]] = {}
        for event in events:
            assert isinstance(event, ProgressEvent)
            by_stage.setdefault(event.stage, []).append(event)
        for stage, seen in by_stage.items():
            done = [e.done for e in seen]
            assert done == sorted(done), f"progress of {stage!r} must not go backwards"
            assert all(e.total is None or e.done <= e.total for e in seen)

    def test_streams_or_covers_long_sequences(self, animator: Animator) -> None:
        """Per-frame: the first frame comes before the rest is rendered.  Windowed: a sequence
        longer than two windows is covered frame by frame.  Clip: its frame limit works."""
        caps = self.backend_class.capabilities
        if caps.temporal == "per_frame":
            request = self.request(12)
            events: list[ProgressEvent] = []
            stream = animator.animate(request, progress=events.append)
            next(stream)  # a generator: close() stops it early
            finished = max((e.done for e in events if e.stage == "animating"), default=0)
            assert finished < request.num_frames, "per-frame backends stream their frames"
            getattr(stream, "close", lambda: None)()
        elif caps.temporal == "windowed":
            assert caps.window is not None and caps.stride is not None
            self.run(animator, self.request(caps.window + 2 * caps.stride + 1))
        else:
            frames = min(caps.max_frames or 2 * self.num_frames, 2 * self.num_frames)
            self.run(animator, self.request(max(frames, caps.min_frames)))

    def test_same_seed_same_frames(self, animator: Animator) -> None:
        if not self.backend_class.capabilities.deterministic:
            pytest.skip("declared non-deterministic")
        first = self.run(animator, self.request())
        second = self.run(animator, self.request())
        for a, b in zip(first, second, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_inputs_are_left_alone(self, animator: Animator) -> None:
        request = self.request()
        image = request.reference_image.copy()
        sequence = request.sequence.copy()
        self.run(animator, request)
        np.testing.assert_array_equal(request.reference_image, image)
        np.testing.assert_array_equal(request.sequence, sequence)

    def test_first_frame_is_the_reference(self, animator: Animator) -> None:
        if self.reference_tolerance is None:
            pytest.skip("no reference_tolerance declared")
        request = self.request()
        frame = next(iter(self.run(animator, request)))
        diff = np.abs(frame.astype(np.int16) - request.reference_image).mean()
        assert diff <= self.reference_tolerance
