"""Pages show images a browser cannot (TIFF, many bands, floats) through 8-bit PNG previews written beside the
page (previews/), which link to the original file at full fidelity.

Only numpy and Pillow, and tifffile when it is installed: reports are rebuilt on machines without torch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from pix2pix.atomic import atomic_path
from pix2pix.data.images import TIFF_EXTENSIONS
from pix2pix.data.png import PNG_COMPRESS_LEVEL
from pix2pix.data.reading import MAX_PIXELS, first_line

BROWSER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})  # 16-bit PNGs included
PREVIEW_DIR = "previews"
PREVIEW_STEM_CHARS = 50  # keeps preview names far below the 255-byte file name limit
SOURCE_STAMP_KEY = "pix2pix-source"  # PNG text chunk: mtime and size of the file the preview was made from
NOTE_KEY = "pix2pix-note"  # PNG text chunk: what the preview leaves out, shown again when it is reused
TIFF_IMAGE_AXES = ("YX", "YXS", "SYX", "CYX", "IYX", "QYX")  # tifffile's layouts of one image of bands


@dataclass(frozen=True)
class Shown:
    """What a page draws for an image file: a file a browser displays (None if there is none) and a note."""

    path: Path | None
    note: str = ""


def browser_image(image: Path, html_dir: Path) -> Shown:
    """The file itself when a browser can show it, else its PNG preview, or the reason there is none.

    Any error is turned into a note: a damaged image must not cost the whole report (decoders raise all kinds).
    """
    if image.suffix.lower() in BROWSER_SUFFIXES:
        return Shown(image)
    preview = _preview_path(image, html_dir)
    try:
        return Shown(preview, _updated_preview(image, preview))
    except Exception as err:  # noqa: BLE001 - see the docstring
        return Shown(None, f"no preview: {first_line(err)}")


def _preview_path(image: Path, html_dir: Path) -> Path:
    """previews/<stem>-<hash of the path from the page>.png: files that share a name get different previews,
    and the name stays the same when the page moves together with its images."""
    digest = hashlib.blake2b(relative_url(image, html_dir).encode(), digest_size=6).hexdigest()
    return html_dir / PREVIEW_DIR / f"{image.stem[:PREVIEW_STEM_CHARS]}-{digest}.png"


def _updated_preview(image: Path, preview: Path) -> str:
    """Writes the preview unless it was made from the file as it is now (reports are rewritten every epoch);
    returns its note. The stamp is taken before reading, so a file replaced meanwhile is converted again."""
    status = image.stat()
    stamp = f"{status.st_mtime_ns}:{status.st_size}"
    made_from, note = _preview_stamp_and_note(preview)
    if made_from == stamp:
        return note
    pixels, note = _preview_pixels(_read_samples(image))
    info = PngInfo()
    info.add_text(SOURCE_STAMP_KEY, stamp)
    info.add_text(NOTE_KEY, note)
    with atomic_path(preview) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG", pnginfo=info, compress_level=PNG_COMPRESS_LEVEL)
    return note


def _preview_stamp_and_note(preview: Path) -> tuple[str | None, str]:
    """The text chunks of an existing preview (read from the header only), or (None, "") if there is none."""
    try:
        with Image.open(preview) as opened:
            return opened.info.get(SOURCE_STAMP_KEY), opened.info.get(NOTE_KEY, "")
    except OSError:
        return None, ""


def _read_samples(image: Path) -> np.ndarray:
    """H x W x C samples as the file holds them. TIFFs are read with tifffile when it is installed, because
    Pillow drops bands past the fourth and reads 16-bit colour at 8 bits; otherwise Pillow shows what it can."""
    if image.suffix.lower() in TIFF_EXTENSIONS:
        try:
            import tifffile
        except ImportError:
            return _read_with_pillow(image, hint="install tifffile to read this TIFF")
        return _read_with_tifffile(tifffile, image)
    return _read_with_pillow(image, hint="")


def _read_with_tifffile(tifffile: ModuleType, image: Path) -> np.ndarray:
    with tifffile.TiffFile(image) as tif:
        if not tif.series:  # tifffile logs why and finds no image in a damaged file
            raise ValueError("no image found: the TIFF is damaged")
        series = tif.series[0]
        if series.axes not in TIFF_IMAGE_AXES:
            raise ValueError(f"a TIFF of axes {series.axes} {series.shape} is not one image of bands")
        _check_preview_pixels(series.shape[series.axes.index("Y")] * series.shape[series.axes.index("X")])
        samples = series.asarray()
    if series.axes == "YX":
        return samples[:, :, None]
    return samples if series.axes == "YXS" else np.moveaxis(samples, 0, -1)


def _read_with_pillow(image: Path, hint: str) -> np.ndarray:
    try:
        with Image.open(image) as opened:
            _check_preview_pixels(opened.width * opened.height)
            if opened.mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not opened.mode.startswith("I;16"):
                opened = opened.convert("RGBA" if "transparency" in opened.info else "RGB")  # palettes, CMYK, ...
            samples = np.asarray(opened)
    except OSError as err:
        raise OSError(f"{first_line(err)}; {hint}" if hint else first_line(err)) from err
    return samples if samples.ndim == 3 else samples[:, :, None]


def _check_preview_pixels(pixels: int) -> None:
    if pixels > MAX_PIXELS:
        raise ValueError(f"{pixels:,} pixels is over the preview limit of {MAX_PIXELS:,}")


def _preview_pixels(samples: np.ndarray) -> tuple[np.ndarray, str]:
    """8-bit samples a PNG holds as gray, gray+alpha, RGB or RGBA, and a note of what the preview changes:
    bands past the third are left out, and values with no fixed range are stretched."""
    pixels, note = _as_8bit(samples)
    bands = pixels.shape[2]
    if bands > 4:
        pixels = pixels[:, :, :3]
        note = "; ".join(filter(None, [f"bands 1-3 of {bands} shown as RGB", note]))
    return (pixels[:, :, 0] if pixels.shape[2] == 1 else pixels), note


def _as_8bit(samples: np.ndarray) -> tuple[np.ndarray, str]:
    """8 bits as they are; 16 bits divided by 257, the scale of the bit depth and not of the image's own
    maximum, so a dark file looks dark; floats in [0, 1] times 255; anything else stretched from its minimum
    to its maximum, which the note says."""
    if samples.dtype.kind == "u" and samples.dtype.itemsize == 1:
        return samples, ""
    if samples.dtype.kind == "u" and samples.dtype.itemsize == 2:
        return ((samples.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8), ""
    values = np.nan_to_num(samples.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if low >= 0 and high <= 1:
        return np.round(values * 255).astype(np.uint8), ""
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return np.round(scaled * 255).astype(np.uint8), f"values {low:.4g} to {high:.4g} stretched to 0-255"


def relative_url(target: Path, html_dir: Path) -> str:
    """The file's URL from the page, relative so the folder can move (a file URI where there is no relative path)."""
    try:
        relative = os.path.relpath(os.path.abspath(target), os.path.abspath(html_dir))
    except ValueError:  # on Windows, a different drive has no relative path
        return Path(os.path.abspath(target)).as_uri()
    return quote(relative.replace(os.sep, "/"))
