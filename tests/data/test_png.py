"""The PNG codec: 16-bit colour read at 16 bits whatever the row filters, and PNGs written at the fast level."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix.data.reading import load_image_data
from pix2pix.data.tensors import save_image
from tests.data.conftest import png_chunk, samples


def _filtered_png16(pixels: np.ndarray) -> bytes:
    """A 16-bit colour PNG whose rows cycle through all five PNG filters, as libpng's encoders choose them."""
    height, width, channels = pixels.shape
    raw = pixels.astype(">u2").reshape(height, -1).view(np.uint8).astype(np.int32)
    bpp = 2 * channels
    up = np.vstack([np.zeros((1, raw.shape[1]), np.int32), raw[:-1]])
    left = np.hstack([np.zeros((height, bpp), np.int32), raw[:, :-bpp]])
    upper_left = np.hstack([np.zeros((height, bpp), np.int32), up[:, :-bpp]])
    estimate = left + up - upper_left
    pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - upper_left)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upper_left))
    predictions = [0, left, up, (left + up) // 2, paeth]
    rows = b"".join(bytes([y % 5]) + ((raw[y] - predictions[y % 5][y] if y % 5 else raw[y]) % 256)
                    .astype(np.uint8).tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, {2: 4, 3: 2, 4: 6}[channels], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16bit_colour_png_is_read_at_16_bits_whatever_its_row_filters(tmp_path, channels):
    pixels = samples(11, 13, channels, bits=16)
    path = tmp_path / "c16.png"
    path.write_bytes(_filtered_png16(pixels))
    assert np.array_equal(np.asarray(Image.open(path).convert("RGBA" if channels == 4 else "RGB"))[:, :, 0],
                          (pixels[:, :, 0] >> 8).astype(np.uint8))  # Pillow, at 8 bits, agrees on the file
    image = load_image_data(path)
    assert (image.channels, image.bit_depth) == (channels, 16)
    assert np.array_equal(image.pixels, pixels)


def zlib_levels(path: Path) -> set[int]:
    """The compression level class each IDAT stream declares in its zlib header: 0 fastest, 2 Pillow's default."""
    data, levels, offset = path.read_bytes(), set(), 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"IDAT" and not levels:
            levels.add(data[offset + 9] >> 6)
        offset += 12 + length
    return levels


@pytest.mark.parametrize("bits", [8, 16])
def test_pngs_are_written_at_the_fast_compression_level(tmp_path, bits):
    save_image(torch.rand(3, 32, 32) * 2 - 1, tmp_path / "out.png", bit_depth=bits)
    assert zlib_levels(tmp_path / "out.png") == {0}
