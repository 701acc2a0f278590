"""Images as the file holds them (`ImageData`): any channel count, 8 or 16 bits per sample, and the channel
conversions that have a meaning.

Pillow holds what it can exactly; `pix2pix.data.reading` fills in what it cannot (extra bands, 16-bit colour) and
`pix2pix.data.writing` writes it back. No torch here: `pix2pix.data.tensors` turns images into tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
TIFF_EXTENSIONS = (".tif", ".tiff")

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
    return ImageData.from_pil(decoded_as_exact_mode(image, Path(getattr(image, "filename", "") or "image")))


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def pil_mode(channels: int) -> str:
    if channels not in _MODES_8BIT:
        raise DataError(f"{channels}-channel images have no Pillow mode: pass tensors, or translate files")
    return _MODES_8BIT[channels]


def decoded_as_exact_mode(image: Image.Image, path: Path) -> Image.Image:
    """8-bit grayscale or colour, with alpha when the file has it, or 16-bit grayscale (I;16 in any byte order)."""
    if image.mode in _MODES_8BIT.values() or image.mode.startswith("I;16"):
        return image
    if image.mode in ("I", "F"):
        return Image.fromarray(as_16bit(np.asarray(image), path))
    return image.convert("RGBA" if "transparency" in image.info else _AS_8BIT.get(image.mode, "RGB"))


def as_16bit(values: np.ndarray, path: Path) -> np.ndarray:
    """32-bit samples are taken as 16-bit when they are whole numbers in 0..65535 (Pillow widens some 16-bit
    files to 32 bits); any other range has no fixed scale to map to [-1, 1]."""
    if values.size and (values.min() < 0 or values.max() > 65535 or not np.array_equal(values, np.round(values))):
        raise DataError.about(path, f"{values.dtype} samples outside whole numbers 0..65535 have no fixed range",
                              "save it as 8- or 16-bit integers")
    return values.astype(np.uint16)


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
                              f"convert the file, or train with {have} channel(s) (`input_nc`, `output_nc`)")
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
