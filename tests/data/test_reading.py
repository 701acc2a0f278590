"""Reading at full fidelity: channels and bit depth from the file, 16-bit TIFFs, EXIF orientation, image bombs."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from pix2pix.data.images import DataError
from pix2pix.data.reading import ImageTooLarge, NotAnImage, decode_image_bytes, load_image, load_image_data
from pix2pix.data.tensors import image_to_tensor
from tests.data.conftest import bomb_png, samples, save_pillow


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_8bit_files_keep_their_channels_and_samples(tmp_path, channels, mode):
    pixels = samples(20, 24, channels)
    image = load_image_data(save_pillow(pixels, tmp_path / "x.png"))
    assert (image.channels, image.bit_depth, image.mode, image.size) == (channels, 8, mode, (24, 20))
    assert np.array_equal(image.pixels, pixels)
    tensor = image_to_tensor(image)
    assert tensor.shape == (channels, 20, 24)
    assert torch.allclose(tensor, torch.from_numpy(pixels.transpose(2, 0, 1) / 127.5 - 1).float(), atol=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_grayscale_keeps_16_bits_and_maps_by_65535(tmp_path, suffix):
    pixels = np.array([[[0], [1], [2], [32768], [65534], [65535]]], dtype=np.uint16)
    image = load_image_data(save_pillow(pixels, tmp_path / f"g16{suffix}"))
    assert (image.channels, image.bit_depth) == (1, 16)
    assert np.array_equal(image.pixels, pixels)
    tensor = image_to_tensor(image).flatten()
    assert tensor[0] == -1 and tensor[-1] == 1
    assert len(set(tensor.tolist())) == 6  # 0, 1 and 2 stay apart: nothing was cut to 8 bits


def test_16bit_rgb_tiff_and_multiband_tiffs(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    cases = {"rgb16": (samples(9, 10, 3, 16), "rgb"), "bands4": (samples(9, 10, 4), "minisblack"),
             "bands5_16": (samples(9, 10, 5, 16), "minisblack")}
    for name, (pixels, photometric) in cases.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", pixels, photometric=photometric, planarconfig="contig")
        image = load_image_data(tmp_path / f"{name}.tif")
        assert np.array_equal(image.pixels, pixels), name
    planar = samples(9, 10, 4)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(planar, 2, 0), photometric="minisblack",
                     planarconfig="separate")
    assert np.array_equal(load_image_data(tmp_path / "planar.tif").pixels, planar)
    damaged = tmp_path / "bands5_16.tif"
    damaged.write_bytes(damaged.read_bytes()[:300])
    with pytest.raises(DataError, match=r"bands5_16\.tif: cannot decode .*truncated"):
        load_image_data(damaged)


def test_multiband_tiff_without_tifffile_says_how_to_get_it(tmp_path, monkeypatch):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "five.tif", samples(8, 8, 5), photometric="minisblack", planarconfig="contig")
    monkeypatch.setitem(__import__("sys").modules, "tifffile", None)
    with pytest.raises(DataError, match=r"five\.tif: .*pip install tifffile"):
        load_image_data(tmp_path / "five.tif")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_of_a_jpeg_is_honoured_like_pillow(tmp_path, orientation):
    y, x = np.mgrid[0:16, 0:24]
    picture = np.stack([x * 10, y * 15, ((x < 6) & (y < 4)) * 255], axis=-1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "rotated.jpg"
    Image.fromarray(picture).save(path, exif=exif, quality=95)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    image = load_image_data(path)
    assert image.size == ((24, 16) if orientation < 5 else (16, 24))
    assert np.array_equal(image.pixels, upright)


def test_image_bomb_is_refused_from_the_header_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(DataError, match=r"bomb\.png: image bomb: 100000x100000"):
        load_image_data(path)
    assert Image.MAX_IMAGE_PIXELS == before
    small = save_pillow(samples(32, 32, 3), tmp_path / "small.png")
    with pytest.raises(DataError, match="over the limit of 1,000"):
        load_image_data(small, max_pixels=1000)
    assert load_image_data(small, max_pixels=1024).size == (32, 32)


def test_bytes_decode_in_memory_as_files_do_with_the_same_limits(tmp_path):
    pixels = samples(20, 24, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    image = decode_image_bytes(buffer.getvalue(), "upload", channels=1)
    from_file = load_image_data(save_pillow(pixels, tmp_path / "x.png"), 1)
    assert image.channels == 1 and np.array_equal(image.pixels, from_file.pixels)
    with pytest.raises(ImageTooLarge, match=r"upload: image bomb: 100000x100000"):
        decode_image_bytes(bomb_png(), "upload")
    with pytest.raises(NotAnImage, match="upload: not an image"):
        decode_image_bytes(b"%PDF-1.4 not an image", "upload")
    with pytest.raises(NotAnImage):  # a format left out of `formats` is not tried
        decode_image_bytes(buffer.getvalue(), "upload", formats=("JPEG",))
    with pytest.raises(DataError, match="upload: cannot decode"):
        decode_image_bytes(buffer.getvalue()[:-40], "upload")


def test_load_image_still_gives_an_8bit_pillow_image(tmp_path):
    path = save_pillow(np.array([[[0], [257], [65535]]], dtype=np.uint16), tmp_path / "g16.png")
    image = load_image(path, 1)
    assert image.mode == "L" and np.asarray(image).tolist() == [[0, 1, 255]]
