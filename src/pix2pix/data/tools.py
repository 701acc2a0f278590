"""Dataset tools: pair two folders, split one into train/val/test, and derive edges -> photo and
grayscale -> colour datasets from a folder of photos. Library functions only; `pix2pix data` wraps them."""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.atomic import atomic_path
from pix2pix.data.dataset import files_by_stem, images_in
from pix2pix.data.images import IMAGE_EXTENSIONS, DataError
from pix2pix.data.reading import READ_ERRORS, load_image
from pix2pix.data.writing import save_pil

SIZE_MISMATCH = ("fail", "resize-b", "resize-a", "skip")
SPLITS = ("train", "val", "test")
UNPAIRED_LIST = "unpaired.txt"
EDGES_EXTRA = 'pip install "pix2pix[edges]"'
_ORIENTATION_TAG = 0x0112
_ROTATED_QUARTER = {5, 6, 7, 8}  # EXIF orientations that swap width and height

EdgeDetector = Callable[[np.ndarray, float], np.ndarray]
"""Grayscale image H x W in [0, 1] and Gaussian sigma -> boolean edge map H x W."""


@dataclass(frozen=True)
class CombineResult:
    """What `combine_folders` wrote, and what it left out or changed, for the command to report."""

    written: int
    unpaired: list[Path]
    mismatched: list[str]  # "name: A WxH, B WxH" for every pair whose sizes differed
    unpaired_list: Path | None  # OUT/unpaired.txt when some files had no partner


@dataclass(frozen=True)
class SplitResult:
    counts: dict[str, int]
    layout: str  # "aligned" (flat A|B files) or "folders" (A/ and B/)


@dataclass(frozen=True)
class BuildResult:
    """Pairs a dataset builder wrote, and the photos it could not read (each message names the file)."""

    written: int
    failed: list[str]


# ---------------------------------------------------------------------------------------------------------
# Files


def oriented_size(path: Path) -> tuple[int, int]:
    """(width, height) as `load_image` will see it after EXIF rotation, read without decoding the pixels."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            rotated = image.getexif().get(_ORIENTATION_TAG) in _ROTATED_QUARTER
    except READ_ERRORS as err:
        raise DataError(f"{path}: cannot read image ({err}); replace or remove the file") from err
    return (height, width) if rotated else (width, height)


def save_png(image: Image.Image, path: Path) -> None:
    """Atomic, so an interrupted tool never leaves a truncated image that training would trip over later."""
    with atomic_path(path) as tmp:
        save_pil(image, tmp)


def copy_file(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def side_by_side(a: Image.Image, b: Image.Image) -> Image.Image:
    """The aligned A|B layout of the paper's datasets: A in the left half, B in the right."""
    pair = Image.new(a.mode, (a.width + b.width, a.height))
    pair.paste(a, (0, 0))
    pair.paste(b, (a.width, 0))
    return pair


def _refuse_writing_into(targets: list[Path], sources: list[Path]) -> None:
    """Writing into a source folder would overwrite the photos being read."""
    for target in targets:
        for source in sources:
            if Path(target).resolve() == Path(source).resolve():
                raise DataError(f"{target}: is also an input folder, so its files would be overwritten; "
                                "choose another output folder")


def _check_size(size: int) -> None:
    if size < 1:
        raise DataError(f"size must be a positive number of pixels, got {size}")


def _format_size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


# ---------------------------------------------------------------------------------------------------------
# combine: A/ and B/ folders -> aligned A|B files (or clean A/ and B/ copies)


