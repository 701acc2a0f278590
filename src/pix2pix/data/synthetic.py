"""Procedural facades: the package's embedded labels -> photo dataset.

Pairs in the spirit of CMP Facades, drawn with numpy and Pillow only, so the demo and the tests need
no download and no committed images. Each sample is a colour-coded label map of a building facade
(the A half, laid out by `pix2pix.data.facade_layout`) and a "photo" rendered from it (the B half, by
`pix2pix.data.facade_photo`), so the photo is almost a function of the labels plus noise: a mapping pix2pix
can learn.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.atomic import atomic_path, write_text_atomic
from pix2pix.data.facade_layout import PALETTE, colorize_labels, layout, paint_labels
from pix2pix.data.facade_photo import render_photo
from pix2pix.data.writing import save_pil

MIN_SIZE = 32
SPLITS = ("train", "val", "test")


def render_facade(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one random facade.

    Returns (labels HxW uint8 class indices into PALETTE, photo HxWx3 uint8). All randomness comes from
    ``rng``, so a generator seeded per image makes every sample reproducible on its own.
    """
    _check_size(size)
    rects = layout(rng, size)
    labels = paint_labels(rects, size)
    return labels, render_photo(rng, rects, labels, size)


def generate_facades(
    out_dir: str | Path, *, train: int = 400, val: int = 50, test: int = 50, size: int = 256, seed: int = 0
) -> Path:
    """Write the dataset as aligned A|B PNGs (labels | photo) in out_dir/{train,val,test} plus palette.json.

    Each image uses its own generator seeded from (seed, split, index), so files are byte-identical across
    runs and do not depend on how many other images are generated. Every file is written atomically, so an
    interrupted run never leaves a truncated image behind. Returns ``out_dir`` as a Path.
    """
    _check_size(size)
    counts = {"train": train, "val": val, "test": test}
    if any(count < 0 for count in counts.values()):
        raise ValueError(f"image counts must be >= 0, got {counts}")
    out = Path(out_dir)
    for split_id, split in enumerate(SPLITS):
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(counts[split]):
            labels, photo = render_facade(np.random.default_rng([seed, split_id, index]), size)
            pair = np.concatenate([colorize_labels(labels), photo], axis=1)
            with atomic_path(folder / f"{index:04d}.png") as tmp:
                save_pil(Image.fromarray(pair), tmp)
    palette = {
        "classes": [{"name": c.name, "color": list(c.color)} for c in PALETTE],
        "size": size,
        "seed": seed,
        "counts": counts,
    }
    write_text_atomic(out / "palette.json", json.dumps(palette, indent=2) + "\n")
    return out


def _check_size(size: int) -> None:
    if size < MIN_SIZE:
        raise ValueError(f"size must be >= {MIN_SIZE} so every facade element stays visible, got {size}")
