"""The web app's workspace (uploads, session folders, the GPU queue) and ``faceshot ui``'s CLI.

Nothing here needs Gradio: :mod:`faceshot.ui.workspace` and :mod:`faceshot.ui.serve` are plain
Python, and the CLI must say what to install when Gradio is missing.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

import faceshot
import faceshot.ui.serve  # imported here so that the hidden-gradio test can restore it
from faceshot.cli.main import USER_ERROR_EXIT, cli, main
from faceshot.ui.workspace import (
    IMAGE_SUFFIXES,
    LANDMARK_SUFFIXES,
    MEGABYTE,
    VIDEO_SUFFIXES,
    GpuQueue,
    UploadError,
    UploadLimits,
    Workspace,
    check_upload,
    named_as_uploaded,
)
from faceshot_core.errors import LandmarkFileError, MediaError
from faceshot_core.images import load_image, save_image
from faceshot_core.sample_data import chelsea

WAIT_S = 5.0  # generous: a thread that should run at once; a hang fails instead of blocking


def _file(path: Path, size: int = 16) -> Path:
    """A file of ``size`` bytes (sparse: a big upload costs no time to make)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(b"x" * min(size, 16))
        fh.truncate(size)
    return path


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


# --- check_upload ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "suffixes"),
    [("image", IMAGE_SUFFIXES), ("video", VIDEO_SUFFIXES), ("landmarks", LANDMARK_SUFFIXES)],
)
def test_check_upload_accepts_every_suffix_of_each_kind(
    tmp_path: Path, kind: str, suffixes: tuple[str, ...]
) -> None:
    for suffix in (*suffixes, suffixes[0].upper()):
        path = _file(tmp_path / f"upload{suffix}")
        assert check_upload(str(path), kind, UploadLimits()) == path
        assert check_upload(path, kind, UploadLimits()) == path


def test_check_upload_accepts_a_real_image(tmp_path: Path) -> None:
    path = save_image(tmp_path / "cat.png", chelsea())
    assert check_upload(str(path), "image", UploadLimits()) == path


@pytest.mark.parametrize(
    ("kind", "name"),
    [("image", "cat.gif"), ("image", "clip.mp4"), ("video", "cat.png"), ("landmarks", "cat.csv"),
     ("image", "no_suffix")],
)  # fmt: skip
def test_check_upload_refuses_a_wrong_suffix(tmp_path: Path, kind: str, name: str) -> None:
    path = _file(tmp_path / "deep" / "folder" / name)
    with pytest.raises(UploadError) as info:
        check_upload(str(path), kind, UploadLimits())
    text = _one_line(info.value)
    assert text.startswith(name) and (f"not a {kind} file" in text or f"not an {kind} file" in text)
    assert str(tmp_path) not in text


@pytest.mark.parametrize("kind", ["image", "video", "landmarks"])
def test_check_upload_refuses_no_upload(kind: str) -> None:
    for nothing in (None, ""):
        with pytest.raises(UploadError, match=f"^no {kind} file was uploaded$"):
            check_upload(nothing, kind, UploadLimits())


def test_check_upload_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as info:
        check_upload(str(tmp_path / "gone" / "cat.png"), "image", UploadLimits())
    text = _one_line(info.value)
    assert "cat.png" in text and "upload it again" in text and str(tmp_path) not in text
    assert not isinstance(info.value, UploadError)


def test_check_upload_refuses_a_folder_named_like_an_image(tmp_path: Path) -> None:
    (tmp_path / "cat.png").mkdir()
    with pytest.raises(MediaError, match=r"cat\.png is gone"):
        check_upload(str(tmp_path / "cat.png"), "image", UploadLimits())


@pytest.mark.parametrize(
    ("kind", "name", "limits", "size_mb", "limit_text"),
    [
        ("image", "cat.png", UploadLimits(image_mb=1.0), 1.5, "1 MB"),
        ("video", "clip.mp4", UploadLimits(video_mb=2.5), 3.0, "2.5 MB"),
        ("landmarks", "cat.json", UploadLimits(landmarks_mb=0.5), 0.75, "0.5 MB"),
    ],
)
def test_check_upload_refuses_a_file_over_its_kinds_limit(
    tmp_path: Path, kind: str, name: str, limits: UploadLimits, size_mb: float, limit_text: str
) -> None:
    path = _file(tmp_path / name, int(size_mb * MEGABYTE))
    with pytest.raises(UploadError) as info:
        check_upload(str(path), kind, limits)
    text = _one_line(info.value)
    assert text.startswith(f"{name} is {size_mb:.1f} MB;")
    assert text.endswith(f"{kind} uploads are limited to {limit_text}")
    assert str(tmp_path) not in text


def test_each_kind_has_its_own_limit(tmp_path: Path) -> None:
    limits = UploadLimits(image_mb=1.0, video_mb=3.0, landmarks_mb=1.0)
    size = 2 * MEGABYTE
    assert check_upload(_file(tmp_path / "clip.mp4", size), "video", limits)
    for name, kind in (("cat.png", "image"), ("cat.json", "landmarks")):
        with pytest.raises(UploadError, match="limited to 1 MB"):
            check_upload(_file(tmp_path / name, size), kind, limits)
    # exactly at the limit is accepted
    assert check_upload(_file(tmp_path / "edge.png", MEGABYTE), "image", limits)
    assert limits.largest_mb == 3.0
    assert UploadLimits().largest_mb == 500.0