def combine_folders(a_dir: Path, b_dir: Path, out: Path, *, folders: bool = False,
                    size_mismatch: str = "fail") -> CombineResult:
    """Pairs files of A_DIR and B_DIR by name (extension may differ) into OUT/NAME.png as A|B (8-bit RGB), or
    with `folders` into OUT/A and OUT/B copies that keep every file as it is. `size_mismatch` says what to do
    when A and B differ in size: `fail` (nothing is written), `resize-b`/`resize-a` (bicubic, to the other's
    size) or `skip` the pair."""
    if size_mismatch not in SIZE_MISMATCH:
        raise DataError(f"size_mismatch {size_mismatch!r}: choose from {', '.join(SIZE_MISMATCH)}")
    out = Path(out)
    _refuse_writing_into([out / "A", out / "B"] if folders else [out], [a_dir, b_dir])
    a_files, b_files = files_by_stem(a_dir), files_by_stem(b_dir)
    names = sorted(a_files.keys() & b_files.keys())
    if not names:
        raise DataError(f"{a_dir} and {b_dir}: no file names in common, so nothing pairs; a pair is two files "
                        "of the same name (the extension may differ)")
    unpaired = sorted([a_files[n] for n in a_files.keys() - b_files.keys()]
                      + [b_files[n] for n in b_files.keys() - a_files.keys()])
    sizes = {name: (oriented_size(a_files[name]), oriented_size(b_files[name])) for name in names}
    mismatched = [name for name in names if sizes[name][0] != sizes[name][1]]
    described = [f"{n}: A {_format_size(sizes[n][0])}, B {_format_size(sizes[n][1])}" for n in mismatched]
    if mismatched and size_mismatch == "fail":
        raise DataError(_mismatch_message(a_dir, b_dir, described))
    out.mkdir(parents=True, exist_ok=True)
    differing = set(mismatched)
    kept = [name for name in names if not (size_mismatch == "skip" and name in differing)]
    for name in kept:
        if folders:
            _write_pair_folders(a_files[name], b_files[name], out, name, size_mismatch, name in differing)
        else:
            _write_pair_aligned(a_files[name], b_files[name], out / f"{name}.png", size_mismatch)
    return CombineResult(len(kept), unpaired, described, _write_unpaired_list(out, unpaired))


def _mismatch_message(a_dir: Path, b_dir: Path, described: list[str]) -> str:
    shown = "; ".join(described[:10]) + ("; ..." if len(described) > 10 else "")
    return (f"{a_dir} and {b_dir}: {len(described)} pair(s) differ in size ({shown}). Nothing was written. "
            "Choose `size_mismatch` resize-b (B to A's size), resize-a (A to B's size) or skip (leave them out)")


def _matched(a: Image.Image, b: Image.Image, size_mismatch: str) -> tuple[Image.Image, Image.Image]:
    """A and B at one size: the policy names the one resized (bicubic) to the other's size."""
    if a.size == b.size:
        return a, b
    if size_mismatch == "resize-a":
        return a.resize(b.size, Image.Resampling.BICUBIC), b
    return a, b.resize(a.size, Image.Resampling.BICUBIC)


def _write_pair_aligned(a_path: Path, b_path: Path, target: Path, size_mismatch: str) -> None:
    a, b = _matched(load_image(a_path, 3), load_image(b_path, 3), size_mismatch)
    save_png(side_by_side(a, b), target)


def _write_pair_folders(a_path: Path, b_path: Path, out: Path, name: str, size_mismatch: str,
                        mismatched: bool) -> None:
    """Files are copied byte for byte; only the one resized to its partner is re-encoded (as PNG)."""
    if not mismatched:
        copy_file(a_path, out / "A" / a_path.name)
        copy_file(b_path, out / "B" / b_path.name)
        return
    a, b = _matched(load_image(a_path, 3), load_image(b_path, 3), size_mismatch)
    if size_mismatch == "resize-a":
        save_png(a, out / "A" / f"{name}.png")
        copy_file(b_path, out / "B" / b_path.name)
    else:
        copy_file(a_path, out / "A" / a_path.name)
        save_png(b, out / "B" / f"{name}.png")


def _write_unpaired_list(out: Path, unpaired: list[Path]) -> Path | None:
    if not unpaired:
        return None
    listing = out / UNPAIRED_LIST
    with atomic_path(listing) as tmp:
        tmp.write_text("".join(f"{path}\n" for path in unpaired))
    return listing


# ---------------------------------------------------------------------------------------------------------
# split: one flat folder -> train/, val/, test/


