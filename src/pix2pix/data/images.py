"""Image files to tensors in [-1, 1] and back, at the file's full fidelity, with errors that name the file.

An image is kept as `ImageData`: any channel count, 8 or 16 bits per sample, values scaled by that bit depth.
Pillow reads what it can hold exactly; TIFFs it would cut down (extra bands, 16-bit colour) are read with
`tifffile` when that is installed, and 16-bit colour PNGs with the decoder below (Pillow reads them at 8 bits).
Images with more than 4 channels or 16-bit colour are written by `tifffile` (TIFF) or the encoder below (PNG).
"""

from __future__ import annotations

import io
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import torch
from PIL import ExifTags, Image, UnidentifiedImageError

from pix2pix.atomic import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
TIFF_EXTENSIONS = (".tif", ".tiff")
MAX_PIXELS = 2**28
"""Images with more pixels are refused before decoding: a small crafted file can expand to gigabytes."""

READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
"""What decoders raise on a damaged file (truncated, corrupt, lying headers)."""

PNG_COMPRESS_LEVEL = 1
"""zlib level of every PNG written (OpenCV's default): Pillow's default, 6, took 2-4x as long on 256x256 outputs
(15-27 ms against 7-9 ms) for files within 10% of the size (docs/performance.md)."""

_PIXEL_LIMIT = threading.Lock()
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}  # PNG colour type -> channels
_PNG_FILTER_UP = 2
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}  # EXIF orientation -> the transpose that displays it upright
_AS_8BIT = {"1": "L", "P": "RGB", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}
_MODES_8BIT = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # channels -> the 8-bit Pillow mode


class DataError(ValueError):
    """A data file that cannot be used; the message names it and says what to do."""

    def __init__(self, message: str, *, path: Path | None = None, problem: str = "", fix: str = "") -> None:
        super().__init__(message)
        self.path, self.problem, self.fix = path, problem, fix

    @classmethod
    def about(cls, path: Path, problem: str, fix: str) -> DataError:
        """'<file>: <problem>; <fix>' on one line, with the parts kept for reports."""
        return cls(f"{path}: {problem}; {fix}", path=Path(path), problem=problem, fix=fix)


