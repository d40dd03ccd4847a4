"""``faceshot ui`` driven in a real browser: headless Chromium through Playwright.

The app is served in this process on a free local port; Chromium is the system's (Debian's
``chromium`` package, which ``.ci/run`` installs), so nothing is downloaded.  Screenshots of the
main states go to ``build/ui-screenshots/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from faceshot_core.images import save_image
from faceshot_core.landmark_files import save_landmarks
from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.sample_data import chelsea, chelsea_landmarks
from faceshot_core.video import probe_video
from faceshot_core.video.writing import even_size

gr = pytest.importorskip("gradio", reason="the web app's extra (faceshot[ui]) is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from faceshot.ui.app import build_app  # noqa: E402
from faceshot.ui.landmark_editing import anchors_of  # noqa: E402
from faceshot.ui.workspace import UploadLimits, Workspace  # noqa: E402

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[1] / "build" / "ui-screenshots"
CHROMIUM_ENV = "FACESHOT_TEST_CHROMIUM"
# a closed network: without these, Chromium's background connections fail by the dozen
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update",
]  # fmt: skip
TIMEOUT_MS = 60_000


def chromium_executable() -> str | None:
    """The browser to drive: ``$FACESHOT_TEST_CHROMIUM``, else Debian's or Ubuntu's Chromium."""
    if os.environ.get(CHROMIUM_ENV):
        return os.environ[CHROMIUM_ENV]
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Workspace]]:
    workspace = Workspace(tmp_path_factory.mktemp("ui-workspace"))
    app = build_app(workspace, UploadLimits(image_mb=3.0, video_mb=20.0))
    app.queue()
    _, url, _ = app.launch(
        server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False,
        allowed_paths=[str(workspace.root)], max_file_size="20mb", show_error=False,
    )  # fmt: skip
    yield url, workspace
    app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_executable()
    if executable is None:
        pytest.skip(f"no Chromium found (apt-get install chromium, or set ${CHROMIUM_ENV})")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, served: tuple[str, Workspace]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    tab.goto(served[0])
    tab.wait_for_selector("#editor .fs-status")
    yield tab
    context.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def image_scale(page: Any) -> float:
    """Image pixels per screen pixel in the editor."""
    return 1.0 / float(page.evaluate("document.querySelector('#editor svg').getScreenCTM().a"))


def screen_of(page: Any, x: float, y: float) -> tuple[float, float]:
    """Where image pixel ``(x, y)`` is on the screen (the drawing's own matrix)."""
    m = page.evaluate("(() => { const m = document.querySelector('#editor svg').getScreenCTM();"
                      " return [m.a, m.d, m.e, m.f]; })()")  # fmt: skip
    return m[2] + x * m[0], m[3] + y * m[1]


def upload(page: Any, elem_id: str, path: Path) -> None:
    """Drop ``path`` into a file zone (which empties again after each upload)."""
    field = page.locator(f"#{elem_id} input[type=file]")
    field.wait_for(state="attached")
    field.set_input_files(str(path))


def upload_with_button(page: Any, elem_id: str, path: Path) -> None:
    """Choose ``path`` in the file dialog that the upload button opens."""
    with page.expect_file_chooser() as chooser:
        page.locator(f"#{elem_id}").click()
    chooser.value.set_files(str(path))


def exported_points(page: Any, tmp_path: Path, name: str) -> np.ndarray:
    """Click Export and read the faceshot JSON the page offers for download."""
    before = page.locator("#export-file a").count()
    page.click("#export")
    link = page.locator("#export-file a[download]").first
    link.wait_for()
    assert before in (0, 1)
    with page.expect_download() as download:
        link.click()
    target = tmp_path / name
    download.value.save_as(target)
    return np.asarray(json.loads(target.read_text())["points"], dtype=np.float64)


def wait_points(page: Any) -> None:
    page.wait_for_function("document.querySelectorAll('#editor circle.fs-point').length === 68")


def message(page: Any, pattern: str) -> None:
    """The page shows an error line matching ``pattern`` (and no traceback)."""
    toast = page.get_by_text(re.compile(pattern)).first
    toast.wait_for()
    assert "Traceback" not in page.content()


@pytest.mark.parametrize("factor", [1, 6], ids=["chelsea", "chelsea-2706x1800"])
def test_template_from_three_clicks_then_drag_moves_exported_point(
    page: Any, tmp_path: Path, factor: int
) -> None:
    """On the cat, and on a large image shown at a quarter of its size: points in image pixels."""
    cat = tmp_path / ("chelsea.png" if factor == 1 else "chelsea_large.jpg")
    image = chelsea()
    if factor > 1:
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    save_image(cat, image)
    upload(page, "character-upload", cat)
    page.wait_for_selector("#editor svg image")
    assert page.locator("#editor circle.fs-point").count() == 0
    shot(page, f"01-character-uploaded-x{factor}")

    page.click("#template")
    status = sync_api.expect(page.locator("#editor .fs-status"))
    status.to_contain_text("Click the right eye centre")
    clicks = anchors_of(chelsea_landmarks().points) * factor
    for x, y in clicks:
        page.mouse.click(*screen_of(page, x, y))
        page.wait_for_timeout(150)
    wait_points(page)
    shot(page, f"02-template-placed-x{factor}")
    scale = image_scale(page)
    placed = exported_points(page, tmp_path, "template.json")
    # each click lands within a screen pixel of where it was aimed (events carry whole pixels)
    assert np.abs(anchors_of(placed) - clicks).max() <= scale + 0.01

    index = 30  # nose tip
    point = page.locator("#editor circle.fs-point").nth(index)
    point.scroll_into_view_if_needed()
    start = point.bounding_box()
    cx, cy = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 40, cy + 25, steps=8)
    page.mouse.up()
    sync_api.expect(page.locator("#editor .fs-status")).to_contain_text("31 nose: tip")
    page.wait_for_timeout(500)
    dragged = exported_points(page, tmp_path, "dragged.json")
    moved = dragged - placed
    # the point keeps its offset from the pointer: it moves by the drag, in image pixels
    np.testing.assert_allclose(moved[index], np.array([40, 25]) * scale, atol=0.01)
    assert np.abs(np.delete(moved, index, axis=0)).max() < 1e-3
    shot(page, f"03-point-dragged-x{factor}")
    page.locator("#character-panel").screenshot(path=str(SHOTS / f"editor-x{factor}.png"))

    page.click("#undo")
    page.wait_for_timeout(800)
    undone = exported_points(page, tmp_path, "undone.json")
    np.testing.assert_allclose(undone, placed, atol=1e-3)


