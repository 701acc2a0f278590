"""Image formats at full fidelity: channels and bit depth from the file, 16 bits in and out, EXIF orientation."""

from __future__ import annotations

import dataclasses
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from pix2pix.config import DataConfig
from pix2pix.data.dataset import PairedDataset, detect_channels, find_pairs
from pix2pix.data.images import (
    DataError,
    ImageData,
    can_convert,
    convert_channels,
    image_to_tensor,
    load_image,
    load_image_data,
    save_image,
    split_aligned,
    write_image,
)

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


# --- reading at full fidelity ---------------------------------------------------------------------------------


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


# --- channels -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("have", "want", "pillow"), [("RGB", 1, "L"), ("RGBA", 1, "L"), ("RGBA", 3, "RGB"),
                                                      ("L", 3, "RGB"), ("LA", 3, "RGB"), ("LA", 1, "L")])
def test_8bit_channel_conversion_is_pillows(tmp_path, have, want, pillow):
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[have]
    path = save_pillow(samples(12, 10, channels), tmp_path / "x.png")
    expected = np.asarray(Image.open(path).convert(pillow))
    assert np.array_equal(np.asarray(load_image_data(path, want)), expected)


def test_16bit_colour_converts_to_16bit_gray(tmp_path):
    gray = samples(6, 7, 1, 16)
    colour = ImageData.from_pixels(np.repeat(gray, 3, axis=2))
    converted = convert_channels(colour, 1, tmp_path / "x.png")
    assert converted.bit_depth == 16 and np.array_equal(converted.pixels, gray)


def test_meaningless_channel_changes_are_refused_naming_file_and_flag(tmp_path):
    path = save_pillow(samples(8, 8, 3), tmp_path / "rgb.png")
    with pytest.raises(DataError, match=r"rgb\.png: has 3 channel\(s\) but the run expects 4.*--input-nc"):
        load_image_data(path, 4)
    assert not can_convert(5, 3) and not can_convert(1, 2) and can_convert(4, 3) and can_convert(2, 1)


def test_load_image_still_gives_an_8bit_pillow_image(tmp_path):
    path = save_pillow(np.array([[[0], [257], [65535]]], dtype=np.uint16), tmp_path / "g16.png")
    image = load_image(path, 1)
    assert image.mode == "L" and np.asarray(image).tolist() == [[0, 1, 255]]


def test_split_aligned_keeps_the_bit_depth():
    pixels = samples(4, 10, 3, 16)
    left, right = split_aligned(ImageData.from_pixels(pixels), Path("x.png"))
    assert np.array_equal(left.pixels, pixels[:, :5]) and np.array_equal(right.pixels, pixels[:, 5:])


def test_detect_channels_reads_them_from_the_first_pair(tmp_path):
    save_pillow(samples(8, 8, 1), tmp_path / "ab" / "A" / "x.png")
    save_pillow(samples(8, 8, 4), tmp_path / "ab" / "B" / "x.png")
    pairs = find_pairs(tmp_path / "ab")
    assert detect_channels(pairs) == (1, 4)
    assert detect_channels(pairs, "BtoA") == (4, 1)
    save_pillow(samples(8, 16, 3), tmp_path / "aligned" / "y.png")
    assert detect_channels(find_pairs(tmp_path / "aligned")) == (3, 3)


# --- the training view ----------------------------------------------------------------------------------------


def test_jitter_keeps_16_bits_and_treats_every_channel_alike(tmp_path):
    """A 16-bit input stays 16-bit through resize and crop, and an alpha channel of 0 does not wipe out the
    colour channels (Pillow's RGBA resize would premultiply them)."""
    flat = np.full((40, 40, 1), 1000, dtype=np.uint16)
    save_pillow(flat, tmp_path / "ab" / "A" / "x.png")
    rgba = samples(40, 40, 4)
    rgba[:, :, 3] = 0
    save_pillow(rgba, tmp_path / "ab" / "B" / "x.png")
    config = DataConfig(load_size=36, crop_size=32)
    item = PairedDataset(find_pairs(tmp_path / "ab"), config, 1, 4, train=True)[(0, 0)]
    assert item["input"].shape == (1, 32, 32) and item["target"].shape == (4, 32, 32)
    assert torch.all(item["input"] == 1000 / 32767.5 - 1)
    red = np.asarray(Image.fromarray(rgba[:, :, 0]).resize((36, 36), Image.Resampling.BICUBIC))
    crops = [red[t:t + 32, s:s + 32] for t in range(5) for s in range(5)]
    target_red = np.rint((item["target"][0].numpy() + 1) * 127.5)
    assert any(np.array_equal(target_red, c) or np.array_equal(target_red, c[:, ::-1]) for c in crops)


def test_evaluation_view_of_8bit_rgb_is_unchanged(tmp_path):
    """8-bit RGB goes through Pillow as one image, exactly as before the format work."""
    pixels = samples(40, 80, 3)
    path = save_pillow(pixels, tmp_path / "pairs" / "p.png")
    config = dataclasses.replace(DataConfig(load_size=36, crop_size=32))
    item = PairedDataset(find_pairs(path.parent), config, 3, 3, train=False)[0]
    expected = Image.fromarray(pixels[:, :40]).resize((32, 32), Image.Resampling.BICUBIC)
    assert torch.equal(item["input"], image_to_tensor(expected))


# --- writing --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("channels", "bits"), [(1, 8), (3, 8), (4, 8), (1, 16), (2, 16), (3, 16), (4, 16)])
def test_save_image_round_trips_png_at_8_and_16_bits(tmp_path, channels, bits):
    pixels = samples(9, 11, channels, bits)
    tensor = image_to_tensor(ImageData.from_pixels(pixels))
    save_image(tensor, tmp_path / "out.png", bit_depth=bits)
    back = load_image_data(tmp_path / "out.png")
    assert (back.channels, back.bit_depth) == (channels, bits)
    assert np.array_equal(back.pixels, pixels)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # written atomically, no temporary left


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
