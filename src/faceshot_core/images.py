"""Image loading: any common file, any mode, becomes an RGB uint8 array ``[H, W, 3]``.

Animators and detectors all want the same thing, so the conversion happens once at the edge:
greyscale is replicated to three channels, alpha is composited over white (a transparent
character sheet should not turn black), palettes are expanded, and 16-bit or float data is
rescaled to 8 bits by its nominal range.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from faceshot_core.atomic import atomic_output
from faceshot_core.errors import MediaError

Image.MAX_IMAGE_PIXELS = 20_000 * 20_000


def to_rgb_uint8(array: np.ndarray, source: str = "image") -> np.ndarray:
    """Convert an image array of any common layout and dtype to RGB uint8 ``[H, W, 3]``."""
    arr = np.asarray(array)
    was_uint8 = arr.dtype == np.uint8
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or min(arr.shape[:2]) == 0:
        raise MediaError(f"{source}: not an image array (shape {list(arr.shape)})")
    arr = arr if was_uint8 else _to_unit_float(arr, source)
    channels = arr.shape[2]
    if channels in (2, 4):  # grey+alpha or RGBA: composite over white
        color, alpha = arr[:, :, :-1], arr[:, :, -1:]
        if was_uint8:
            a = alpha.astype(np.float32) / 255.0
            color = color.astype(np.float32) * a + 255.0 * (1.0 - a)
        else:
            color = color * alpha + (1.0 - alpha)
        arr = color
    if arr.dtype != np.uint8:
        scale = 1.0 if was_uint8 else 255.0  # composited uint8 data is already 0..255
        arr = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def _to_unit_float(arr: np.ndarray, source: str) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise MediaError(f"{source}: image contains NaN or infinite values")
        return np.clip(arr.astype(np.float32), 0.0, 1.0)
    raise MediaError(f"{source}: unsupported pixel type {arr.dtype}")


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as RGB uint8 ``[H, W, 3]``, or raise :class:`MediaError`."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"image {p} does not exist" if not p.exists() else f"{p} is not a file")
    try:
        with Image.open(p) as img:
            img.load()
            return to_rgb_uint8(_pil_to_array(img), source=str(p))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{p} is not a readable image ({exc.__class__.__name__})") from exc


def _pil_to_array(img: Image.Image) -> np.ndarray:
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    elif img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img).astype(np.uint16)
    elif img.mode == "I":
        arr = np.asarray(img)
        # 32-bit integer images from PIL are usually 16-bit PNGs promoted; keep their range.
        return arr.astype(np.uint16) if arr.max(initial=0) <= 65535 else arr.astype(np.uint32)
    elif img.mode == "F":
        return np.asarray(img, dtype=np.float32)
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode == "LA" or img.mode in ("RGBA", "RGB", "L"):
        pass
    else:
        img = img.convert("RGBA")
    return np.asarray(img)


def save_image(path: str | os.PathLike[str], image: np.ndarray, *, overwrite: bool = True) -> Path:
    """Write an RGB uint8 image atomically (format from the suffix)."""
    out = Path(path)
    rgb = to_rgb_uint8(image)
    with atomic_output(out, overwrite=overwrite) as tmp:
        fmt = Image.registered_extensions().get(out.suffix.lower())
        if fmt is None:
            raise MediaError(f"{out}: unknown image format {out.suffix!r}")
        Image.fromarray(rgb).save(tmp, format=fmt)
    return out
