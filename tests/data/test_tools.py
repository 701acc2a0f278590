"""Dataset tools on tiny images: combine, split, edges and grayscale."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data.dataset import find_pairs
from pix2pix.data.images import DataError, split_aligned
from pix2pix.data.tools import (
    UNPAIRED_LIST,
    combine_folders,
    edge_sketch,
    find_canny,
    make_edges_dataset,
    make_grayscale_dataset,
    remove_small_edges,
    split_dataset,
)


def _picture(width: int = 32, height: int = 32, shift: int = 0) -> np.ndarray:
    """An asymmetric RGB picture; `shift` makes a different one."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 7 + shift) % 256, (y * 5 + 3 * shift) % 256, ((x < 9) & (y < 5)) * 255],
                    axis=-1).astype(np.uint8)


def _save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _square_photo(size: int = 48) -> np.ndarray:
    """A bright square on a dark background: its outline is the only edge."""
    photo = np.full((size, size, 3), 30, dtype=np.uint8)
    photo[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = (220, 180, 90)
    return photo


# ---------------------------------------------------------------------------------------------------------
# combine


def test_combine_pairs_by_name_into_aligned_files_and_lists_the_unpaired(tmp_path):
    a = _save(_picture(shift=0), tmp_path / "A" / "one.png")
    b = _save(_picture(shift=50), tmp_path / "B" / "one.bmp")
    _save(_picture(), tmp_path / "A" / "lonely.png")
    _save(_picture(), tmp_path / "B" / "orphan.png")
    result = combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out")
    assert result.written == 1 and result.mismatched == []
    assert [p.name for p in result.unpaired] == ["lonely.png", "orphan.png"]
    listed = (tmp_path / "out" / UNPAIRED_LIST).read_text().splitlines()
    assert listed == [str(tmp_path / "A" / "lonely.png"), str(tmp_path / "B" / "orphan.png")]
    pair = Image.open(tmp_path / "out" / "one.png")
    assert pair.size == (64, 32)
    left, right = split_aligned(pair.convert("RGB"), tmp_path / "out" / "one.png")
    assert np.array_equal(np.asarray(left), _pixels(a)) and np.array_equal(np.asarray(right), _pixels(b))
    assert [p.name for p in find_pairs(tmp_path / "out")] == ["one"]


def test_combine_fails_on_size_mismatch_by_default_listing_the_pairs_and_writing_nothing(tmp_path):
    _save(_picture(32, 32), tmp_path / "A" / "x.png")
    _save(_picture(40, 24), tmp_path / "B" / "x.png")
    with pytest.raises(DataError, match=r"x: A 32x32, B 40x24.*`size_mismatch` resize-b"):
        combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("policy, size", [("resize-b", (64, 32)), ("resize-a", (80, 24))])
def test_combine_resizes_the_chosen_side_bicubic(tmp_path, policy, size):
    _save(_picture(32, 32), tmp_path / "A" / "x.png")
    b = _save(_picture(40, 24, shift=9), tmp_path / "B" / "x.png")
    result = combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out", size_mismatch=policy)
    assert result.written == 1 and result.mismatched == ["x: A 32x32, B 40x24"]
    pair = Image.open(tmp_path / "out" / "x.png").convert("RGB")
    assert pair.size == size
    if policy == "resize-b":
        expected = Image.open(b).convert("RGB").resize((32, 32), Image.Resampling.BICUBIC)
        assert np.array_equal(np.asarray(pair)[:, 32:], np.asarray(expected))


def test_combine_skip_leaves_mismatched_pairs_out(tmp_path):
    _save(_picture(32, 32), tmp_path / "A" / "big.png")
    _save(_picture(16, 16), tmp_path / "B" / "big.png")
    _save(_picture(32, 32), tmp_path / "A" / "ok.png")
    _save(_picture(32, 32), tmp_path / "B" / "ok.png")
    result = combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out", size_mismatch="skip")
    assert result.written == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok.png"]


def test_combine_folders_copies_files_byte_for_byte(tmp_path):
    a = _save(_picture(), tmp_path / "A" / "x.jpg")
    b = _save(_picture(shift=3), tmp_path / "B" / "x.png")
    combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out", folders=True)
    assert (tmp_path / "out" / "A" / "x.jpg").read_bytes() == a.read_bytes()
    assert (tmp_path / "out" / "B" / "x.png").read_bytes() == b.read_bytes()
    assert not (tmp_path / "out" / UNPAIRED_LIST).exists()


def test_combine_folders_resizes_only_the_chosen_side_as_png(tmp_path):
    a = _save(_picture(32, 32), tmp_path / "A" / "x.jpg")
    _save(_picture(16, 16), tmp_path / "B" / "x.jpg")
    combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out", folders=True, size_mismatch="resize-b")
    assert (tmp_path / "out" / "A" / "x.jpg").read_bytes() == a.read_bytes()
    assert Image.open(tmp_path / "out" / "B" / "x.png").size == (32, 32)


def test_combine_compares_sizes_after_exif_rotation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40x20, shown rotated a quarter turn: 20x40
    Image.fromarray(_picture(40, 20)).save(tmp_path / "a.jpg", exif=exif)
    (tmp_path / "A").mkdir()
    (tmp_path / "a.jpg").rename(tmp_path / "A" / "x.jpg")
    _save(_picture(20, 40), tmp_path / "B" / "x.png")
    assert combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out").mismatched == []
    assert Image.open(tmp_path / "out" / "x.png").size == (40, 40)


def test_combine_refuses_to_write_into_an_input_folder(tmp_path):
    _save(_picture(), tmp_path / "A" / "x.png")
    _save(_picture(), tmp_path / "B" / "x.png")
    with pytest.raises(DataError, match="also an input folder"):
        combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "A")


