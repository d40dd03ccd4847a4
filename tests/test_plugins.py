"""The plugin system: loading through entry points, isolation of broken plugins, conflicts.

Plugins are installed for real, as distributions on ``sys.path`` (a ``.dist-info`` folder with
``entry_points.txt`` next to the plugin module), so ``importlib.metadata`` finds them exactly as
it finds a pip-installed package.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from faceshot.cli.main import main
from faceshot_core import hookspecs, plugins
from faceshot_core.plugins import BackendConflictError, UnknownBackendError, backend_registry

REPO = Path(__file__).resolve().parents[1]

GOOD = """
from faceshot_backends.builtin.landmarks_backend import LandmarksBackend
from faceshot_core.hookspecs import hookimpl

class Sketch(LandmarksBackend):
    name = "sketch"

@hookimpl
def register_backends(register):
    register(Sketch)
"""
CLASH = """
from faceshot_backends.builtin.landmarks_backend import LandmarksBackend
from faceshot_core.hookspecs import hookimpl

class Other(LandmarksBackend):
    name = "sketch"

@hookimpl
def register_backends(register):
    register(Other)
"""
BROKEN_IMPORT = "import module_that_does_not_exist_anywhere\n"
UNKNOWN_HOOK = """
from faceshot_core.hookspecs import hookimpl

@hookimpl
def register_animals(register):
    pass
"""
FAILING_HOOK = """
from faceshot_core.hookspecs import hookimpl

@hookimpl
def register_backends(register):
    raise RuntimeError("weights server unreachable")
"""
NOT_A_BACKEND = """
from faceshot_core.hookspecs import hookimpl

@hookimpl
def register_backends(register):
    register(object)
"""


def install(site: Path, dist: str, entry: str, source: str) -> None:
    """Install a one-module plugin distribution into ``site`` (a folder on sys.path)."""
    module = f"fsplug_{entry}"
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"  # the wheel naming rule
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[faceshot]\n{entry} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(plugins.LOAD_PLUGINS_ENV, raising=False)
    plugins.reset()
    yield tmp_path
    plugins.reset()
    for name in [m for m in sys.modules if m.startswith("fsplug_")]:
        del sys.modules[name]


def test_builtins_register_through_the_hook() -> None:
    plugins.reset()
    registry = backend_registry()
    assert {"warp", "landmarks"} <= set(registry.names())
    assert registry.get("warp").plugin.name == "builtin"


def test_entry_point_plugin_is_loaded(site: Path) -> None:
    install(site, "faceshot-sketch", "sketch", GOOD)
    entry = backend_registry().get("sketch")
    assert entry.plugin.name == "sketch"
    assert (entry.plugin.dist_name, entry.plugin.version) == ("faceshot-sketch", "1.2.3")


@pytest.mark.filterwarnings("ignore::faceshot_core.plugins.PluginWarning")
@pytest.mark.parametrize(
    ("source", "error"),
    [
        (BROKEN_IMPORT, "import failed: ModuleNotFoundError"),
        (UNKNOWN_HOOK, "unknown hook(s) register_animals"),
        (FAILING_HOOK, "register_backends failed: RuntimeError: weights server unreachable"),
        (NOT_A_BACKEND, "register_backends failed: TypeError"),
    ],
)
def test_broken_plugin_never_breaks_faceshot(
    site: Path, source: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    install(site, "faceshot-broken", "broken", source)
    registry = backend_registry()
    assert "warp" in registry.names()  # faceshot still works
    (failed,) = registry.failed_plugins
    assert failed.name == "broken" and error in (failed.error or "")
    with pytest.raises(UnknownBackendError, match=r"failed to load: broken: .*" + re.escape(error)):
        registry.get("broken")
    assert main(["backends"]) == 0
    assert "plugin broken failed" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::faceshot_core.plugins.PluginWarning")
def test_broken_plugin_warns(site: Path) -> None:
    install(site, "faceshot-broken", "broken", BROKEN_IMPORT)
    with pytest.warns(plugins.PluginWarning, match="broken left out"):
        backend_registry()


def test_duplicate_names_are_an_error_naming_both(site: Path) -> None:
    install(site, "faceshot-sketch", "sketch", GOOD)
    install(site, "faceshot-other", "other", CLASH)
    registry = backend_registry()
    pattern = r"registered twice, by (other|sketch) .* and"
    with pytest.raises(BackendConflictError, match=pattern) as e:
        registry.get("sketch")
    assert "other (" in str(e.value) and "sketch (" in str(e.value)
    assert "warp" in registry.names()


def test_load_plugins_env_limits_loading(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(site, "faceshot-sketch", "sketch", GOOD)
    install(site, "faceshot-broken", "broken", BROKEN_IMPORT)
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "")
    assert "sketch" not in backend_registry().names()
    assert not backend_registry().failed_plugins
    plugins.reset()
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "sketch")
    registry = backend_registry()
    assert "sketch" in registry.names() and not registry.failed_plugins
    assert {"warp", "landmarks"} <= set(registry.names())  # built-ins always load


def test_unknown_backend_lists_the_available_ones() -> None:
    plugins.reset()
    with pytest.raises(UnknownBackendError, match=r"unknown backend 'nope'; available: .*warp"):
        backend_registry().get("nope")


# --- every hook is documented with its signature, and tested -----------------------------------


def _hooks() -> list[str]:
    return [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(f, "faceshot_spec")]  # fmt: skip


def test_there_are_hooks() -> None:
    assert _hooks() == ["register_backends"]


@pytest.mark.parametrize("hook", _hooks())
def test_every_hook_is_documented_with_its_signature(hook: str) -> None:
    guide = (REPO / "docs" / "plugins.md").read_text()
    func = getattr(hookspecs, hook)
    params = ", ".join(inspect.signature(func).parameters)
    assert f"{hook}({params})" in guide, f"docs/plugins.md must show {hook}({params})"
    assert func.__doc__ and "versionadded" in func.__doc__


@pytest.mark.parametrize("hook", _hooks())
def test_every_hook_has_a_test(hook: str) -> None:
    tests = "\n".join(p.read_text() for p in (REPO / "tests").glob("test_*.py")
                      if p.name != "test_plugins.py")  # fmt: skip
    own = Path(__file__).read_text().split("# --- every hook")[0]
    assert f"def {hook}(" in own or f"def {hook}(" in tests
