"""Images the data tests share: random samples over a bit depth's whole range, and files Pillow writes."""

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)


def samples(height: int, width: int, channels: int, bits: int = 8) -> np.ndarray:
    """Distinct random samples over the whole range of the bit depth."""
    return RNG.integers(0, 2**bits, (height, width, channels), dtype=np.uint16 if bits == 16 else np.uint8)


def save_pillow(pixels: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(path)
    return path


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(side: int = 100_000) -> bytes:
    """A few bytes whose header claims side x side pixels: decoding would take gigabytes."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))
