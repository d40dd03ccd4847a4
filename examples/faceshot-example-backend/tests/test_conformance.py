"""The faceshot conformance kit, run against the puppet backend."""

from faceshot_example_backend import PuppetBackend

from faceshot_backends.testing import BackendConformance


class TestPuppetBackend(BackendConformance):
    backend_class = PuppetBackend
    reference_tolerance = 0.5  # frame 0 is the reference pose: an identity transform


class TestPuppetBackendReflect(BackendConformance):
    backend_class = PuppetBackend
    options = {"border": "reflect"}
