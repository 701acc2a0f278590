"""Image files to tensors in [-1, 1] and back, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class DataError(ValueError):
    """A data file that cannot be used; the message names it and says what to do."""


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def pil_mode(channels: int) -> str:
    if channels == 1:
        return "L"
    if channels == 3:
        return "RGB"
    raise DataError(f"{channels}-channel images are not supported yet: use 1 (grayscale) or 3 (RGB)")


def load_image(path: Path, channels: int) -> Image.Image:
    """Decodes fully (so truncated files fail here, not later), honours EXIF orientation, converts channels."""
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return image.convert(pil_mode(channels))
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read image ({err}); replace or remove the file") from err


def split_aligned(image: Image.Image, path: Path) -> tuple[Image.Image, Image.Image]:
    """An aligned pair file holds A in its left half and B in its right half."""
    width, height = image.size
    if width < 2:
        raise DataError(f"{path}: {width}x{height} is too narrow to hold an A|B pair side by side")
    half = width // 2
    return image.crop((0, 0, half, height)), image.crop((half, 0, 2 * half, height))


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image -> float tensor C x H x W in [-1, 1], the range of the generator's tanh."""
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.transpose(2, 0, 1).copy()).div_(127.5).sub_(1.0)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """C x H x W tensor in [-1, 1] -> 8-bit PIL image (RGB or L)."""
    array = tensor.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).numpy()
    array = array.transpose(1, 2, 0)
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
