"""The procedural facades dataset: files on disk, determinism, exact label colours and learnable photos."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data.facade_layout import PALETTE, FacadeClass, colorize_labels, labels_from_colors
from pix2pix.data.synthetic import generate_facades, render_facade

SIZE = 48
COUNTS = {"train": 4, "val": 2, "test": 2}
CLASS_ID = {c.name: i for i, c in enumerate(PALETTE)}


def _generate(out_dir: Path, seed: int = 3) -> Path:
    return generate_facades(out_dir, **COUNTS, size=SIZE, seed=seed)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _halves(path: Path) -> tuple[np.ndarray, np.ndarray]:
    pair = np.asarray(Image.open(path).convert("RGB"))
    width = pair.shape[1] // 2
    return pair[:, :width], pair[:, width:]


def _samples(count: int, size: int = SIZE) -> list[tuple[np.ndarray, np.ndarray]]:
    return [render_facade(np.random.default_rng([11, i]), size) for i in range(count)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("facades"))


def test_writes_aligned_pairs_per_split(dataset: Path) -> None:
    for split, count in COUNTS.items():
        names = sorted(p.name for p in (dataset / split).iterdir())
        assert names == [f"{i:04d}.png" for i in range(count)]  # also: no temp files left behind
        for name in names:
            with Image.open(dataset / split / name) as image:
                assert (image.format, image.mode, image.size) == ("PNG", "RGB", (2 * SIZE, SIZE))


def test_palette_json_describes_the_data(dataset: Path) -> None:
    meta = json.loads((dataset / "palette.json").read_text())
    assert meta["size"] == SIZE and meta["seed"] == 3 and meta["counts"] == COUNTS
    classes = [FacadeClass(c["name"], tuple(c["color"])) for c in meta["classes"]]
    assert tuple(classes) == PALETTE
    assert len({c.color for c in PALETTE}) == len(PALETTE) >= 7


def test_same_seed_gives_byte_identical_files(dataset: Path, tmp_path: Path) -> None:
    assert _files(_generate(tmp_path / "again")) == _files(dataset)


def test_images_do_not_depend_on_how_many_are_generated(dataset: Path, tmp_path: Path) -> None:
    small = generate_facades(tmp_path, train=2, val=0, test=1, size=SIZE, seed=3)
    for name in ("train/0000.png", "train/0001.png", "test/0000.png"):
        assert (small / name).read_bytes() == (dataset / name).read_bytes()


def test_different_seeds_give_different_images(dataset: Path, tmp_path: Path) -> None:
    other = _generate(tmp_path, seed=4)
    for split, count in COUNTS.items():
        for i in range(count):
            assert (other / split / f"{i:04d}.png").read_bytes() != (dataset / split / f"{i:04d}.png").read_bytes()


def test_label_half_uses_only_palette_colours(dataset: Path) -> None:
    palette = {c.color for c in PALETTE}
    for path in sorted(dataset.rglob("*.png")):
        labels, _ = _halves(path)
        assert {tuple(int(v) for v in rgb) for rgb in np.unique(labels.reshape(-1, 3), axis=0)} <= palette


def test_enough_classes_across_a_few_images(dataset: Path) -> None:
    present = set()
    for path in sorted((dataset / "train").glob("*.png")):
        present |= set(labels_from_colors(_halves(path)[0]).ravel().tolist())
    assert len(present) >= 6


def test_colours_round_trip_to_labels() -> None:
    labels = np.stack([sample_labels for sample_labels, _ in _samples(4)])
    assert np.array_equal(labels_from_colors(colorize_labels(labels)), labels)
    noisy = colorize_labels(labels).astype(np.int16) + np.random.default_rng(0).integers(-20, 21, (*labels.shape, 3))
    assert np.array_equal(labels_from_colors(np.clip(noisy, 0, 255).astype(np.uint8)), labels)


def test_render_facade_types_and_any_size() -> None:
    for size in (32, 37, 64):
        labels, photo = render_facade(np.random.default_rng(size), size)
        assert labels.shape == (size, size) and labels.dtype == np.uint8 and labels.max() < len(PALETTE)
        assert photo.shape == (size, size, 3) and photo.dtype == np.uint8
    with pytest.raises(ValueError, match="size"):
        render_facade(np.random.default_rng(0), 31)


def test_photo_colour_is_determined_by_class() -> None:
    """Per-class mean colours vary little from building to building compared to the gaps between classes."""
    classes = [CLASS_ID[name] for name in ("background", "wall", "window", "door")]
    means: dict[int, list[np.ndarray]] = {c: [] for c in classes}
    for labels, photo in _samples(12):
        for c in classes:
            means[c].append(photo[labels == c].mean(axis=0))
        window_wall_gap = np.linalg.norm(means[CLASS_ID["window"]][-1] - means[CLASS_ID["wall"]][-1])
        assert window_wall_gap > 30
    centre = {c: np.mean(means[c], axis=0) for c in classes}
    spread = max(np.linalg.norm(np.array(means[c]) - centre[c], axis=1).mean() for c in classes)
    gaps = [np.linalg.norm(centre[a] - centre[b]) for a in classes for b in classes if a < b]
    assert min(gaps) > spread


def test_photos_are_textured_not_flat() -> None:
    for labels, photo in _samples(3, size=64):
        for name in ("wall", "window"):
            pixels = photo[labels == CLASS_ID[name]].astype(np.float32)
            assert pixels.std(axis=0).mean() > 4