def split_dataset(folder: Path, *, val: float = 0.1, test: float = 0.1, seed: int = 0,
                  copy: bool = False) -> SplitResult:
    """Moves (or copies) the aligned files of FOLDER, or the pairs of FOLDER/A and FOLDER/B, into
    FOLDER/train, val and test. The split depends only on the file names and the seed."""
    folder = Path(folder)
    _check_fractions(val, test)
    existing = [f"{split}/" for split in SPLITS if (folder / split).exists()]
    if existing:
        raise DataError(f"{folder}: already has {', '.join(existing)}, so it looks split; move those files back "
                        "into one folder to split it again")
    layout = "folders" if (folder / "A").is_dir() and (folder / "B").is_dir() else "aligned"
    units = _pairs_of_folders(folder) if layout == "folders" else {p.name: [p] for p in images_in(folder)}
    if not units:
        raise DataError(f"{folder}: no images to split (expected aligned A|B files, or A/ and B/ folders)")
    assignment = _assign_splits(sorted(units), val, test, seed, folder)
    place = shutil.copy2 if copy else os.replace
    for split, names in assignment.items():
        for name in names:
            for source in units[name]:
                target = folder / split / source.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                place(source, target)
    if layout == "folders" and not copy:
        _remove_if_empty(folder / "A", folder / "B")
    return SplitResult({split: len(names) for split, names in assignment.items()}, layout)


def _check_fractions(val: float, test: float) -> None:
    if val < 0 or test < 0 or val + test >= 1:
        raise DataError(f"`val` {val} and `test` {test}: each must be >= 0 and together < 1, so that training "
                        "keeps some images")


def _pairs_of_folders(folder: Path) -> dict[str, list[Path]]:
    """A and B files of one name move together; a file without its partner stops the split."""
    a_files, b_files = files_by_stem(folder / "A"), files_by_stem(folder / "B")
    lonely = sorted(a_files.keys() ^ b_files.keys())
    if lonely:
        raise DataError(f"{folder}: {len(lonely)} file(s) in A/ or B/ have no partner, e.g. {', '.join(lonely[:5])}; "
                        "add or remove them first (`pix2pix data combine A B OUT --folders` lists them)")
    return {name: [a_files[name], b_files[name]] for name in a_files}


def _assign_splits(names: list[str], val: float, test: float, seed: int, folder: Path) -> dict[str, list[str]]:
    """Shuffles the sorted names with the seed, then cuts test, val and the rest (train)."""
    n_val, n_test = round(len(names) * val), round(len(names) * test)
    if n_val + n_test >= len(names):
        raise DataError(f"{folder}: {len(names)} image(s) are too few for `val` {val} and `test` {test}: "
                        "no training images would be left; lower the fractions")
    order = list(names)
    random.Random(seed).shuffle(order)
    return {"train": sorted(order[n_test + n_val:]), "val": sorted(order[n_test:n_test + n_val]),
            "test": sorted(order[:n_test])}


def _remove_if_empty(*folders: Path) -> None:
    for folder in folders:
        if not any(folder.iterdir()):
            folder.rmdir()


# ---------------------------------------------------------------------------------------------------------
# edges and grayscale: a folder of photos -> a paired dataset


def find_canny() -> EdgeDetector:
    """scikit-image's Canny (the `edges` extra), else OpenCV's, whichever is installed."""
    if importlib.util.find_spec("skimage") is not None:
        return _skimage_canny
    if importlib.util.find_spec("cv2") is not None:
        return _opencv_canny
    raise DataError(f"edge maps need a Canny edge detector and neither scikit-image nor OpenCV is installed: "
                    f"{EDGES_EXTRA}")


