"""Whatever stops faceshot (SIGTERM, Ctrl-C, a full disk) ends in one line and leaves no file.

These run the real command line in a subprocess: signals are sent to a real process while
ffmpeg is encoding, and the full disk is a real, tiny tmpfs mounted in a private mount
namespace (``unshare``), so nothing is patched.  Where the machine cannot give a private
mount namespace (no ``unshare``, user namespaces disabled), the disk tests skip.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import imageio_ffmpeg
import numpy as np
import pytest

from faceshot.cli.main import cli, main
from faceshot_core.video import write_video

#: Runs the CLI like the ``faceshot`` script does, with Python's default Ctrl-C handler even
#: when the test runner was started with SIGINT ignored (a background job of a shell).
LAUNCH = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from faceshot.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-c", LAUNCH, *(str(a) for a in args)]


def _ffmpeg_children(pid: int) -> list[int]:
    """Process ids of the ffmpeg processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"ffmpeg" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return b"ffmpeg" in cmdline and state != "Z"


def _stderr_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("sig", "code", "line"),
    [
        (signal.SIGTERM, 143, "faceshot: terminated"),
        (signal.SIGINT, 130, "faceshot: interrupted"),
    ],
)
def test_signal_while_encoding_leaves_nothing(
    tmp_path: Path, sig: signal.Signals, code: int, line: str
) -> None:
    """The signal arrives while ffmpeg writes the demo's driving clip into a temporary file."""
    out = tmp_path / "demo"
    proc = subprocess.Popen(
        _cli("demo", "-o", out, "--frames", "2000", "-q"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        partial: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in out.glob(".*partial*") if p.stat().st_size > 0]
            if partial:
                break
            time.sleep(0.05)
        assert partial, "the demo never started writing its video"
        encoders = _ffmpeg_children(proc.pid)
        assert encoders, "no ffmpeg encoder running when the signal was sent"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert _stderr_lines(err) == [line]
    left = sorted(p.name for p in out.iterdir())
    assert not [n for n in left if "partial" in n or (n.startswith(".") and n != ".faceshot-demo")]
    assert "driving.mp4" not in left  # the clip was not finished, so it was not published
    time.sleep(0.2)
    assert not [pid for pid in encoders if _alive(pid)], "ffmpeg outlived faceshot"


def _with_command(command: click.Command, argv: list[str]) -> int:
    """Run ``main`` with a throwaway command added to the real CLI group."""
    cli.add_command(command)
    try:
        return main(argv)
    finally:
        cli.commands.pop(str(command.name))


def test_sigterm_handler_is_only_installed_during_a_command() -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    @click.command("peek-signal")
    def peek() -> None:
        seen.append(signal.getsignal(signal.SIGTERM))

    assert _with_command(peek, ["peek-signal"]) == 0
    assert callable(seen[0]) and seen[0] is not before
    assert signal.getsignal(signal.SIGTERM) is before


# ------------------------------------------------------------------------------ full disk


def test_no_space_from_a_writer_outside_faceshot_core_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A plugin's own writer, say: ENOSPC is the machine's fault, not a bug, so no traceback."""

    @click.command("fill-disk")
    def fill() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/frames.bin")

    assert _with_command(fill, ["fill-disk"]) == 2
    err = capsys.readouterr().err
    assert err == "faceshot: error: no space left on device while writing /data/frames.bin\n"

    @click.command("other-oserror")
    def other() -> None:
        raise OSError(errno.EIO, "input/output error")

    with pytest.raises(OSError, match="input/output error"):  # other faults stay bugs
        _with_command(other, ["other-oserror"])


def _namespace_prefix() -> list[str] | None:
    """A command prefix giving a private mount namespace, or None where none can be had."""
    if shutil.which("unshare") is None or not hasattr(os, "geteuid"):
        return None
    candidates = [["unshare", "--user", "--map-root-user", "--mount"]]
    if os.geteuid() == 0:
        candidates.insert(0, ["unshare", "--mount"])
    for prefix in candidates:
        probe = [*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"]
        try:
            if subprocess.run(probe, capture_output=True, timeout=30).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


@pytest.fixture(scope="module")
def small_disk() -> list[str]:
    prefix = _namespace_prefix()
    if prefix is None:
        pytest.skip("cannot mount a private tmpfs here (no unshare or no user namespaces)")
    return prefix


def _on_small_disk(
    prefix: list[str], tmp_path: Path, size_kb: int, command: list[str]
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``command`` with a fresh ``size_kb`` tmpfs at ``tmp_path/disk``; what it left there.

    The mount exists only inside the namespace, so the listing is taken in there too.
    """
    disk = tmp_path / "disk"
    disk.mkdir()
    listing = tmp_path / "left.txt"
    script = (
        'mount -t tmpfs -o size="$1"k tmpfs "$2" || exit 99; disk="$2"; list="$3"; shift 3; '
        '"$@"; rc=$?; ls -A "$disk" > "$list"; exit $rc'
    )
    cmd = [*prefix, "sh", "-c", script, "sh", str(size_kb), str(disk), str(listing), *command]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 99, proc.stderr
    return proc, listing.read_text().split()


def test_full_disk_while_encoding(small_disk: list[str], tmp_path: Path) -> None:
    """The demo's 512x512 driving clip does not fit in 300 KiB: one line, nothing left."""
    disk = tmp_path / "disk"
    proc, left = _on_small_disk(
        small_disk, tmp_path, 300, _cli("demo", "-o", disk, "--frames", "100", "-q")
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = _stderr_lines(proc.stderr)
    assert lines == [f"faceshot: error: no space left on device while writing {disk}/driving.mp4"]
    assert left == [".faceshot-demo"]  # the marker (a few bytes) fitted; no partial video


def test_full_disk_while_saving_an_image(
    small_disk: list[str], tmp_path: Path, astronaut: np.ndarray
) -> None:
    """Pillow's write fails with ENOSPC inside faceshot_core.atomic: same one line."""
    from faceshot_core.images import save_image

    image = save_image(tmp_path / "astronaut.png", astronaut)
    disk = tmp_path / "disk"
    command = _cli(
        "landmarks", "detect", image, "-o", disk / "a.json", "--overlay", disk / "a.png", "-q"
    )
    proc, left = _on_small_disk(small_disk, tmp_path, 64, command)
    assert proc.returncode == 2
    assert _stderr_lines(proc.stderr) == [
        f"faceshot: error: no space left on device while writing {disk}/a.png"
    ]
    assert left == ["a.json"]  # written before the overlay; the overlay left nothing


def _tone(path: Path, seconds: float) -> Path:
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
        "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", str(path),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    return path


MUX_SCRIPT = """
import sys, traceback
import numpy as np
from skimage import data
from faceshot_core.video import write_video
frames = [np.roll(data.astronaut(), 3 * i, axis=1) for i in range(25)]
try:
    write_video(sys.argv[1], frames, 25, audio_from=sys.argv[2])
except Exception as exc:
    print(type(exc).__name__, traceback.extract_tb(exc.__traceback__)[-1].name, sep="|")
    print(exc)
"""


def test_full_disk_while_adding_audio(small_disk: list[str], tmp_path: Path) -> None:
    """The encoded video fits but its copy with audio does not: the mux pass reports it."""
    from skimage import data

    tone = _tone(tmp_path / "tone.m4a", 2.0)
    frames = [np.roll(data.astronaut(), 3 * i, axis=1) for i in range(25)]  # as in MUX_SCRIPT
    silent = write_video(tmp_path / "silent.mp4", frames, 25).stat().st_size
    size_kb = int(silent * 1.4) // 1024  # the video, not the video plus its muxed copy
    out = tmp_path / "disk" / "a.mp4"
    command = [sys.executable, "-c", MUX_SCRIPT, str(out), str(tone)]
    proc, left = _on_small_disk(small_disk, tmp_path, size_kb, command)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "OutOfSpaceError|_mux_audio",  # raised by the mux pass, not by the encoder
        f"no space left on device while writing {out}",
    ]
    assert proc.stderr == ""  # none of ffmpeg's messages reach the terminal
    assert left == []
