"""Paired jitter: the same random resize, crop and mirror applied to input and target."""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image

from pix2pix.config import DataConfig


@dataclass(frozen=True)
class Jitter:
    """One draw of the geometric transform, applied identically to both images of a pair."""

    size: tuple[int, int] | None  # (width, height) to resize to first, or None to keep
    crop: tuple[int, int, int] | None  # (left, top, side) of a square crop, or None
    flip: bool


def resized_size(config: DataConfig, width: int, height: int) -> tuple[int, int] | None:
    if config.preprocess == "resize_and_crop":
        return config.load_size, config.load_size
    if config.preprocess == "scale_width_and_crop":
        return config.load_size, max(config.crop_size, round(height * config.load_size / width))
    if config.preprocess == "resize":
        return config.crop_size, config.crop_size
    return None


def sample_jitter(config: DataConfig, width: int, height: int, rng: random.Random) -> Jitter:
    """The paper's random jitter: resize (286), random crop (256), random mirror, as the config says."""
    size = resized_size(config, width, height)
    crop = None
    if config.preprocess in ("resize_and_crop", "scale_width_and_crop"):
        w, h = size
        crop = (rng.randint(0, w - config.crop_size), rng.randint(0, h - config.crop_size), config.crop_size)
    return Jitter(size, crop, config.flip and rng.random() < 0.5)


def evaluation_jitter(config: DataConfig, width: int, height: int) -> Jitter:
    """The deterministic view used for held-out images: the crop size, no crop, no mirror."""
    if config.preprocess == "none":
        return Jitter(None, None, False)
    if config.preprocess == "scale_width_and_crop":
        return Jitter((config.crop_size, max(config.crop_size, round(height * config.crop_size / width))),
                      (0, 0, config.crop_size), False)
    return Jitter((config.crop_size, config.crop_size), None, False)


def apply_jitter(image: Image.Image, jitter: Jitter) -> Image.Image:
    if jitter.size is not None and jitter.size != image.size:
        image = image.resize(jitter.size, Image.Resampling.BICUBIC)
    if jitter.crop is not None:
        left, top, side = jitter.crop
        image = image.crop((left, top, left + side, top + side))
    if jitter.flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image