def test_imported_landmarks_and_mirror(page: Any, tmp_path: Path) -> None:
    cat = tmp_path / "chelsea.png"
    save_image(cat, chelsea())
    upload(page, "character-upload", cat)
    page.wait_for_selector("#editor svg image")
    truth = chelsea_landmarks()
    pts = tmp_path / "chelsea.pts"
    save_landmarks(pts, FaceLandmarks(truth.points, truth.image_size))
    upload_with_button(page, "import-landmarks", pts)
    wait_points(page)
    imported = exported_points(page, tmp_path, "imported.json")
    np.testing.assert_allclose(imported, truth.points, atol=2e-3)
    page.click("#mirror-left")
    page.wait_for_timeout(800)
    mirrored = exported_points(page, tmp_path, "mirrored.json")
    np.testing.assert_allclose(mirrored[36:42], imported[36:42], atol=2e-3)  # kept side
    assert np.abs(mirrored[42:48] - imported[42:48]).max() > 0.5  # the other side replaced


def test_run_warp_gives_a_playable_video(page: Any, tmp_path: Path) -> None:
    page.click("#demo-cat")
    wait_points(page)
    page.click("#demo-clip")
    page.get_by_text(re.compile(r"48 frames at 24 fps")).wait_for()
    page.locator("#measure input").check()
    page.click("#run")
    video = page.locator("#result-video video")
    video.wait_for()
    page.wait_for_function(
        "() => { const v = document.querySelector('#result-video video');"
        " return v && v.readyState >= 1 && v.duration > 1.5 && v.videoWidth > 0; }"
    )
    figures = page.locator("#run-figures")
    sync_api.expect(figures).to_contain_text("anatomy", timeout=TIMEOUT_MS)
    sync_api.expect(figures).to_contain_text("not measured")  # dlib finds no cat
    shot(page, "04-result")
    assert page.get_by_text(re.compile(r"48 frames at 24 fps by warp")).count() == 1
    response = page.request.get(video.get_attribute("src"))
    assert response.ok
    clip = tmp_path / "result.mp4"
    clip.write_bytes(response.body())
    info = probe_video(clip)
    assert info.frame_count == 48 and (info.width, info.height) == even_size(451, 300)
    names = page.locator("#downloads").inner_text().replace("\n", "")
    for name in ("cat.mp4", "cat_landmarks.npz", "cat.json"):  # named after the demo cat
        assert name in names