@dataclass(frozen=True)
class ImageData:
    """An image as the file holds it: any channel count, 8 or 16 bits per sample.

    The samples live in Pillow images, so that decoding, cropping and resampling cost what they cost in Pillow:
    8-bit grayscale or RGB is one image; anything else is one image per channel (L or I;16), so that every
    channel is resampled alike (Pillow would premultiply an alpha channel) and 16 bits stay 16 bits.
    """

    layers: tuple[Image.Image, ...]

    @classmethod
    def from_pixels(cls, pixels: np.ndarray) -> ImageData:
        """From H x W x C samples, uint8 or uint16."""
        if pixels.dtype == np.uint8 and pixels.shape[2] in (1, 3):
            return cls((Image.fromarray(np.ascontiguousarray(pixels if pixels.shape[2] == 3 else pixels[:, :, 0])),))
        if pixels.dtype not in (np.uint8, np.uint16):
            raise TypeError(f"samples must be uint8 or uint16, not {pixels.dtype}")
        planes = np.ascontiguousarray(np.moveaxis(pixels, 2, 0).astype(pixels.dtype.newbyteorder("<")))
        return cls(tuple(Image.fromarray(plane) for plane in planes))

    @classmethod
    def from_pil(cls, image: Image.Image) -> ImageData:
        """From a decoded Pillow image in L, LA, RGB, RGBA or I;16 (any byte order)."""
        if image.mode in ("L", "RGB", "I;16"):
            return cls((image,))
        if image.mode in ("LA", "RGBA"):
            return cls(tuple(image.split()))
        return cls.from_pixels(np.asarray(image).astype(np.uint16)[:, :, None])

    @property
    def pixels(self) -> np.ndarray:
        """H x W x C samples, uint8 or uint16."""
        width, height = self.size
        arrays = [np.asarray(layer).reshape(height, width, -1) for layer in self.layers]
        pixels = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=2)
        return pixels.astype(np.uint16 if self.bit_depth == 16 else np.uint8, copy=False)

    @property
    def bit_depth(self) -> int:
        return 16 if self.layers[0].mode == "I;16" else 8

    @property
    def channels(self) -> int:
        return sum(len(layer.getbands()) for layer in self.layers)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow says it."""
        return self.layers[0].size

    @property
    def mode(self) -> str | None:
        """The Pillow mode that holds these samples exactly, or None (16-bit colour, more than 4 channels)."""
        if self.bit_depth == 16:
            return "I;16" if self.channels == 1 else None
        return _MODES_8BIT.get(self.channels)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        pixels = self.pixels
        array = pixels[:, :, 0] if self.channels == 1 else pixels
        return array if dtype is None else array.astype(dtype)

    def to_pil(self) -> Image.Image:
        if self.mode is None:
            raise DataError(f"{self.channels}-channel {self.bit_depth}-bit images have no Pillow mode; "
                            "work with tensors or save them with save_image")
        return self.layers[0] if len(self.layers) == 1 else Image.merge(self.mode, self.layers)

    def map_layers(self, transform: Callable[[Image.Image], Image.Image]) -> ImageData:
        """Applies a Pillow transform (resize, crop, mirror) to every channel the same way."""
        return ImageData(tuple(transform(layer) for layer in self.layers))


Picture = TypeVar("Picture", ImageData, Image.Image)


def as_image_data(image: ImageData | Image.Image) -> ImageData:
    """Pillow images are still accepted where the functions here took them before."""
    if isinstance(image, ImageData):
        return image
    return ImageData.from_pil(_decoded_as_exact_mode(image, Path(getattr(image, "filename", "") or "image")))


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def pil_mode(channels: int) -> str:
    if channels not in _MODES_8BIT:
        raise DataError(f"{channels}-channel images have no Pillow mode: pass tensors, or translate files")
    return _MODES_8BIT[channels]


# --- reading --------------------------------------------------------------------------------------------------


def load_image_data(path: Path, channels: int | None = None, max_pixels: int = MAX_PIXELS) -> ImageData:
    """The file's samples at its own bit depth, upright (EXIF orientation), fully decoded so that a truncated file
    fails here and not later; converted to `channels` when given. Every way a file can be bad is a DataError
    naming it."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DataError.about(path, "empty file (0 bytes)", "replace it with a complete copy or remove it")
        image, orientation = _decode(path, max_pixels)
    except DataError:
        raise
    except FileNotFoundError as err:
        raise DataError.about(path, "file not found", "check the path") from err
    except PermissionError as err:
        raise DataError.about(path, "cannot be read (permission denied)", "make it readable or remove it") from err
    except IsADirectoryError as err:
        raise DataError.about(path, "is a folder, not an image", "move it out of the dataset") from err
    except UnidentifiedImageError as err:
        raise DataError.about(path, "not an image (or a format Pillow cannot read)", "replace or remove it") from err
    except READ_ERRORS as err:
        raise DataError.about(path, f"cannot decode ({_first_line(err)})",
                              "the file is damaged or truncated: replace it with a complete copy or remove it") from err
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


def _first_line(err: BaseException) -> str:
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
        if image.format == "PNG" and _png_is_16bit_colour(path):
            data = ImageData.from_pixels(_read_png16(path))
        else:
            image.load()
            data = ImageData.from_pil(_decoded_as_exact_mode(image, path))
        return data, image.getexif().get(ExifTags.Base.Orientation, 1)


