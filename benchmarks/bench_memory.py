"""Peak memory of `faceshot detect`, `retarget --overlay-on` and `run` against video length.

Long videos must stream: the peak resident memory of the whole CLI run on a clip ten times
longer should stay about the same (landmarks cost 544 bytes a frame; frames are never held).
Each run is a fresh subprocess, so its peak RSS (``ru_maxrss`` of the child) is its own.

    python benchmarks/bench_memory.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from skimage import data

from faceshot.pipeline import detect_reference
from faceshot_core.images import save_image
from faceshot_core.landmark_files import save_landmarks
from faceshot_core.synthetic import write_motion_clip

LENGTHS = (100, 1000)


def peak_rss_mib(args: list[str]) -> tuple[float, float]:
    """Run ``python -m faceshot ARGS`` in a child; return (peak RSS in MiB, seconds)."""
    script = (
        "import resource, subprocess, sys\n"
        "subprocess.run([sys.executable, '-m', 'faceshot', *sys.argv[1:]], check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1]) / 1024.0, time.perf_counter() - started


def main() -> None:
    astronaut = np.ascontiguousarray(data.astronaut())
    face = detect_reference(astronaut)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = save_image(folder / "ref.png", astronaut)
        ref = save_landmarks(folder / "ref.json", face)
        for frames in LENGTHS:
            video = folder / f"drive{frames}.mp4"
            write_motion_clip(video, astronaut, face.points, num_frames=frames, fps=25)
            detect = ["detect", str(video), "-o", str(folder / f"d{frames}.npz"), "-q"]
            retarget = [
                "retarget", "-l", str(ref), "-d", str(folder / f"d{frames}.npz"),
                "-o", str(folder / f"s{frames}.npz"),
                "--overlay-on", str(image), str(folder / f"o{frames}.mp4"), "-q",
            ]  # fmt: skip
            animate = [
                "run", "-r", str(image), "-l", str(ref), "-d", str(video),
                "-o", str(folder / f"a{frames}.mp4"), "--compare", "-q",
            ]  # fmt: skip
            rows.append(
                (frames, *peak_rss_mib(detect), *peak_rss_mib(retarget), *peak_rss_mib(animate))
            )
    base = rows[0]
    print(f"peak resident memory of CLI runs, 512x512 video, {sys.platform}")
    print(f"{'frames':>7} | {'detect MiB':>10} {'s':>6} {'ratio':>6} | "
          f"{'retarget+overlay MiB':>20} {'s':>6} {'ratio':>6} | "
          f"{'run warp+compare MiB':>20} {'s':>6} {'ratio':>6}")  # fmt: skip
    print("-" * 110)
    for frames, d_mib, d_s, r_mib, r_s, a_mib, a_s in rows:
        print(f"{frames:>7} | {d_mib:>10.1f} {d_s:>6.1f} {d_mib / base[1]:>6.2f} | "
              f"{r_mib:>20.1f} {r_s:>6.1f} {r_mib / base[3]:>6.2f} | "
              f"{a_mib:>20.1f} {a_s:>6.1f} {a_mib / base[5]:>6.2f}")  # fmt: skip
    print("ratio = peak memory / peak memory of the shortest clip, measured in this run.")


if __name__ == "__main__":
    main()
