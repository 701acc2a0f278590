"""`pix2pix study create`: copies the real images and each model's outputs into the study folder at the display
size (PNG), so that a study is self-contained: moving or deleting the model folders changes nothing a rater sees."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pix2pix.atomic import atomic_path
from pix2pix.data.images import is_image_file
from pix2pix.data.reading import load_image
from pix2pix.data.writing import save_pil
from pix2pix.study.schedule import check_enough_images
from pix2pix.study.settings import IMAGES_DIR, LABEL, STUDY_FILE, Study, StudyError, StudySettings

BESIDE_OUTPUTS = ("_input", "_target")
"""What `translate --aligned` and `evaluate` write beside each output NAME.png: NAME_input.png, NAME_target.png."""
REPORT_FIGURES = ("losses", "colour")
"""losses.png beside `translate`'s outputs, colour.png beside `evaluate`'s: not outputs."""
BROKEN_TILES = 4


@dataclass(frozen=True)
class Created:
    """The study written, and the files of the given folders that it left out (no partner in every folder)."""

    study: Study
    left_out: int


def create_study(folder: Path, real: Path, fakes: dict[str, Path], settings: StudySettings,
                 progress: Callable[[int, int], None] | None = None) -> Created:
    """Writes FOLDER/images/... and FOLDER/study.json (last, so a folder without it is no study yet)."""
    folder = Path(folder)
    settings.check()
    if (folder / STUDY_FILE).exists():
        raise StudyError(f"{folder / STUDY_FILE}: a study exists here already (its answers would no longer match "
                         "its images); choose another folder")
    real_files, fake_files, left_out = _inputs(real, fakes, settings.paired)
    check_enough_images(settings, list(real_files), {label: list(files) for label, files in fake_files.items()})
    broken = {name: f"{IMAGES_DIR}/broken/{name}.png" for name in real_files} if settings.catch else {}
    jobs = [(path, f"{IMAGES_DIR}/real/{name}.png", broken.get(name)) for name, path in real_files.items()]
    jobs += [(path, f"{IMAGES_DIR}/fake/{label}/{name}.png", None)
             for label, files in fake_files.items() for name, path in files.items()]
    for done, (source, target, broken_target) in enumerate(jobs, 1):
        image = _display_image(source, settings.size)
        _write(image, folder / target)
        if broken_target:
            _write(broken_image(image, settings.seed), folder / broken_target)
        if progress:
            progress(done, len(jobs))
    study = Study(folder, settings, {name: f"{IMAGES_DIR}/real/{name}.png" for name in real_files},
                  {label: {name: f"{IMAGES_DIR}/fake/{label}/{name}.png" for name in files}
                   for label, files in fake_files.items()}, broken, uuid.uuid4().hex)
    study.save()
    return Created(study, left_out)


def parse_fake(text: str) -> tuple[str, Path]:
    """LABEL=DIR, with a label that can name a folder and a URL path segment."""
    label, sep, folder = text.partition("=")
    if not sep or not folder or not LABEL.match(label):
        raise StudyError(f"`fake` {text!r}: give LABEL=DIR, LABEL of letters, digits and _ . + - (e.g. L1+cGAN=out)")
    return label, Path(folder)


def images_by_name(folder: Path, role: str) -> dict[str, Path]:
    """A folder's images by name without extension, but for the figures of `translate`'s and `evaluate`'s reports.
    Where the folder has NAME_input.* or NAME_target.* files (`translate --aligned`, `evaluate`), the fakes are the
    NAME.* that have them and the real images the NAME_target.* files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StudyError(f"{folder}: `{role}` folder not found")
    files = sorted(path for path in folder.iterdir() if path.is_file() and is_image_file(path)
                   and path.stem not in REPORT_FIGURES)
    beside = {path.stem.removesuffix(suffix): suffix for path in files for suffix in BESIDE_OUTPUTS
              if path.stem.endswith(suffix)}
    if role == "real" and "_target" in beside.values():
        named = [(path.stem.removesuffix("_target"), path) for path in files if path.stem.endswith("_target")]
    else:
        named = [(path.stem, path) for path in files if not path.stem.endswith(BESIDE_OUTPUTS)
                 and (not beside or path.stem in beside)]
    chosen = dict(named)
    if len(chosen) < len(named):
        twice = sorted(name for name, count in Counter(name for name, _ in named).items() if count > 1)
        raise StudyError(f"{folder}: several images named {twice[0]!r} (without extension); rename or remove one")
    if not chosen:
        raise StudyError(f"{folder}: no images for `{role}`")
    return chosen


def broken_image(image: Image.Image, seed: int) -> Image.Image:
    """The catch trials' fake: the real image cut into tiles, shuffled and colour-inverted, broken at a glance."""
    pixels = np.asarray(image)
    rows = np.array_split(np.arange(pixels.shape[0]), BROKEN_TILES)
    cols = np.array_split(np.arange(pixels.shape[1]), BROKEN_TILES)
    tiles = [pixels[np.ix_(r, c)] for r in rows for c in cols]
    order = list(range(len(tiles)))
    while order == sorted(order):
        random.Random(seed).shuffle(order)
        seed += 1
    grid = [np.concatenate([tiles[order[i * BROKEN_TILES + j]] for j in range(BROKEN_TILES)], axis=1)
            for i in range(BROKEN_TILES)]
    return Image.fromarray(255 - np.concatenate(grid, axis=0))


def _inputs(real: Path, fakes: dict[str, Path], paired: bool) -> tuple[dict, dict[str, dict], int]:
    """The real and fake files the study uses: fakes of the inputs every model has, so that conditions compare
    on the same inputs, and for --paired only inputs with a real image too."""
    if not fakes:
        raise StudyError("a study needs at least one `fake` LABEL=DIR")
    reals = images_by_name(real, "real")
    by_label = {label: images_by_name(folder, "fake") for label, folder in fakes.items()}
    common = set.intersection(*(set(files) for files in by_label.values()))
    if paired:
        common &= set(reals)
        reals_used = {name: reals[name] for name in sorted(common)}
    else:
        reals_used = reals
    if not common:
        raise StudyError(f"{', '.join(str(folder) for folder in fakes.values())}: no input name in common to every "
                         f"`fake` folder{' and the `real` folder' if paired else ''}")
    used = {label: {name: files[name] for name in sorted(common)} for label, files in by_label.items()}
    left_out = len(reals) - len(reals_used) + sum(len(files) - len(common) for files in by_label.values())
    return reals_used, used, left_out


def _display_image(path: Path, size: int) -> Image.Image:
    """RGB at size x size: centre-cropped to a square first (ImageOps.fit), so nothing is stretched."""
    image = load_image(path, 3)
    return ImageOps.fit(image, (size, size), Image.Resampling.LANCZOS)


def _write(image: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        save_pil(image, tmp)
