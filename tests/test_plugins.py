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
from faceshot_backends.registry import backend_registry
from faceshot_core import hookspecs, plugins
from faceshot_core.detection import available_detectors, get_detector
from faceshot_core.plugins import BackendConflictError, UnknownBackendError

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
HALF_A_BACKEND = """
from faceshot_core.hookspecs import hookimpl

class Half:
    name = "half"
    description = "contract 1 leftovers"
    def animate(self, request):
        return iter(())

@hookimpl
def register_backends(register):
    register(Half)
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
    warp = registry.get("warp").plugin
    assert warp.name == "builtin" and warp.dist_name == "faceshot" and warp.builtin
    assert {"dlib", "fan"} <= set(available_detectors())


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
        (NOT_A_BACKEND, "TypeError: object is not a faceshot backend: name must be"),
        (HALF_A_BACKEND, "Half is not a faceshot backend: Options must be"),
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


# --- the detector and command hooks ---------------------------------------------------------

DETECTOR_PLUGIN = """
from faceshot_core.detection.dlib_detector import DlibDetector
from faceshot_core.hookspecs import hookimpl

class Renamed(DlibDetector):
    name = "renamed"

@hookimpl
def register_detectors(register):
    register("renamed", lambda **options: Renamed(**options), description="dlib, renamed")
"""

COMMAND_PLUGIN = """
import click
from faceshot_core.hookspecs import hookimpl

@click.command("hello")
@click.argument("who")
def hello(who):
    click.echo(f"hello {who} from a plugin")

@click.command("run")
def clash():
    raise AssertionError("a plugin must not replace a built-in command")

@hookimpl
def register_commands(register):
    register(hello)
    register(clash)
"""


def test_register_detectors_adds_a_detector_choice(
    site: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    install(site, "faceshot-renamed", "renamed", DETECTOR_PLUGIN)
    assert "renamed" in available_detectors()
    assert get_detector("renamed").name == "renamed"
    assert main(["detect", "--help"]) == 0
    assert "renamed" in capsys.readouterr().out  # --detector choices come from the registry
    code = main(["detect", str(tmp_path / "x.mp4"), "-o", str(tmp_path / "x.npz"),
                 "--detector", "nope"])  # fmt: skip
    assert code == 2 and "unknown detector 'nope'" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::faceshot_core.plugins.PluginWarning")
def test_register_commands_adds_a_cli_command(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install(site, "faceshot-hello", "hello", COMMAND_PLUGIN)
    assert main(["hello", "you"]) == 0
    assert "hello you from a plugin" in capsys.readouterr().out
    with pytest.warns(plugins.PluginWarning, match="'run' is already a faceshot command"):
        main(["--help"])


# --- one load per run, progress events in the CLI ---------------------------------------------

COUNTING = """
from typing import ClassVar
import numpy as np
from faceshot_backends import Capabilities, PerFrameBackend, WorkingSize
from faceshot_core.hookspecs import hookimpl
from faceshot_core.progress import report

LOADS = []

class Counting(PerFrameBackend):
    name: ClassVar[str] = "counting"
    description: ClassVar[str] = "counts loads; works at 64 px multiples"
    capabilities: ClassVar[Capabilities] = Capabilities(
        working_size=WorkingSize(short_side=128, multiple=64))

    def setup(self, progress=None):
        LOADS.append(self.runtime)
        report(progress, "loading", 1, 2, "models")

    def render(self, state, points):
        return self.last_request.reference_image

    def prepare(self, request):
        self.last_request = request
        return None

@hookimpl
def register_backends(register):
    register(Counting)
"""


def test_one_load_per_run_and_progress_events_reach_the_cli(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceshot.cli import run_cmd
    from faceshot_core.progress import ProgressDisplay
    from faceshot_core.sample_data import chelsea_landmarks_path
    from faceshot_core.synthetic import write_motion_clip

    install(site, "faceshot-counting", "counting", COUNTING)
    from skimage import data

    from faceshot.pipeline import detect_reference
    from faceshot_core.images import save_image

    face = detect_reference(data.astronaut())
    video = tmp_path / "drive.mp4"
    write_motion_clip(video, data.astronaut(), face.points, num_frames=6, fps=10)
    cat = save_image(tmp_path / "cat.png", data.chelsea())
    displays: list[ProgressDisplay] = []

    def recording_display(**kw: object) -> ProgressDisplay:
        display = ProgressDisplay(quiet=True)
        displays.append(display)
        return display

    monkeypatch.setattr(run_cmd, "progress_display", recording_display)
    args = ["run", "-r", str(cat), "-l", str(chelsea_landmarks_path()), "-d", str(video),
            "-b", "counting", "-q"]  # fmt: skip
    assert main([*args, "-o", str(tmp_path / "a.mp4")]) == 0
    counting = sys.modules["fsplug_counting"]
    assert len(counting.LOADS) == 1 and counting.LOADS[0].device == "cpu"
    stages = {e.stage: e for e in displays[0].events}
    assert {"detecting", "loading", "animating", "writing"} <= set(stages)
    assert stages["writing"].done == stages["writing"].total == 6
    assert main([*args, "-o", str(tmp_path / "b.mp4")]) == 0
    assert len(counting.LOADS) == 2  # one load per run

    import faceshot
    from faceshot_core.video import probe_video

    with faceshot.load_animator("counting") as animator:
        for name in ("c.mp4", "d.mp4"):
            result = faceshot.run(cat, video, output=tmp_path / name, backend="counting",
                                  reference_landmarks=chelsea_landmarks_path(),
                                  animator=animator)  # fmt: skip
            info = probe_video(result.output)  # the working size (64 multiples) mapped back
            assert (info.width, info.height, info.frame_count) == (452, 300, 6)
    assert len(counting.LOADS) == 3  # one load for two runs


def test_the_core_never_names_the_backends_package() -> None:
    """One-way imports: faceshot_core knows plugins only through hooks and entry points."""
    core = REPO / "src" / "faceshot_core"
    named = ("faceshot_backends", "import faceshot\n", "from faceshot.")
    offenders = [str(p.relative_to(core)) for p in core.rglob("*.py")
                 if any(name in p.read_text() for name in named)]  # fmt: skip
    assert offenders == []


# --- every hook is documented with its signature, and tested -----------------------------------


def _hooks() -> list[str]:
    return [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(f, "faceshot_spec")]  # fmt: skip


def test_there_are_hooks() -> None:
    assert _hooks() == ["register_backends", "register_commands", "register_detectors"]


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
