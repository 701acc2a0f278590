"""The PNG that Pillow does not do well: 16-bit colour read at 16 bits, and 8- or 16-bit files written fast.

Pillow reads 16-bit colour PNGs at 8 bits and cannot write them, and takes about twice as long on 8 bits, choosing
a filter per row. Both are done here with Pillow's own decoder for the filters and zlib for the rest.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.data.images import DataError

PNG_COMPRESS_LEVEL = 1
"""zlib level of every PNG written (OpenCV's default): Pillow's default, 6, took 2-4x as long on 256x256 outputs
(15-27 ms against 7-9 ms) for files within 10% of the size (docs/performance.md)."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}  # PNG colour type -> channels
_PNG_FILTER_UP = 2


def is_16bit_colour_png(path: Path) -> bool:
    """From the header alone, whether Pillow would read this PNG at less than its bit depth."""
    with open(path, "rb") as file:
        header = file.read(26)
    return len(header) == 26 and header[24] == 16 and header[25] in (2, 4, 6)


def read_16bit_colour_png(path: Path) -> np.ndarray:
    """H x W x C uint16 samples. Each byte of a pixel is filtered against the same byte of its neighbours, so the
    rows split into one 8-bit grayscale image per byte, which Pillow's own decoder unfilters; the bytes then join
    back into 16-bit samples."""
    chunks = list(_chunks(path.read_bytes()))
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


def encode_png(pixels: np.ndarray) -> bytes:
    """A PNG file of H x W x C samples (C of 1 to 4, uint8 or uint16). Every row is stored as its difference from
    the row above (PNG's "Up" filter), which compresses photos about as well (docs/performance.md); samples
    big-endian as PNG stores them."""
    height, width, channels = pixels.shape
    colour = {value: key for key, value in _PNG_COLOUR_CHANNELS.items()}[channels]
    bit_depth = 16 if pixels.dtype == np.uint16 else 8
    samples = pixels.astype(">u2" if bit_depth == 16 else np.uint8).reshape(height, -1).view(np.uint8)
    rows = samples.copy()
    rows[1:] -= samples[:-1]
    filters = np.full((height, 1), _PNG_FILTER_UP, np.uint8)
    return _png_bytes(width, height, bit_depth, colour, np.hstack([filters, rows]))


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    offset = len(_PNG_SIGNATURE)
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        if len(body) < length:
            raise OSError("image file is truncated")
        yield kind, body
        offset += 12 + length


def _png_bytes(width: int, height: int, depth: int, colour: int, rows: np.ndarray) -> bytes:
    """A PNG file of rows that each start with their filter byte."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = zlib.compress(rows.tobytes(), PNG_COMPRESS_LEVEL)
    return _PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