def test_bad_uploads_and_missing_steps_show_a_message(page: Any, tmp_path: Path) -> None:
    page.click("#run")
    message(page, "upload a character image first")
    bad = tmp_path / "bad.png"
    bad.write_text("this is not an image\n")
    upload(page, "character-upload", bad)
    message(page, r"^bad\.png is not a readable image")
    shot(page, "05-bad-upload")
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (3 * 1024 * 1024 + 10))  # the test app's image limit is 3 MB
    upload(page, "character-upload", big)
    message(page, r"big\.png is 3\.0 MB; image uploads are limited to 3 MB")
    clip = tmp_path / "clip.mp4"
    clip.write_text("not a video")
    upload(page, "driving-upload", clip)
    message(page, r"clip\.mp4")


def test_backend_options_come_from_the_backends_model(page: Any) -> None:
    page.get_by_text("Backend options").click()
    page.locator("#opt-mouth_interior").wait_for()  # warp's one option, a checkbox
    page.locator("#backend input").click()
    page.get_by_role("option", name="aniportrait").click()
    page.locator("#opt-guidance").wait_for()  # drawn from AniPortrait's Options: no UI code
    assert page.locator("#opt-mouth_interior").count() == 0
    # a fresh form shows the model's defaults, nothing carried over from warp's form
    assert page.locator("#opt-weights textarea, #opt-weights input").first.input_value() == ""
    from faceshot_aniportrait.backend import AniPortraitBackend

    defaults = AniPortraitBackend.Options()
    for name in ("decode_chunk", "steps", "short_side"):
        shown = page.locator(f"#opt-{name} input[type=number]").input_value()
        assert float(shown) == getattr(defaults, name), name
    assert page.locator("#backend input").input_value() == "aniportrait"
    shot(page, "06-backend-options")

    # the form's values reach faceshot.run, which validates them as it does the CLI's
    page.click("#demo-cat")
    wait_points(page)
    page.click("#demo-clip")
    page.get_by_text(re.compile(r"48 frames at 24 fps")).wait_for()
    side = page.locator("#opt-short_side input[type=number]")
    side.fill("100")
    side.press("Enter")
    page.wait_for_timeout(500)
    page.click("#run")
    message(page, r"backend 'aniportrait' option 'short_side': .*multiple of 64")


def test_closing_the_page_removes_its_session_folder(
    browser: Any, served: tuple[str, Workspace]
) -> None:
    url, workspace = served
    sessions = workspace.root / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    before = set(sessions.iterdir())
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(url)
    tab.click("#demo-cat")
    wait_points(tab)
    ours = [p for p in set(sessions.iterdir()) - before if (p / "character.png").is_file()]
    assert len(ours) == 1, "the page's own folder holds its character"
    context.close()
    deadline = time.monotonic() + 30
    while ours[0].exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ours[0].exists()
