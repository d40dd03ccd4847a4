"""The built-in backends pass the same conformance kit third-party backends use."""

from __future__ import annotations

from faceshot_backends.builtin.landmarks_backend import LandmarksBackend
from faceshot_backends.builtin.warp_backend import WarpBackend
from faceshot_backends.testing import BackendConformance


class TestLandmarksOverlay(BackendConformance):
    backend_class = LandmarksBackend
    reference_tolerance = 12.0  # the reference with thin lines drawn on it


class TestLandmarksPose(BackendConformance):
    backend_class = LandmarksBackend
    options = {"style": "pose"}


class TestWarp(BackendConformance):
    backend_class = WarpBackend
    num_frames = 8
    reference_tolerance = 0.01  # frame 0 is the reference pose: an exact copy


class TestWarpWithoutMouthInterior(BackendConformance):
    backend_class = WarpBackend
    options = {"mouth_interior": False}
