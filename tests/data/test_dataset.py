"""Paired datasets on disk, image files to tensors and back, and the resumable epoch order."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix.config import DataConfig
from pix2pix.data.dataset import (
    EpochSampler,
    PairedDataset,
    detect_layout,
    find_pairs,
    split_folder,
    training_loader,
)
from pix2pix.data.images import DataError, split_aligned
from pix2pix.data.reading import load_image
from pix2pix.data.tensors import image_to_tensor, tensor_to_image

SMALL = DataConfig(load_size=36, crop_size=32)


def _pattern(width: int = 40, height: int = 40, shift: int = 0) -> np.ndarray:
    """An asymmetric RGB picture (ramps plus a marked corner); `shift` makes a different one."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 6 + shift) % 256, (y * 6 + 3 * shift) % 256, ((x < 9) & (y < 5)) * 255],
                    axis=-1).astype(np.uint8)


def _save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _aligned(folder: Path, name: str, a: np.ndarray, b: np.ndarray) -> Path:
    return _save(np.concatenate([a, b], axis=1), folder / f"{name}.png")


def _dataset(folder: Path, train: bool, seed: int = 0, **changes) -> PairedDataset:
    config = dataclasses.replace(SMALL, **changes)
    return PairedDataset(find_pairs(folder, config.layout), config, 3, 3, train=train, seed=seed)


@pytest.fixture
def same_halves(tmp_path) -> Path:
    """Aligned files whose A and B halves are the same picture."""
    for i in range(3):
        picture = _pattern(shift=40 * i)
        _aligned(tmp_path / "same", f"p{i}", picture, picture)
    return tmp_path / "same"


@pytest.fixture
def distinct_halves(tmp_path) -> Path:
    _aligned(tmp_path / "pairs", "one", _pattern(32, 32), _pattern(32, 32, shift=100))
    return tmp_path / "pairs"


# --- images ---------------------------------------------------------------------------------------------------


def test_rgb_round_trip():
    array = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    tensor = image_to_tensor(Image.fromarray(array, "RGB"))
    assert tensor.shape == (3, 20, 24) and tensor.dtype == torch.float32
    assert tensor.min() >= -1 and tensor.max() <= 1
    back = tensor_to_image(tensor)
    assert back.mode == "RGB"
    assert np.array_equal(np.asarray(back), array)


def test_grayscale_round_trip():
    array = np.random.default_rng(1).integers(0, 256, (16, 12), dtype=np.uint8)
    tensor = image_to_tensor(Image.fromarray(array, "L"))
    assert tensor.shape == (1, 16, 12)
    back = tensor_to_image(tensor)
    assert back.mode == "L"
    assert np.array_equal(np.asarray(back), array)


def test_pixel_values_map_to_tanh_range():
    tensor = image_to_tensor(Image.fromarray(np.array([[0, 255]], dtype=np.uint8), "L"))
    assert tensor.flatten().tolist() == [-1.0, 1.0]
    assert np.asarray(tensor_to_image(torch.tensor([[[-3.0, 0.0, 3.0]]]))).tolist() == [[0, 128, 255]]


def test_load_image_converts_channels(tmp_path):
    path = _save(_pattern(8, 6), tmp_path / "rgb.png")
    assert load_image(path, 3).mode == "RGB"
    gray = load_image(path, 1)
    assert gray.mode == "L" and gray.size == (8, 6)
    with pytest.raises(DataError):
        load_image(path, 4)