def test_combine_names_an_unreadable_file(tmp_path):
    _save(_picture(), tmp_path / "A" / "x.png")
    (tmp_path / "B").mkdir()
    (tmp_path / "B" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"B/x.png: cannot read image"):
        combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out")


# ---------------------------------------------------------------------------------------------------------
# split


def _flat_dataset(folder: Path, count: int) -> list[str]:
    for index in range(count):
        _save(_picture(16, 8, shift=index), folder / f"{index:03d}.png")
    return sorted(p.name for p in folder.iterdir())


def _names_per_split(folder: Path) -> dict[str, list[str]]:
    return {split: sorted(p.name for p in (folder / split).iterdir()) for split in ("train", "val", "test")}


def test_split_moves_files_reproducibly_by_seed(tmp_path):
    names = _flat_dataset(tmp_path / "one", 20)
    _flat_dataset(tmp_path / "two", 20)
    _flat_dataset(tmp_path / "three", 20)
    result = split_dataset(tmp_path / "one", val=0.1, test=0.2, seed=7)
    assert result.counts == {"train": 14, "val": 2, "test": 4} and result.layout == "aligned"
    split_dataset(tmp_path / "two", val=0.1, test=0.2, seed=7)
    split_dataset(tmp_path / "three", val=0.1, test=0.2, seed=8)
    first = _names_per_split(tmp_path / "one")
    assert first == _names_per_split(tmp_path / "two")
    assert first != _names_per_split(tmp_path / "three")
    assert sorted(sum(first.values(), [])) == names
    assert not list((tmp_path / "one").glob("*.png"))


def test_split_refuses_a_folder_that_is_already_split(tmp_path):
    _flat_dataset(tmp_path, 10)
    split_dataset(tmp_path, copy=True)
    assert len(list(tmp_path.glob("*.png"))) == 10
    with pytest.raises(DataError, match="already has train/, val/, test/"):
        split_dataset(tmp_path)


def test_split_keeps_a_and_b_folders_paired(tmp_path):
    for index in range(10):
        _save(_picture(shift=index), tmp_path / "A" / f"{index}.png")
        _save(_picture(shift=index + 1), tmp_path / "B" / f"{index}.jpg")
    result = split_dataset(tmp_path, val=0.2, test=0.2, seed=1)
    assert result.counts == {"train": 6, "val": 2, "test": 2} and result.layout == "folders"
    assert not (tmp_path / "A").exists() and not (tmp_path / "B").exists()
    for split in ("train", "val", "test"):
        assert len(find_pairs(tmp_path / split)) == result.counts[split]


def test_split_refuses_fractions_that_leave_no_training_data(tmp_path):
    _flat_dataset(tmp_path, 2)
    with pytest.raises(DataError, match="together < 1"):
        split_dataset(tmp_path, val=0.5, test=0.5)
    with pytest.raises(DataError, match="2 image.* no training images would be left"):
        split_dataset(tmp_path, val=0.3, test=0.3)
    assert len(list(tmp_path.glob("*.png"))) == 2


# ---------------------------------------------------------------------------------------------------------
# edges


