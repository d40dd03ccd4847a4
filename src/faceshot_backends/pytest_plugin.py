"""pytest plugin shipped with the conformance kit: markers a backend author's suite needs.

The kit marks the test classes of GPU-only backends ``gpu``; registering the marker here lets
plugin authors run with ``--strict-markers`` and deselect with ``-m "not gpu"``.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skips cleanly without one)")