# --- named_as_uploaded ----------------------------------------------------------------------


def test_named_as_uploaded_rewrites_the_full_path_to_the_basename(tmp_path: Path) -> None:
    path = tmp_path / "gradio" / "0123abcd" / "my cat.png"
    error = MediaError(f"{path} is not a readable image (see {path})")
    with pytest.raises(MediaError) as info, named_as_uploaded(path):
        raise error
    assert info.value is error  # the same error, its type kept
    assert str(info.value) == "my cat.png is not a readable image (see my cat.png)"


def test_named_as_uploaded_on_a_real_unreadable_image(tmp_path: Path) -> None:
    path = tmp_path / "upload" / "cat.png"
    path.parent.mkdir()
    path.write_text("not a picture")
    with pytest.raises(MediaError) as plain:
        load_image(path)
    assert str(path) in str(plain.value)  # what it would say without the context manager
    with pytest.raises(MediaError) as info, named_as_uploaded(path):
        load_image(path)
    assert str(info.value).startswith("cat.png is not a readable image")
    assert str(tmp_path) not in str(info.value)


def test_named_as_uploaded_leaves_other_exceptions_and_arguments_alone(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    with pytest.raises(ValueError) as info, named_as_uploaded(path):
        raise ValueError(f"bug reading {path}")
    assert str(info.value) == f"bug reading {path}"  # not a user error: full detail kept
    with pytest.raises(LandmarkFileError) as info2, named_as_uploaded(path):
        raise LandmarkFileError(f"{path}: bad", 7, path)
    assert info2.value.args == ("cat.png: bad", 7, path)
    with named_as_uploaded(path):  # nothing raised, nothing happens
        pass


# --- Workspace ------------------------------------------------------------------------------


def test_session_folders_are_separate_and_stable(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "root")
    a, b = ws.session("abc123"), ws.session("def456")
    assert a != b and a.is_dir() and b.is_dir()
    assert a.parent == b.parent == ws.root / "sessions"
    assert ws.session("abc123") == a
    assert ws.session(None) == ws.session("") == ws.root / "sessions" / "anonymous"
    assert ws.shared().is_dir() and ws.shared() not in (a, b)


@pytest.mark.parametrize(
    "session_id",
    ["../x", "../../escape", "..", "/etc", "a/../../b", "..\\..\\win", "x\x00y", "~", ".", "/"],
)
def test_session_ids_cannot_escape_the_sessions_folder(tmp_path: Path, session_id: str) -> None:
    root = tmp_path / "root"
    ws = Workspace(root)
    folder = ws.session(session_id)
    sessions = (root / "sessions").resolve()
    assert folder.resolve().parent == sessions
    assert folder.name not in ("", ".", "..")
    assert all(ch.isalnum() or ch in "-_" for ch in folder.name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]
    run = ws.new_run_folder(session_id)
    assert run.resolve().parent == folder.resolve()


def test_sanitised_session_id_keeps_its_safe_characters(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    assert ws.session("../x").name == "x"
    assert ws.session("ab-C_9").name == "ab-C_9"


def test_run_folders_are_unique_under_concurrency(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    threads, per_thread = 8, 12
    barrier = threading.Barrier(threads)

    def make(i: int) -> list[Path]:
        barrier.wait()
        return [ws.new_run_folder(f"s{i % 3}") for _ in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        folders = [f for batch in pool.map(make, range(threads)) for f in batch]
    assert len(folders) == len(set(folders)) == threads * per_thread
    assert all(f.is_dir() and not any(f.iterdir()) for f in folders)
    assert {f.parent.name for f in folders} == {"s0", "s1", "s2"}
    assert len({f.name for f in folders}) == threads * per_thread  # numbered across sessions


def test_end_session_removes_only_that_session(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "root")
    a, b = ws.session("aaa"), ws.session("bbb")
    (a / "character.png").write_bytes(b"a")
    (ws.new_run_folder("aaa") / "out.mp4").write_bytes(b"a")
    (b / "character.png").write_bytes(b"b")
    (ws.shared() / "demo_driving.mp4").write_bytes(b"s")
    ws.end_session("aaa")
    assert not a.exists()
    assert (b / "character.png").read_bytes() == b"b"
    assert (ws.shared() / "demo_driving.mp4").is_file()
    # nothing outside a session can be named for removal
    for odd in (None, "", "..", "../", "/", "."):
        ws.end_session(odd)
    assert (b / "character.png").is_file() and ws.shared().is_dir()
    ws.end_session("never-seen")  # an unknown session is no error


def test_remove_removes_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(tmp_path / "root")
    (ws.new_run_folder("s") / "x.mp4").write_bytes(b"x")
    ws.remove()
    assert not ws.root.exists()
    ws.remove()  # twice is fine
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fresh = Workspace()
    assert fresh.root.parent == tmp_path and fresh.root.name.startswith("faceshot-ui-")
    fresh.remove()
    assert not fresh.root.exists()


# --- GpuQueue -------------------------------------------------------------------------------


def _start(target: object) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_gpu_queue_serves_jobs_in_arrival_order() -> None:
    gpu = GpuQueue()
    jobs = 6
    entered: list[int] = []
    ahead_seen: dict[int, int] = {}
    queued = [threading.Event() for _ in range(jobs)]
    release_first = threading.Event()
    first_in = threading.Event()

    def first() -> None:
        with gpu.turn(on_wait=lambda n: pytest.fail("the first job waited")):
            first_in.set()
            release_first.wait(WAIT_S)

    def job(i: int) -> None:
        def on_wait(ahead: int) -> None:
            ahead_seen[i] = ahead
            queued[i].set()

        with gpu.turn(on_wait=on_wait):
            entered.append(i)
            time.sleep(0.002)  # give a wrongly ordered job the chance to overtake

    threads = [_start(first)]
    assert first_in.wait(WAIT_S)
    arrival = [3, 0, 5, 1, 4, 2]  # thread creation order differs from the job ids
    for i in arrival:
        threads.append(_start(lambda i=i: job(i)))
        assert queued[i].wait(WAIT_S), "each job takes its ticket before the next one arrives"
    assert gpu.waiting == jobs + 1
    release_first.set()
    for thread in threads:
        thread.join(WAIT_S)
    assert entered == arrival
    assert [ahead_seen[i] for i in arrival] == list(range(1, jobs + 1))
    assert gpu.waiting == 0


def test_gpu_queue_calls_on_wait_only_when_waiting() -> None:
    gpu = GpuQueue()
    calls: list[int] = []
    for _ in range(3):
        with gpu.turn(on_wait=calls.append):
            assert gpu.waiting == 1
    with gpu.turn():  # no callback is fine too
        pass
    assert calls == [] and gpu.waiting == 0


def test_a_job_that_fails_inside_its_turn_passes_the_turn_on() -> None:
    gpu = GpuQueue()
    with pytest.raises(RuntimeError, match="out of memory"), gpu.turn():
        raise RuntimeError("out of memory")
    assert gpu.waiting == 0
    done = threading.Event()

    def next_job() -> None:
        with gpu.turn(on_wait=lambda n: pytest.fail(f"waited for {n} job(s)")):
            done.set()

    _start(next_job).join(WAIT_S)
    assert done.is_set()


def test_a_failing_job_in_the_middle_of_the_queue_does_not_stop_the_others() -> None:
    gpu = GpuQueue()
    release = threading.Event()
    holding, failed, done = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def holder() -> None:
        with gpu.turn():
            holding.set()
            release.wait(WAIT_S)
            order.append("holder")

    def failing() -> None:
        try:
            with gpu.turn(on_wait=lambda n: failed.set()):
                order.append("failing")
                raise RuntimeError("crash")
        except RuntimeError:
            pass

    def last() -> None:
        with gpu.turn():
            order.append("last")
            done.set()

    _start(holder)
    assert holding.wait(WAIT_S)
    _start(failing)
    assert failed.wait(WAIT_S)
    _start(last)
    release.set()
    assert done.wait(WAIT_S)
    assert order == ["holder", "failing", "last"]


def test_a_raising_on_wait_callback_does_not_block_the_queue() -> None:
    gpu = GpuQueue()
    release, holding = threading.Event(), threading.Event()

    def holder() -> None:
        with gpu.turn():
            holding.set()
            release.wait(WAIT_S)

    def gone(ahead: int) -> None:
        raise RuntimeError("the page was closed")

    first = _start(holder)
    assert holding.wait(WAIT_S)
    with pytest.raises(RuntimeError, match="closed"), gpu.turn(on_wait=gone):
        pass
    release.set()
    first.join(WAIT_S)
    done = threading.Event()

    def later() -> None:
        with gpu.turn():
            done.set()

    _start(later)  # a daemon thread: left waiting while the bug stands
    assert done.wait(0.5), "the next job never got the GPU"


# --- faceshot ui (the CLI) ------------------------------------------------------------------


def test_ui_help_lists_host_and_port() -> None:
    result = CliRunner().invoke(cli, ["ui", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--max-upload-mb", "--cpu-jobs", "127.0.0.1", "7860"):
        assert option in result.output


def test_ui_refuses_a_bad_port() -> None:
    result = CliRunner().invoke(cli, ["ui", "--port", "70000"])
    assert result.exit_code == 2 and "--port" in result.output


def test_ui_without_gradio_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    for name in [m for m in sys.modules if m == "faceshot.ui" or m.startswith("faceshot.ui.")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, then put back
    monkeypatch.setattr(faceshot, "ui", faceshot.ui)
    for var in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a workspace would go
    with pytest.raises(ImportError):
        import gradio  # noqa: F401
    assert main(["ui", "--port", "7861"]) == USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("faceshot: error: ") and "pip install 'faceshot[ui]'" in err
    assert list(tmp_path.iterdir()) == []  # no workspace left behind
