"""Writing at full fidelity: 8- and 16-bit PNGs and many-channel TIFFs round-trip, atomically."""

from __future__ import annotations

import numpy as np
import pytest

from pix2pix.data.images import DataError, ImageData
from pix2pix.data.reading import load_image_data
from pix2pix.data.tensors import image_to_tensor, save_image
from pix2pix.data.writing import write_image
from tests.data.conftest import samples


@pytest.mark.parametrize(("channels", "bits"), [(1, 8), (3, 8), (4, 8), (1, 16), (2, 16), (3, 16), (4, 16)])
def test_save_image_round_trips_png_at_8_and_16_bits(tmp_path, channels, bits):
    pixels = samples(9, 11, channels, bits)
    tensor = image_to_tensor(ImageData.from_pixels(pixels))
    save_image(tensor, tmp_path / "out.png", bit_depth=bits)
    back = load_image_data(tmp_path / "out.png")
    assert (back.channels, back.bit_depth) == (channels, bits)
    assert np.array_equal(back.pixels, pixels)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # written atomically, no temporary left


def test_save_image_writes_multichannel_tiff(tmp_path):
    pytest.importorskip("tifffile")
    pixels = samples(9, 11, 6, 16)
    save_image(image_to_tensor(ImageData.from_pixels(pixels)), tmp_path / "out.tif", bit_depth=16)
    assert np.array_equal(load_image_data(tmp_path / "out.tif").pixels, pixels)


def test_formats_that_cannot_hold_the_image_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"out\.jpg: .* 16 bits.*\.png or \.tif"):
        write_image(ImageData.from_pixels(samples(4, 4, 3, 16)), tmp_path / "out.jpg")
    with pytest.raises(DataError, match="PNG cannot hold 5 channels"):
        write_image(ImageData.from_pixels(samples(4, 4, 5)), tmp_path / "out.png")
    assert not list(tmp_path.iterdir())