def test_small_edge_fragments_are_removed_and_long_edges_kept():
    edges = np.zeros((20, 20), dtype=bool)
    edges[2, 2:18] = True  # a 16-pixel line
    edges[10, 10] = edges[11, 11] = True  # a 2-pixel diagonal speck (8-connected)
    edges[15, 3:7] = True  # 4 pixels
    cleaned = remove_small_edges(edges, 5)
    assert cleaned[2, 2:18].all() and cleaned.sum() == 16
    assert remove_small_edges(edges, 4).sum() == 20
    assert remove_small_edges(edges, 0).sum() == edges.sum()


def test_edge_clean_up_without_scipy_gives_the_same_result(monkeypatch):
    pytest.importorskip("scipy")
    rng = np.random.default_rng(0)
    edges = rng.random((40, 40)) < 0.2
    with_scipy = remove_small_edges(edges, 6)
    monkeypatch.setitem(sys.modules, "scipy", None)
    assert np.array_equal(remove_small_edges(edges, 6), with_scipy)


def test_edges_dataset_is_aligned_black_outline_on_white(tmp_path):
    pytest.importorskip("skimage")
    _save(_square_photo(), tmp_path / "photos" / "square.png")
    result = make_edges_dataset(tmp_path / "photos", tmp_path / "out", size=32, sigma=1.0)
    assert result.written == 1 and result.failed == []
    pair = Image.open(tmp_path / "out" / "square.png").convert("RGB")
    assert pair.size == (64, 32)
    sketch, photo = (np.asarray(half) for half in split_aligned(pair, tmp_path / "out" / "square.png"))
    assert set(np.unique(sketch)) <= {0, 255}
    dark = sketch[:, :, 0] == 0
    assert 0 < dark.mean() < 0.3
    assert dark[16, 6:10].any() and not dark[16, 14:18].any()  # on the square's left side, not in its middle
    expected = Image.fromarray(_square_photo()).resize((32, 32), Image.Resampling.BICUBIC)
    assert np.array_equal(photo, np.asarray(expected))


def test_edge_sketch_removes_noise_specks():
    pytest.importorskip("skimage")
    photo = _square_photo(64)
    photo[5, 50] = photo[58, 8] = 255  # single bright pixels: tiny closed edge loops
    noisy = np.asarray(edge_sketch(Image.fromarray(photo), sigma=1.0, min_edge_pixels=0))[:, :, 0] == 0
    clean = np.asarray(edge_sketch(Image.fromarray(photo), sigma=1.0, min_edge_pixels=20))[:, :, 0] == 0
    assert noisy[2:9, 47:54].any() and not clean[2:9, 47:54].any()
    assert clean[16:48, 14:18].any()


def test_edges_without_a_canny_backend_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(DataError, match=r'pip install "pix2pix\[edges\]"'):
        find_canny()


# ---------------------------------------------------------------------------------------------------------
# grayscale


def test_grayscale_dataset_aligned_with_three_equal_channels(tmp_path):
    _save(_picture(40, 30), tmp_path / "photos" / "p.png")
    result = make_grayscale_dataset(tmp_path / "photos", tmp_path / "out", size=32)
    assert result.written == 1
    pair = Image.open(tmp_path / "out" / "p.png").convert("RGB")
    gray, colour = (np.asarray(half) for half in split_aligned(pair, tmp_path / "out" / "p.png"))
    assert pair.size == (64, 32)
    assert np.array_equal(gray[:, :, 0], gray[:, :, 1]) and np.array_equal(gray[:, :, 0], gray[:, :, 2])
    assert np.array_equal(gray[:, :, 0], np.asarray(Image.fromarray(colour).convert("L")))


def test_grayscale_one_channel_writes_a_and_b_folders_and_reports_bad_photos(tmp_path):
    _save(_picture(), tmp_path / "photos" / "good.png")
    (tmp_path / "photos" / "bad.jpg").write_bytes(b"broken")
    result = make_grayscale_dataset(tmp_path / "photos", tmp_path / "out", size=16, channels=1)
    assert result.written == 1 and len(result.failed) == 1 and "bad.jpg" in result.failed[0]
    assert Image.open(tmp_path / "out" / "A" / "good.png").mode == "L"
    assert Image.open(tmp_path / "out" / "B" / "good.png").mode == "RGB"
    assert [p.name for p in find_pairs(tmp_path / "out")] == ["good"]


def test_builders_refuse_an_empty_or_missing_source(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no photos found"):
        make_grayscale_dataset(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(DataError, match="missing: folder not found"):
        make_grayscale_dataset(tmp_path / "missing", tmp_path / "out")
