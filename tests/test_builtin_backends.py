"""The built-in backends pass the same conformance kit third-party backends use."""

from __future__ import annotations

from faceshot_backends.builtin.landmarks_backend import LandmarksBackend
from faceshot_backends.testing import BackendConformance


class TestLandmarksOverlay(BackendConformance):
    backend_class = LandmarksBackend
    reference_tolerance = 12.0  # the reference with thin lines drawn on it


class TestLandmarksPose(BackendConformance):
    backend_class = LandmarksBackend
    options = {"style": "pose"}
