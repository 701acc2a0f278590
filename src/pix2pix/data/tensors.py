"""ImageData to and from the tensors the networks take: C x H x W, in [-1, 1], scaled by the bit depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pix2pix.data.images import DataError, ImageData, as_image_data
from pix2pix.data.writing import write_image


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


def save_image(tensor: torch.Tensor, path: Path, bit_depth: int = 8) -> None:
    """Writes a C x H x W tensor in [-1, 1] as an 8- or 16-bit file, atomically; the format follows the suffix."""
    write_image(tensor_to_data(tensor, bit_depth), path)
