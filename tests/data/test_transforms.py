"""The paired jitter: one random draw of resize, crop and mirror, applied the same way to both images."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from PIL import Image, ImageOps

from pix2pix.config import DataConfig
from pix2pix.data.transforms import Jitter, apply_jitter, evaluation_jitter, sample_jitter

SMALL = DataConfig(load_size=36, crop_size=32)


def _pattern(width: int = 48, height: int = 40) -> Image.Image:
    """An asymmetric picture: red ramps left to right, green top to bottom, blue marks one corner."""
    y, x = np.mgrid[0:height, 0:width]
    array = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), ((x < 10) & (y < 6)) * 255], axis=-1)
    return Image.fromarray(array.astype(np.uint8), "RGB")


def _config(**changes) -> DataConfig:
    return dataclasses.replace(SMALL, **changes)


def test_paper_jitter_resizes_then_crops_within_bounds():
    for seed in range(50):
        jitter = sample_jitter(SMALL, 48, 40, random.Random(seed))
        assert jitter.size == (36, 36)
        left, top, side = jitter.crop
        assert side == 32 and 0 <= left <= 4 and 0 <= top <= 4


def test_paper_jitter_varies_crops_and_flips():
    draws = [sample_jitter(SMALL, 48, 40, random.Random(seed)) for seed in range(200)]
    assert {d.crop[0] for d in draws} == set(range(5))
    assert {d.crop[1] for d in draws} == set(range(5))
    flips = sum(d.flip for d in draws)
    assert 60 < flips < 140


def test_same_random_state_gives_the_same_jitter():
    assert sample_jitter(SMALL, 48, 40, random.Random("0/3/7")) == sample_jitter(SMALL, 48, 40, random.Random("0/3/7"))


def test_no_flip_when_flip_is_off():
    config = _config(flip=False)
    assert not any(sample_jitter(config, 48, 40, random.Random(seed)).flip for seed in range(50))


def test_jitter_output_has_the_crop_size():
    image = _pattern()
    out = apply_jitter(image, sample_jitter(SMALL, *image.size, random.Random(1)))
    assert out.size == (32, 32)


def test_jitter_is_applied_identically_to_both_images():
    image = _pattern()
    for seed in range(10):
        jitter = sample_jitter(SMALL, *image.size, random.Random(seed))
        assert np.array_equal(np.asarray(apply_jitter(image, jitter)), np.asarray(apply_jitter(image.copy(), jitter)))


def test_apply_jitter_resizes_crops_and_mirrors_in_that_order():
    image = _pattern()
    out = apply_jitter(image, Jitter((36, 36), (3, 1, 32), True))
    expected = ImageOps.mirror(image.resize((36, 36), Image.Resampling.BICUBIC).crop((3, 1, 35, 33)))
    assert np.array_equal(np.asarray(out), np.asarray(expected))


def test_flip_mirrors_left_and_right():
    image = _pattern(32, 32)
    out = np.asarray(apply_jitter(image, Jitter(None, None, True)))
    assert np.array_equal(out, np.asarray(image)[:, ::-1])
    assert out[0, -1, 2] == 255 and out[0, 0, 2] == 0  # the marked corner moved to the right


def test_identity_jitter_keeps_the_image():
    image = _pattern()
    assert np.array_equal(np.asarray(apply_jitter(image, Jitter(None, None, False))), np.asarray(image))
    assert np.array_equal(np.asarray(apply_jitter(image, Jitter(image.size, None, False))), np.asarray(image))


def test_evaluation_view_is_deterministic_and_unjittered():
    image = _pattern()
    first = evaluation_jitter(SMALL, *image.size)
    assert first == evaluation_jitter(SMALL, *image.size)
    assert first == Jitter((32, 32), None, False)
    out = apply_jitter(image, first)
    assert np.array_equal(np.asarray(out), np.asarray(image.resize((32, 32), Image.Resampling.BICUBIC)))


def test_preprocess_none_keeps_the_size():
    config = _config(preprocess="none")
    assert evaluation_jitter(config, 48, 40) == Jitter(None, None, False)
    jitter = sample_jitter(config, 48, 40, random.Random(0))
    assert jitter.size is None and jitter.crop is None


def test_preprocess_resize_has_no_crop():
    config = _config(preprocess="resize")
    jitter = sample_jitter(config, 48, 40, random.Random(0))
    assert jitter.size == (32, 32) and jitter.crop is None


def test_scale_width_and_crop_keeps_the_aspect_ratio():
    config = _config(preprocess="scale_width_and_crop", load_size=48, crop_size=32)
    jitter = sample_jitter(config, 96, 64, random.Random(0))
    assert jitter.size == (48, 32)
    left, top, side = jitter.crop
    assert 0 <= left <= 16 and top == 0 and side == 32
    tall = sample_jitter(config, 60, 90, random.Random(0))
    assert tall.size == (48, 72)
    assert apply_jitter(_pattern(60, 90), tall).size == (32, 32)
    assert evaluation_jitter(config, 96, 64) == Jitter((32, 32), (0, 0, 32), False)


@pytest.mark.parametrize("preprocess", ["resize_and_crop", "scale_width_and_crop", "resize"])
def test_every_preprocess_gives_crop_size_squares(preprocess):
    config = _config(preprocess=preprocess)
    image = _pattern(50, 38)
    for seed in range(5):
        assert apply_jitter(image, sample_jitter(config, *image.size, random.Random(seed))).size == (32, 32)
    assert apply_jitter(image, evaluation_jitter(config, *image.size)).size == (32, 32)
