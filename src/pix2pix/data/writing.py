"""`ImageData` to files at full fidelity, atomically, so that a reader never sees half a file.

PNG holds 1 to 4 channels at 8 or 16 bits (written by `pix2pix.data.png`); more channels, or 16-bit colour in
a TIFF, are written by `tifffile`; anything else by Pillow.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from PIL import Image

from pix2pix.atomic import atomic_path
from pix2pix.data.images import TIFF_EXTENSIONS, DataError, ImageData
from pix2pix.data.png import PNG_COMPRESS_LEVEL, encode_png


def output_suffix(channels: int) -> str:
    """PNG holds 1 to 4 channels at 8 or 16 bits; more channels need TIFF."""
    return ".png" if channels <= 4 else ".tif"


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
    """PNGs of 8 or 16 bits, written by `encode_png`: Pillow cannot write 16-bit colour, and is slower on 8 bits."""
    if image.channels > 4:
        raise DataError.about(path, f"PNG cannot hold {image.channels} channels", "write a .tif instead")
    tmp.write_bytes(encode_png(image.pixels))


def _write_tiff(image: ImageData, tmp: Path, path: Path) -> None:
    try:
        import tifffile
    except ImportError as err:
        raise DataError.about(path, f"writing a {image.channels}-channel {image.bit_depth}-bit TIFF needs tifffile",
                              "pip install tifffile") from err
    photometric = "rgb" if image.channels == 3 else "minisblack"
    tifffile.imwrite(tmp, image.pixels, photometric=photometric, planarconfig="contig")