def _open_header(file: BinaryIO) -> Image.Image:
    """Reads the header only. Pillow's image-bomb check reads a module global (PIL.Image.MAX_IMAGE_PIXELS); it
    is lifted here, under a lock, because `_check_pixel_count` applies the caller's limit instead."""
    with _PIXEL_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(file)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_pixel_count(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise DataError.about(path, f"image bomb: {width}x{height} is {width * height:,} pixels, over the limit of "
                                    f"{max_pixels:,}", "remove it, or raise the limit (max_pixels) if you trust it")


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


def _decoded_as_exact_mode(image: Image.Image, path: Path) -> Image.Image:
    """8-bit grayscale or colour, with alpha when the file has it, or 16-bit grayscale (I;16 in any byte order)."""
    if image.mode in _MODES_8BIT.values() or image.mode.startswith("I;16"):
        return image
    if image.mode in ("I", "F"):
        return Image.fromarray(_as_16bit(np.asarray(image), path))
    return image.convert("RGBA" if "transparency" in image.info else _AS_8BIT.get(image.mode, "RGB"))


def _as_16bit(values: np.ndarray, path: Path) -> np.ndarray:
    """32-bit samples are taken as 16-bit when they are whole numbers in 0..65535 (Pillow widens some 16-bit
    files to 32 bits); any other range has no fixed scale to map to [-1, 1]."""
    if values.size and (values.min() < 0 or values.max() > 65535 or not np.array_equal(values, np.round(values))):
        raise DataError.about(path, f"{values.dtype} samples outside whole numbers 0..65535 have no fixed range",
                              "save it as 8- or 16-bit integers")
    return values.astype(np.uint16)


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
        raise DataError.about(path, f"cannot decode TIFF ({_first_line(err)})",
                              "the file is damaged or truncated: replace it with a complete copy or remove it") from err
    if pixels.dtype not in (np.uint8, np.uint16):
        pixels = _as_16bit(pixels, path)
    return ImageData.from_pixels(_channels_last(pixels, series.axes)), orientation


_TIFF_CHANNEL_AXES = ("S", "C", "I", "Q")  # tifffile's names for samples, channels, pages and unknown


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


def _png_is_16bit_colour(path: Path) -> bool:
    with open(path, "rb") as file:
        header = file.read(26)
    return len(header) == 26 and header[24] == 16 and header[25] in (2, 4, 6)


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    offset = len(_PNG_SIGNATURE)
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        if len(body) < length:
            raise OSError("image file is truncated")
        yield kind, body
        offset += 12 + length


def _read_png16(path: Path) -> np.ndarray:
    """16-bit colour PNGs, which Pillow reads at 8 bits. Each byte of a pixel is filtered against the same byte
    of its neighbours, so the rows split into one 8-bit grayscale image per byte, which Pillow's own decoder
    unfilters; the bytes then join back into 16-bit samples."""
    chunks = list(_png_chunks(path.read_bytes()))
    width, height, _, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if interlace:
        raise DataError.about(path, "interlaced 16-bit colour PNGs are not supported",
                              "save it without interlacing, or as a 16-bit TIFF")
    channels = _PNG_COLOUR_CHANNELS[colour]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + width * 2 * channels)
    filters, data = rows[:, :1], rows[:, 1:].reshape(height, width, 2 * channels)
    planes = [np.asarray(Image.open(io.BytesIO(_png_bytes(width, height, 8, 0, np.hstack([filters, data[:, :, k]])))))
              for k in range(2 * channels)]
    high, low = np.stack(planes[0::2], axis=2).astype(np.uint16), np.stack(planes[1::2], axis=2)
    return (high << 8) | low