def _skimage_canny(gray: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.feature import canny

    return canny(gray, sigma=sigma)


def _opencv_canny(gray: np.ndarray, sigma: float) -> np.ndarray:
    """scikit-image's defaults in OpenCV's units: the same Sobel gradient, thresholds 0.1 and 0.2 of 255."""
    import cv2

    smoothed = cv2.GaussianBlur(np.round(gray * 255).astype(np.uint8), (0, 0), sigma)
    return cv2.Canny(smoothed, 25.5, 51.0, L2gradient=True) > 0


def remove_small_edges(edges: np.ndarray, min_pixels: int) -> np.ndarray:
    """Drops 8-connected edge fragments of fewer than `min_pixels` pixels: texture and noise, not outlines."""
    if min_pixels <= 1 or not edges.any():
        return edges
    labels = _label_components(edges)
    keep = np.bincount(labels.ravel()) >= min_pixels
    keep[0] = False
    return keep[labels]


def _label_components(edges: np.ndarray) -> np.ndarray:
    """Component ids (0 = background) of an edge map; scipy when installed, else a flood fill."""
    try:
        from scipy import ndimage
    except ImportError:
        return _flood_fill_labels(edges)
    return ndimage.label(edges, structure=np.ones((3, 3), dtype=bool))[0]


def _flood_fill_labels(edges: np.ndarray) -> np.ndarray:
    labels = np.zeros(edges.shape, dtype=np.int32)
    height, width = edges.shape
    count = 0
    for start in zip(*np.nonzero(edges)):
        if labels[start]:
            continue
        count += 1
        labels[start] = count
        stack = [start]
        while stack:
            y, x = stack.pop()
            for ny in range(max(y - 1, 0), min(y + 2, height)):
                for nx in range(max(x - 1, 0), min(x + 2, width)):
                    if edges[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = count
                        stack.append((ny, nx))
    return labels


def edge_sketch(photo: Image.Image, *, sigma: float = 2.0, min_edge_pixels: int = 10,
                detector: EdgeDetector | None = None) -> Image.Image:
    """Black edges on white (RGB), like the edges2shoes inputs: Canny, then small fragments removed."""
    gray = np.asarray(photo.convert("L"), dtype=np.float32) / 255.0
    edges = remove_small_edges((detector or find_canny())(gray, sigma), min_edge_pixels)
    return Image.fromarray(np.where(edges, 0, 255).astype(np.uint8)).convert("RGB")


def make_edges_dataset(src: Path, out: Path, *, size: int = 256, sigma: float = 2.0,
                       min_edge_pixels: int = 10) -> BuildResult:
    """OUT/NAME.png = edges | photo for every photo in SRC, both resized to size x size (bicubic)."""
    detector = find_canny()

    def write(photo: Image.Image, name: str) -> None:
        sketch = edge_sketch(photo, sigma=sigma, min_edge_pixels=min_edge_pixels, detector=detector)
        save_png(side_by_side(sketch, photo), Path(out) / f"{name}.png")

    return _build_from_photos(src, out, size, write)


def make_grayscale_dataset(src: Path, out: Path, *, size: int = 256, channels: int = 3) -> BuildResult:
    """Colorization pairs: A is the photo's luma (Pillow's ITU-R 601 "L"), B the colour photo, both resized to
    size x size. 3 channels: aligned OUT/NAME.png; 1 channel: OUT/A and OUT/B, since one aligned file holds
    one channel count (train with --input-nc 1)."""
    if channels not in (1, 3):
        raise DataError(f"channels {channels}: choose 1 (A as a one-channel image) or 3 (three equal channels)")
    out = Path(out)

    def write(photo: Image.Image, name: str) -> None:
        gray = photo.convert("L")
        if channels == 3:
            save_png(side_by_side(gray.convert("RGB"), photo), out / f"{name}.png")
        else:
            save_png(gray, out / "A" / f"{name}.png")
            save_png(photo, out / "B" / f"{name}.png")

    return _build_from_photos(src, out, size, write)


def _build_from_photos(src: Path, out: Path, size: int, write: Callable[[Image.Image, str], None]) -> BuildResult:
    """Loads every photo of SRC as RGB at size x size and hands it to `write`; unreadable photos are reported
    and skipped, so one bad file does not stop a long run."""
    _check_size(size)
    _refuse_writing_into([out, Path(out) / "A", Path(out) / "B"], [src])
    photos = files_by_stem(src)
    if not photos:
        raise DataError(f"{src}: no photos found ({', '.join(IMAGE_EXTENSIONS)})")
    Path(out).mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    for name, path in sorted(photos.items()):
        try:
            photo = load_image(path, 3)
        except DataError as err:
            failed.append(str(err))
            continue
        write(photo.resize((size, size), Image.Resampling.BICUBIC), name)
    return BuildResult(len(photos) - len(failed), failed)
