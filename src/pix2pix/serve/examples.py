"""A few inputs of the run's own dataset for the page to start from, so a visitor sees a translation at once and
draws over a real example: the first pairs of its test split (else val, else train), the input side, at the crop
size, as 8-bit PNGs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.config import RunConfig
from pix2pix.data.dataset import Pair, find_pairs, split_folder
from pix2pix.data.images import DataError, ImageData, convert_channels, split_aligned
from pix2pix.data.reading import load_image_data

EXAMPLES = 6
SPLITS = ("test", "val", "train")


def dataset_examples(config: RunConfig, label_maps: bool, count: int = EXAMPLES) -> list[bytes]:
    """PNGs of up to `count` inputs, resized to the crop size (nearest neighbour for label maps, which must keep
    their exact colours); none when the run's dataset is not here or cannot be read."""
    root = Path(config.data.data)
    if not config.data.data or not root.is_dir():
        return []
    resample = Image.Resampling.NEAREST if label_maps else Image.Resampling.LANCZOS
    for split in SPLITS:
        folder = split_folder(root, split)
        if folder is None:
            continue
        try:
            inputs = [input_of(pair, config) for pair in find_pairs(folder, config.data.layout)[:count]]
        except DataError:
            continue
        return [browser_png(image, config.data.crop_size, resample) for image in inputs]
    return []


def input_of(pair: Pair, config: RunConfig) -> ImageData:
    """The pair's input side in the run's direction and input channels."""
    if pair.b is None:
        a, b = split_aligned(load_image_data(pair.a), pair.a)
    else:
        a, b = load_image_data(pair.a), load_image_data(pair.b)
    source, path = (a, pair.a) if config.data.direction == "AtoB" else (b, pair.b or pair.a)
    return convert_channels(source, config.channels[0], path)


def browser_png(image: ImageData, size: int, resample: Image.Resampling) -> bytes:
    """8 bits a sample, `size` x `size`: what a canvas holds."""
    pixels = image.pixels if image.bit_depth == 8 else (image.pixels >> 8).astype(np.uint8)
    picture = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).resize((size, size), resample)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()
