"""Image files to `ImageData` at the file's full fidelity, upright, with errors that name the file and the fix.

Pillow reads what it can hold exactly; TIFFs it would cut down (extra bands, 16-bit colour) are read with
`tifffile` when that is installed, and 16-bit colour PNGs by `pix2pix.data.png`. No torch here: reports import
the pixel limit and `first_line` on machines without it.
"""

from __future__ import annotations

import contextlib
import io
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from pix2pix.data.images import (
    TIFF_EXTENSIONS,
    DataError,
    ImageData,
    as_16bit,
    convert_channels,
    decoded_as_exact_mode,
)
from pix2pix.data.png import is_16bit_colour_png, read_16bit_colour_png

MAX_PIXELS = 2**28
"""Images with more pixels are refused before decoding: a small crafted file can expand to gigabytes."""

READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
"""What decoders raise on a damaged file (truncated, corrupt, lying headers)."""

_PIXEL_LIMIT = threading.Lock()
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}  # EXIF orientation -> the transpose that displays it upright
_TIFF_CHANNEL_AXES = ("S", "C", "I", "Q")  # tifffile's names for samples, channels, pages and unknown


class ImageTooLarge(DataError):
    """More pixels than the limit, refused from the header before decoding (a server answers it apart)."""


class NotAnImage(DataError):
    """Data that no image decoder here recognizes (a server answers it apart from a damaged image)."""


def load_image_data(path: Path, channels: int | None = None, max_pixels: int = MAX_PIXELS) -> ImageData:
    """The file's samples at its own bit depth, upright (EXIF orientation), fully decoded so that a truncated file
    fails here and not later; converted to `channels` when given. Every way a file can be bad is a DataError
    naming it."""
    path = Path(path)
    with _named_errors(path):
        if path.stat().st_size == 0:
            raise DataError.about(path, "empty file (0 bytes)", "replace it with a complete copy or remove it")
        image, orientation = _decode(path, max_pixels)
    return _upright(image, orientation, channels, path)


def decode_image_bytes(data: bytes, name: str, channels: int | None = None, max_pixels: int = MAX_PIXELS,
                       formats: tuple[str, ...] | None = None) -> ImageData:
    """An image received over the network, decoded in memory so that it never touches the disk, with the pixel
    limit, orientation and errors of a file (`name` stands for its path in them). `formats` (Pillow's names: PNG,
    JPEG, WEBP) are the only decoders tried. Pillow reads 16-bit colour PNGs at 8 bits here."""
    path = Path(name)
    with _named_errors(path):
        if not data:
            raise DataError.about(path, "empty (0 bytes)", "send an image file")
        image = _open_header(io.BytesIO(data), formats)
        _check_pixel_count(path, *image.size, max_pixels)
        image.load()
        decoded = ImageData.from_pil(decoded_as_exact_mode(image, path))
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    return _upright(decoded, orientation, channels, path)


@contextlib.contextmanager
def _named_errors(path: Path) -> Iterator[None]:
    """Every way reading an image can fail, as a DataError naming it and the fix."""
    try:
        yield
    except DataError:
        raise
    except FileNotFoundError as err:
        raise DataError.about(path, "file not found", "check the path") from err
    except PermissionError as err:
        raise DataError.about(path, "cannot be read (permission denied)", "make it readable or remove it") from err
    except IsADirectoryError as err:
        raise DataError.about(path, "is a folder, not an image", "move it out of the dataset") from err
    except UnidentifiedImageError as err:
        raise NotAnImage.about(path, "not an image (or a format Pillow cannot read)", "replace or remove it") from err
    except READ_ERRORS as err:
        raise DataError.about(path, f"cannot decode ({first_line(err)})",
                              "the file is damaged or truncated: replace it with a complete copy or remove it") from err


def _upright(image: ImageData, orientation: int, channels: int | None, path: Path) -> ImageData:
    """As the EXIF orientation says it is displayed, converted to `channels` when given."""
    if orientation in _ORIENTATION:
        image = image.map_layers(lambda layer: layer.transpose(_ORIENTATION[orientation]))
    return image if channels is None else convert_channels(image, channels, path)