def test_load_image_honours_exif_orientation(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(_pattern(24, 16)).save(path, exif=exif)
    assert load_image(path, 3).size == (16, 24)


@pytest.mark.parametrize("content", [b"", b"this is not an image at all", "truncated"])
def test_unreadable_image_raises_data_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.png"
    if content == "truncated":
        _save(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_image(path, 3)
    assert str(path) in str(info.value)


def test_missing_image_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="nothere.png"):
        load_image(tmp_path / "nothere.png", 3)


def test_split_aligned_halves():
    a, b = _pattern(10, 8), _pattern(10, 8, shift=50)
    left, right = split_aligned(Image.fromarray(np.concatenate([a, b], axis=1)), Path("x.png"))
    assert np.array_equal(np.asarray(left), a) and np.array_equal(np.asarray(right), b)
    with pytest.raises(DataError, match="x.png"):
        split_aligned(Image.new("RGB", (1, 5)), Path("x.png"))


# --- finding pairs --------------------------------------------------------------------------------------------


def test_aligned_pair_is_split_into_input_and_target(distinct_halves):
    data = _dataset(distinct_halves, train=False, preprocess="none")
    item = data[0]
    assert item["name"] == "one"
    assert torch.equal(item["input"], image_to_tensor(Image.fromarray(_pattern(32, 32))))
    assert torch.equal(item["target"], image_to_tensor(Image.fromarray(_pattern(32, 32, shift=100))))


def test_direction_b_to_a_swaps_the_halves(distinct_halves):
    forward = _dataset(distinct_halves, train=False, preprocess="none")[0]
    backward = _dataset(distinct_halves, train=False, preprocess="none", direction="BtoA")[0]
    assert torch.equal(backward["input"], forward["target"])
    assert torch.equal(backward["target"], forward["input"])


def _folders(root: Path, names_a: list[str], names_b: list[str]) -> Path:
    for i, name in enumerate(names_a):
        _save(_pattern(32, 32, shift=i), root / "A" / name)
    for i, name in enumerate(names_b):
        _save(_pattern(32, 32, shift=128 + i), root / "B" / name)
    return root


def test_folders_are_matched_by_name(tmp_path):
    root = _folders(tmp_path / "ab", ["x.png", "y.png", "z.png"], ["z.png", "x.bmp", "y.png"])
    assert detect_layout(root, "auto") == "folders"
    pairs = find_pairs(root)
    assert [p.name for p in pairs] == ["x", "y", "z"]
    assert [(p.a.name, p.b.name) for p in pairs] == [("x.png", "x.bmp"), ("y.png", "y.png"), ("z.png", "z.png")]
    data = PairedDataset(pairs, dataclasses.replace(SMALL, preprocess="none"), 3, 3, train=False)
    item = data[0]
    assert torch.equal(item["input"], image_to_tensor(load_image(root / "A" / "x.png", 3)))
    assert torch.equal(item["target"], image_to_tensor(load_image(root / "B" / "x.bmp", 3)))


@pytest.mark.parametrize(("names_a", "names_b", "orphan"), [
    (["x.png", "extra.png"], ["x.png"], "extra"),
    (["x.png"], ["x.png", "lonely.png"], "lonely"),
])
def test_missing_partner_raises_data_error_naming_it(tmp_path, names_a, names_b, orphan):
    root = _folders(tmp_path / "ab", names_a, names_b)
    with pytest.raises(DataError, match=orphan):
        find_pairs(root)


def test_folders_with_different_channels(tmp_path):
    root = _folders(tmp_path / "ab", ["x.png"], ["x.png"])
    data = PairedDataset(find_pairs(root), SMALL, 1, 3, train=True)
    item = data[(0, 0)]
    assert item["input"].shape == (1, 32, 32) and item["target"].shape == (3, 32, 32)
    swapped = PairedDataset(find_pairs(root), dataclasses.replace(SMALL, direction="BtoA"), 1, 3, train=True)
    assert swapped[(0, 0)]["input"].shape == (1, 32, 32)


def test_aligned_files_need_equal_channels(distinct_halves):
    data = PairedDataset(find_pairs(distinct_halves), SMALL, 1, 3, train=False)
    with pytest.raises(DataError, match="one.png"):
        data[0]


def test_partners_of_different_sizes_raise(tmp_path):
    _save(_pattern(32, 32), tmp_path / "ab" / "A" / "x.png")
    _save(_pattern(40, 32), tmp_path / "ab" / "B" / "x.png")
    data = PairedDataset(find_pairs(tmp_path / "ab"), SMALL, 3, 3, train=False)
    with pytest.raises(DataError, match="x.png"):
        data[0]


def test_empty_or_missing_folder_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    _save(_pattern(8, 8), tmp_path / "empty" / ".hidden.png")
    with pytest.raises(DataError, match="no images"):
        find_pairs(tmp_path / "empty")
    with pytest.raises(DataError, match="absent"):
        find_pairs(tmp_path / "absent")


def test_split_folders(tmp_path):
    (tmp_path / "with" / "train").mkdir(parents=True)
    assert split_folder(tmp_path / "with", "train") == tmp_path / "with" / "train"
    assert split_folder(tmp_path / "with", "val") is None
    (tmp_path / "flat").mkdir()
    assert split_folder(tmp_path / "flat", "train") == tmp_path / "flat"
    assert split_folder(tmp_path / "flat", "test") is None


# --- the training view ----------------------------------------------------------------------------------------


def test_training_jitter_is_identical_for_input_and_target(same_halves):
    data = _dataset(same_halves, train=True)
    for epoch in range(6):
        for index in range(len(data)):
            item = data[(epoch, index)]
            assert item["input"].shape == (3, 32, 32)
            assert torch.equal(item["input"], item["target"])


def _candidates(picture: np.ndarray) -> list[torch.Tensor]:
    """All views the paper's jitter can give at load 36, crop 32: a crop of the bicubic resize, maybe mirrored."""
    resized = image_to_tensor(Image.fromarray(picture).resize((36, 36), Image.Resampling.BICUBIC))
    crops = [resized[:, top:top + 32, left:left + 32] for top in range(5) for left in range(5)]
    return crops + [crop.flip(-1) for crop in crops]


def test_training_view_is_a_resized_random_crop_that_varies_by_epoch(same_halves):
    data = _dataset(same_halves, train=True)
    candidates = _candidates(_pattern(shift=0))
    chosen = []
    for epoch in range(12):
        view = data[(epoch, 0)]["input"]
        matches = [i for i, c in enumerate(candidates) if torch.allclose(view, c, atol=1e-6)]
        assert matches, f"epoch {epoch}: not a crop of the resized image"
        chosen.append(matches[0])
    assert len(set(chosen)) > 3
    assert any(i >= 25 for i in chosen) and any(i < 25 for i in chosen)  # mirrored and not


def test_training_view_is_reproducible_for_the_same_key(same_halves):
    first, second = _dataset(same_halves, train=True, seed=5), _dataset(same_halves, train=True, seed=5)
    for key in [(0, 0), (3, 1), (7, 2)]:
        assert torch.equal(first[key]["input"], second[key]["input"])
    assert torch.equal(first[(3, 1)]["input"], first[(3, 1)]["input"])
    other_seed = _dataset(same_halves, train=True, seed=6)
    assert any(not torch.equal(first[(e, 0)]["input"], other_seed[(e, 0)]["input"]) for e in range(6))


def test_plain_index_is_epoch_zero(same_halves):
    data = _dataset(same_halves, train=True)
    assert torch.equal(data[1]["input"], data[(0, 1)]["input"])


def test_evaluation_view_is_deterministic(same_halves):
    data = _dataset(same_halves, train=False)
    expected = image_to_tensor(Image.fromarray(_pattern(shift=40)).resize((32, 32), Image.Resampling.BICUBIC))
    for key in [1, (0, 1), (9, 1)]:
        assert torch.equal(data[key]["input"], expected)
        assert torch.equal(data[key]["target"], expected)


def test_training_loader_batches(same_halves):
    data = _dataset(same_halves, train=True)
    sampler = EpochSampler(len(data), seed=0)
    sampler.set_epoch(2)
    batches = list(training_loader(data, sampler, batch_size=2, num_workers=0))
    assert [b["input"].shape for b in batches] == [(2, 3, 32, 32), (1, 3, 32, 32)]
    assert sorted(name for b in batches for name in b["name"]) == ["p0", "p1", "p2"]
    expected_first = data[(2, sampler.order(2)[0])]["input"]
    assert torch.equal(batches[0]["input"][0], expected_first)


# --- the epoch order ------------------------------------------------------------------------------------------


def test_sampler_yields_a_permutation_per_epoch():
    sampler = EpochSampler(20, seed=0)
    sampler.set_epoch(4)
    keys = list(sampler)
    assert len(sampler) == 20
    assert {epoch for epoch, _ in keys} == {4}
    assert sorted(index for _, index in keys) == list(range(20))


def test_sampler_order_changes_across_epochs_and_repeats_for_a_seed():
    sampler = EpochSampler(20, seed=0)
    orders = [sampler.order(epoch) for epoch in range(4)]
    assert len({tuple(o) for o in orders}) == 4
    assert orders[0] != list(range(20))
    assert EpochSampler(20, seed=0).order(2) == orders[2]
    assert EpochSampler(20, seed=1).order(2) != orders[2]


def test_sampler_resumes_with_the_tail_of_the_same_order():
    sampler = EpochSampler(20, seed=3)
    sampler.set_epoch(5)
    full = list(sampler)
    sampler.set_epoch(5, start=7)
    assert list(sampler) == full[7:]
    assert len(sampler) == 13
    sampler.set_epoch(6)
    assert len(list(sampler)) == 20


def test_ranks_are_dealt_each_global_batch_in_rank_order():
    """2 processes at batch 2 see, step by step, the 4 images one process at batch 4 sees."""
    whole = EpochSampler(20, seed=3, batch_size=4)
    ranks = [EpochSampler(20, seed=3, batch_size=2, rank=r, world_size=2) for r in range(2)]
    for sampler in (whole, *ranks):
        sampler.set_epoch(1)
    steps = [list(whole)[i:i + 4] for i in range(0, 20, 4)]
    shares = [list(r) for r in ranks]
    assert [shares[0][2 * k:2 * k + 2] + shares[1][2 * k:2 * k + 2] for k in range(5)] == steps


def test_ranks_get_equal_shares_padded_with_repeats_and_cover_the_epoch():
    samplers = [EpochSampler(11, seed=0, batch_size=2, rank=r, world_size=3) for r in range(3)]
    shares = [[index for _, index in s] for s in samplers]
    assert [len(share) for share in shares] == [4, 4, 4] == [len(s) for s in samplers]
    everything = [index for share in shares for index in share]
    assert set(everything) == set(range(11)) and len(everything) == 12


def test_a_resumed_epoch_can_be_shared_by_a_different_number_of_ranks():
    single = EpochSampler(20, seed=5, batch_size=2)
    single.set_epoch(2, start=6)
    pair = [EpochSampler(20, seed=5, batch_size=1, rank=r, world_size=2) for r in range(2)]
    for sampler in pair:
        sampler.set_epoch(2, start=6)
    first, second = (list(s) for s in pair)
    assert [key for k in range(7) for key in (first[k], second[k])] == list(single)
