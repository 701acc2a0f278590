"""ImageData: channel conversions as Pillow makes them, at 8 and 16 bits, and 16 bits kept through the dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image

from pix2pix.config import ConfigError, DataConfig
from pix2pix.data.dataset import PairedDataset, detect_channels, find_pairs, image_facts, survey_pairs
from pix2pix.data.images import DataError, ImageData, can_convert, convert_channels, split_aligned
from pix2pix.data.png import encode_png
from pix2pix.data.reading import load_image_data
from pix2pix.data.tensors import image_to_tensor
from tests.data.conftest import samples, save_pillow

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
    with pytest.raises(DataError, match=r"rgb\.png: has 3 channel\(s\) but the run expects 4.*`input_nc`"):
        load_image_data(path, 4)
    assert not can_convert(5, 3) and not can_convert(1, 2) and can_convert(4, 3) and can_convert(2, 1)


def test_split_aligned_keeps_the_bit_depth():
    pixels = samples(4, 10, 3, 16)
    left, right = split_aligned(ImageData.from_pixels(pixels), Path("x.png"))
    assert np.array_equal(left.pixels, pixels[:, :5]) and np.array_equal(right.pixels, pixels[:, 5:])


def test_detect_channels_reads_them_from_every_pair_and_takes_the_majority(tmp_path):
    save_pillow(samples(8, 8, 1), tmp_path / "ab" / "A" / "x.png")
    save_pillow(samples(8, 8, 4), tmp_path / "ab" / "B" / "x.png")
    facts = survey_pairs(find_pairs(tmp_path / "ab"))
    assert detect_channels(facts) == (1, 4)
    assert detect_channels(facts, "BtoA") == (4, 1)
    for name, channels in (("a", 1), ("b", 3), ("c", 3)):  # the gray file sorts first
        save_pillow(samples(8, 16, channels), tmp_path / "aligned" / f"{name}.png")
    assert detect_channels(survey_pairs(find_pairs(tmp_path / "aligned"))) == (3, 3)
    save_pillow(samples(8, 16, 1), tmp_path / "aligned" / "d.png")
    with pytest.raises(ConfigError, match=r"split evenly .*\(2 file\(s\) of 1 channel\(s\), 2 of 3\)"):
        detect_channels(survey_pairs(find_pairs(tmp_path / "aligned")))


def test_survey_passes_over_unreadable_files_and_names_one_when_none_can_be_read(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    save_pillow(samples(8, 16, 1), tmp_path / "b.png")
    assert [(f.channels, f.size) for f in survey_pairs(find_pairs(tmp_path))] == [((1, 1), (8, 8))]
    (tmp_path / "b.png").write_bytes(b"")
    with pytest.raises(DataError, match="a.png: empty file"):
        survey_pairs(find_pairs(tmp_path))


@pytest.mark.parametrize(("mode", "bits", "orientation"), [("L", 8, 1), ("RGBA", 8, 6), ("P", 8, 1),
                                                            ("RGB", 16, 1), ("I;16", 16, 8)])
def test_image_facts_from_the_header_are_what_loading_gives(tmp_path, mode, bits, orientation):
    channels = {"L": 1, "RGBA": 4, "P": 3, "RGB": 3, "I;16": 1}[mode]
    path = tmp_path / ("x.jpg" if orientation != 1 and mode == "RGBA" else "x.png")
    if mode == "P":
        Image.new("P", (12, 7)).save(path)
    elif bits == 16 and mode == "RGB":
        path.write_bytes(encode_png(samples(7, 12, 3, 16)))
    else:
        image = Image.fromarray(samples(7, 12, channels, bits).squeeze(-1) if channels == 1 else
                                samples(7, 12, channels, bits))
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = orientation
        (image.convert("RGB") if path.suffix == ".jpg" else image).save(path, exif=exif)
        channels = 3 if path.suffix == ".jpg" else channels
    loaded = load_image_data(path)
    assert image_facts(path) == (*loaded.size, loaded.channels) and loaded.channels == channels


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