def load_image(path: Path, channels: int) -> Image.Image:
    """An 8-bit Pillow image (L, LA, RGB or RGBA) for code that works in Pillow; `load_image_data` keeps 16 bits
    and any channel count."""
    image = load_image_data(path, channels)
    if image.bit_depth == 16:
        image = ImageData.from_pixels(((image.pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8))
    return image.to_pil()


def first_line(err: BaseException) -> str:
    """The first line of an error's message, or its type when it has none: decoder errors can run to pages."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _decode(path: Path, max_pixels: int) -> tuple[ImageData, int]:
    """(the image, its EXIF orientation), from Pillow when it holds the file exactly. The file is opened here, not
    by Pillow, so that closing it leaves the decoded image usable without a copy."""
    with open(path, "rb") as file:
        try:
            image = _open_header(file)
        except UnidentifiedImageError:
            if path.suffix.lower() in TIFF_EXTENSIONS:
                return _read_tiff(path, max_pixels)
            raise
        _check_pixel_count(path, *image.size, max_pixels)
        if image.format == "TIFF" and not _pillow_holds_tiff(image):
            return _read_tiff(path, max_pixels)
        if image.format == "PNG" and is_16bit_colour_png(path):
            data = ImageData.from_pixels(read_16bit_colour_png(path))
        else:
            image.load()
            data = ImageData.from_pil(decoded_as_exact_mode(image, path))
        return data, image.getexif().get(ExifTags.Base.Orientation, 1)


def _open_header(file: BinaryIO, formats: tuple[str, ...] | None = None) -> Image.Image:
    """Reads the header only, trying the decoders of `formats` (all when None). Pillow's image-bomb check reads
    a module global (PIL.Image.MAX_IMAGE_PIXELS); it is lifted here, under a lock, because `_check_pixel_count`
    applies the caller's limit instead."""
    with _PIXEL_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(file, formats=formats)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_pixel_count(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        problem = f"image bomb: {width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,}"
        raise ImageTooLarge.about(path, problem, "remove it, or raise the limit (max_pixels) if you trust it")


def _pillow_holds_tiff(image: Image.Image) -> bool:
    """Whether Pillow's mode keeps every band and bit of the TIFF (it silently drops extra bands and reads
    16-bit colour at 8 bits)."""
    samples = image.tag_v2.get(277, 1)
    bits = max(image.tag_v2.get(258, (1,)) or (1,))
    if image.mode.startswith("I;16"):
        return samples == 1 and bits == 16
    if image.mode in ("I", "F"):
        return samples == 1
    return samples == len(image.getbands()) and bits <= 8


def _read_tiff(path: Path, max_pixels: int) -> tuple[ImageData, int]:
    """Any band count at 8 or 16 bits, with `tifffile` (an optional dependency)."""
    try:
        import tifffile
    except ImportError as err:
        raise DataError.about(path, "this TIFF's bands or bit depth need the tifffile package",
                              "pip install tifffile, or save it as 8-bit grayscale, RGB or RGBA") from err
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            height, width = _tiff_height_width(series.shape, series.axes, path)
            _check_pixel_count(path, width, height, max_pixels)
            pixels = series.asarray()
            orientation = int(tif.pages[0].tags.valueof(274, 1))
    except tifffile.TiffFileError as err:
        raise DataError.about(path, f"cannot decode TIFF ({first_line(err)})",
                              "the file is damaged or truncated: replace it with a complete copy or remove it") from err
    if pixels.dtype not in (np.uint8, np.uint16):
        pixels = as_16bit(pixels, path)
    return ImageData.from_pixels(_channels_last(pixels, series.axes)), orientation


def _tiff_height_width(shape: tuple[int, ...], axes: str, path: Path) -> tuple[int, int]:
    if axes in ("YX", "YXS") or len(axes) == 3 and axes[0] in _TIFF_CHANNEL_AXES and axes[1:] == "YX":
        index = axes.index("Y")
        return shape[index], shape[index + 1]
    raise DataError.about(path, f"a TIFF of axes {axes} {shape} is not one image of channels",
                          "save one image per file, channels as samples or pages")


def _channels_last(pixels: np.ndarray, axes: str) -> np.ndarray:
    if axes == "YX":
        return pixels[:, :, None]
    return pixels if axes == "YXS" else np.moveaxis(pixels, 0, -1)