def _png_bytes(width: int, height: int, depth: int, colour: int, rows: np.ndarray) -> bytes:
    """A PNG file of rows that each start with their filter byte."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = zlib.compress(rows.tobytes(), PNG_COMPRESS_LEVEL)
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# --- channels -------------------------------------------------------------------------------------------------


def can_convert(have: int, want: int) -> bool:
    """Grayscale and colour turn into each other and alpha can be dropped; other channel changes have no meaning."""
    return have == want or want in (1, 3) and have in (1, 2, 3, 4)


def convert_channels(image: ImageData, channels: int, path: Path) -> ImageData:
    """As Pillow converts between L, LA, RGB and RGBA (ITU-R 601 luma), at either bit depth."""
    have = image.channels
    if have == channels:
        return image
    if not can_convert(have, channels):
        raise DataError.about(path, f"has {have} channel(s) but the run expects {channels}",
                              f"convert the file, or train with {have} channel(s) (--input-nc/--output-nc)")
    pixels = image.pixels
    colour = pixels[:, :, :3] if have >= 3 else pixels[:, :, :1]
    if channels == 3:
        return ImageData.from_pixels(np.repeat(colour, 3, axis=2) if have < 3 else colour)
    if have < 3:
        return ImageData.from_pixels(colour)
    luma = ((colour.astype(np.int64) * np.array([19595, 38470, 7471])).sum(axis=2, keepdims=True) + 0x8000) >> 16
    return ImageData.from_pixels(luma.astype(pixels.dtype))


def split_aligned(image: Picture, path: Path) -> tuple[Picture, Picture]:
    """An aligned pair file holds A in its left half and B in its right half; the halves are of the kind given."""
    width, height = image.size
    if width < 2:
        raise DataError.about(path, f"{width}x{height} is too narrow to hold an A|B pair side by side",
                              "use aligned A|B files, or A/ and B/ folders")
    half = width // 2
    left, right = (0, 0, half, height), (half, 0, 2 * half, height)
    if isinstance(image, Image.Image):
        return image.crop(left), image.crop(right)
    return image.map_layers(lambda layer: layer.crop(left)), image.map_layers(lambda layer: layer.crop(right))


# --- tensors --------------------------------------------------------------------------------------------------


def image_to_tensor(image: ImageData | Image.Image) -> torch.Tensor:
    """C x H x W float tensor in [-1, 1], the range of the generator's tanh, scaled by the file's bit depth."""
    data = as_image_data(image)
    half_range = 127.5 if data.bit_depth == 8 else 32767.5
    array = np.asarray(data.pixels, dtype=np.float32)
    return torch.from_numpy(array.transpose(2, 0, 1).copy()).div_(half_range).sub_(1.0)


def tensor_to_data(tensor: torch.Tensor, bit_depth: int = 8) -> ImageData:
    """C x H x W tensor in [-1, 1] -> samples of `bit_depth` (8 or 16) bits."""
    if bit_depth not in (8, 16):
        raise DataError(f"bit depth {bit_depth} is not supported: use 8 or 16")
    dtype, half_range = (torch.uint8, 127.5) if bit_depth == 8 else (torch.int32, 32767.5)
    values = tensor.detach().float().cpu().clamp(-1, 1).add(1).mul(half_range).round().to(dtype).numpy()
    return ImageData.from_pixels(values.transpose(1, 2, 0).astype(np.uint8 if bit_depth == 8 else np.uint16))


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """C x H x W tensor in [-1, 1] -> 8-bit PIL image (L, LA, RGB or RGBA)."""
    return tensor_to_data(tensor).to_pil()


def preview_image(tensor: torch.Tensor) -> Image.Image:
    """An 8-bit RGB view of any channel count, for sample grids: grayscale as gray, else the first three channels."""
    pixels = tensor_to_data(tensor).pixels
    colour = pixels[:, :, :3] if pixels.shape[2] >= 3 else pixels[:, :, :1]
    return Image.fromarray(np.ascontiguousarray(np.repeat(colour, 3 // colour.shape[2], axis=2)), "RGB")


# --- writing --------------------------------------------------------------------------------------------------


def output_suffix(channels: int) -> str:
    """PNG holds 1 to 4 channels at 8 or 16 bits; more channels need TIFF."""
    return ".png" if channels <= 4 else ".tif"


def save_image(tensor: torch.Tensor, path: Path, bit_depth: int = 8) -> None:
    """Writes a C x H x W tensor in [-1, 1] as an 8- or 16-bit file, atomically; the format follows the suffix."""
    write_image(tensor_to_data(tensor, bit_depth), path)


def write_image(image: ImageData, path: Path) -> None:
    """PNG (1-4 channels, 8 or 16 bits), TIFF (any channels; beyond Pillow's modes with tifffile) or any other
    format Pillow writes; atomically, so a reader never sees half a file."""
    path = Path(path)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix in TIFF_EXTENSIONS and image.mode is None:
            _write_tiff(image, tmp, path)
        elif suffix == ".png":
            _write_png(image, tmp, path)
        elif image.mode is not None:
            save_pil(image.to_pil(), tmp, Image.registered_extensions().get(suffix, "PNG"))
        else:
            raise DataError.about(path, f"{path.suffix} cannot hold {image.channels} channels at "
                                        f"{image.bit_depth} bits", "write .png or .tif")


def save_pil(image: Image.Image, target: Path | BinaryIO, format: str = "PNG") -> None:
    """Pillow's save, with PNGs at the fast compression level."""
    options = {"compress_level": PNG_COMPRESS_LEVEL} if format == "PNG" else {}
    image.save(target, format=format, **options)


def _write_png(image: ImageData, tmp: Path, path: Path) -> None:
    """PNGs of 8 or 16 bits, written here: Pillow cannot write 16-bit colour, and takes about twice as long on 8
    bits, choosing a filter per row. Every row is stored as its difference from the row above (PNG's "Up" filter),
    which compresses photos about as well (docs/performance.md); samples big-endian as PNG stores them."""
    pixels = image.pixels
    height, width, channels = pixels.shape
    if channels > 4:
        raise DataError.about(path, f"PNG cannot hold {channels} channels", "write a .tif instead")
    colour = {value: key for key, value in _PNG_COLOUR_CHANNELS.items()}[channels]
    samples = pixels.astype(">u2" if image.bit_depth == 16 else np.uint8).reshape(height, -1).view(np.uint8)
    rows = samples.copy()
    rows[1:] -= samples[:-1]
    filters = np.full((height, 1), _PNG_FILTER_UP, np.uint8)
    tmp.write_bytes(_png_bytes(width, height, image.bit_depth, colour, np.hstack([filters, rows])))


def _write_tiff(image: ImageData, tmp: Path, path: Path) -> None:
    try:
        import tifffile
    except ImportError as err:
        raise DataError.about(path, f"writing a {image.channels}-channel {image.bit_depth}-bit TIFF needs tifffile",
                              "pip install tifffile") from err
    photometric = "rgb" if image.channels == 3 else "minisblack"
    tifffile.imwrite(tmp, image.pixels, photometric=photometric, planarconfig="contig")
