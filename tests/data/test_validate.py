"""`validate_dataset`: every file of every split read in full, each problem named with its fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data import validate
from pix2pix.data.reading import load_image_data
from pix2pix.data.validate import validate_dataset
from tests.data.conftest import bomb_png

MAPS = Path("/work/shared/datasets/maps")


def picture(width: int, height: int, channels: int = 3, seed: int = 0, bits: int = 8) -> np.ndarray:
    dtype = np.uint16 if bits == 16 else np.uint8
    return np.random.default_rng(seed).integers(0, 2**bits, (height, width, channels), dtype=dtype)


def save(pixels: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(path)
    return path


def aligned_dataset(root: Path, counts: dict[str, int], size: int = 32) -> Path:
    for split, count in counts.items():
        for i in range(count):
            save(picture(2 * size, size, seed=i), root / split / f"{i}.png")
    return root


def truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def problems_by_file(report) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in report.problems:
        found.setdefault(problem.path.name, []).append(f"{problem.severity}: {problem.problem} / {problem.fix}")
    return found


def test_a_clean_dataset_passes_with_its_counts(tmp_path):
    root = aligned_dataset(tmp_path / "data", {"train": 4, "val": 2, "test": 2})
    report = validate_dataset(root, crop_size=32)
    assert report.ok and report.problems == []
    assert {split: len(pairs) for split, pairs in report.pairs.items()} == {"train": 4, "val": 2, "test": 2}
    assert report.checked == 8
    summary = report.summary()
    assert "OK" in summary and "train: 4 pair(s), aligned layout" in summary and "3-channel 8-bit: 8" in summary
    data = json.loads(json.dumps(report.to_json()))
    assert data["ok"] is True and data["files"] == 8 and data["splits"]["val"]["usable_pairs"] == 2


def test_every_kind_of_bad_file_is_reported_with_a_fix(tmp_path):
    root = aligned_dataset(tmp_path / "data", {"train": 2})
    train = root / "train"
    (train / "empty.png").write_bytes(b"")
    (train / "text.jpg").write_text("this is not an image")
    truncate(save(picture(64, 32, seed=5), train / "cut.png"))
    truncate(save(picture(64, 32, seed=6), train / "cut.jpg").with_suffix(".jpg"))
    (train / "bomb.png").write_bytes(bomb_png())
    save(picture(40, 20), train / "small.png")
    save(picture(1, 32), train / "narrow.png")
    report = validate_dataset(root, crop_size=32)
    found = problems_by_file(report)
    assert not report.ok
    assert sorted(found) == ["bomb.png", "cut.jpg", "cut.png", "empty.png", "narrow.png", "small.png", "text.jpg"]
    assert found["empty.png"] == ["error: empty file (0 bytes) / replace it with a complete copy or remove it"]
    assert found["text.jpg"] == ["error: not an image (or a format Pillow cannot read) / replace or remove it"]
    assert all("truncated" in found[name][0] for name in ("cut.png", "cut.jpg"))
    assert "image bomb: 100000x100000" in found["bomb.png"][0]
    assert "each half is 20x20, smaller than the 32 crop / use larger images or a smaller `crop_size`" in \
        found["small.png"][0]
    assert "too narrow to hold an A|B pair" in found["narrow.png"][0]
    assert all(line.startswith("error:") for lines in found.values() for line in lines)
    assert [p.name for p in report.usable_pairs("train")] == ["0", "1"]
    assert report.to_json()["bad_files"] == 7
    assert "7 bad file(s)" in report.summary()


def test_folders_layout_checks_partners_names_and_sizes(tmp_path):
    root = tmp_path / "ab"
    for name in ("ok", "lonely_a", "twin", "big"):
        save(picture(32, 32), root / "A" / f"{name}.png")
    save(picture(32, 32), root / "A" / "twin.jpg")
    for name in ("ok", "lonely_b", "twin"):
        save(picture(32, 32), root / "B" / f"{name}.png")
    save(picture(48, 32), root / "B" / "big.png")
    report = validate_dataset(root)
    found = problems_by_file(report)
    assert "no partner named lonely_a.* in B/" in found["lonely_a.png"][0]
    assert "no partner named lonely_b.* in A/" in found["lonely_b.png"][0]
    assert "share the name twin" in found["twin.jpg"][0]
    assert "48x32 differs from its partner big.png (32x32)" in found["big.png"][0]
    assert [p.name for p in report.usable_pairs("train")] == ["ok"]


def test_odd_channels_and_bit_depths_are_warnings_unless_unconvertible(tmp_path):
    root = tmp_path / "ab"
    for i in range(3):
        save(picture(32, 32, 4, seed=i), root / "A" / f"{i}.png")
        save(picture(32, 32, 1, seed=i), root / "B" / f"{i}.png")
    save(picture(32, 32, 3), root / "A" / "rgb.png")  # RGBA majority: 3 channels cannot become 4
    save(picture(32, 32, 1), root / "B" / "rgb.png")
    save(picture(32, 32, 4), root / "A" / "deep.png")
    save(picture(32, 32, 1, bits=16), root / "B" / "deep.png")  # 16-bit among 8-bit grayscale
    save(picture(32, 32, 4), root / "A" / "colour.png")
    save(picture(32, 32, 3), root / "B" / "colour.png")  # RGB among grayscale: converted to gray
    report = validate_dataset(root)
    found = problems_by_file(report)
    assert found["rgb.png"] == ["error: has 3 channel(s) where most A files have 4 / convert it or remove it"]
    assert found["deep.png"][0].startswith("warning: is 16-bit where most B files are 8-bit")
    assert found["colour.png"][0].startswith("warning: has 3 channel(s) where most B files have 1")
    assert not report.ok and report.bad_files == [root / "A" / "rgb.png"]
    assert len(report.usable_pairs("train")) == 5


def test_worker_processes_report_the_same(tmp_path):
    root = aligned_dataset(tmp_path / "data", {"train": 6, "val": 2})
    truncate(root / "train" / "3.png")
    (root / "val" / "0.png").write_bytes(b"")
    serial, parallel = validate_dataset(root), validate_dataset(root, workers=2)
    assert parallel.to_json() == serial.to_json() and len(serial.bad_files) == 2


def test_missing_folder_and_empty_split_are_problems(tmp_path):
    absent = validate_dataset(tmp_path / "absent")
    assert not absent.ok and f"error: {tmp_path / 'absent'}: dataset folder not found" in absent.summary()
    (tmp_path / "data" / "train").mkdir(parents=True)
    report = validate_dataset(tmp_path / "data")
    assert [p.problem for p in report.problems] == ["no image pairs found"]


def test_the_folder_itself_is_the_training_split_when_it_has_no_splits(tmp_path):
    save(picture(64, 32), tmp_path / "flat" / "x.png")
    report = validate_dataset(tmp_path / "flat")
    assert report.ok and list(report.pairs) == ["train"]


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The names of the files that validation decodes, in order."""
    names: list[str] = []

    def counted(path, *args, **kwargs):
        names.append(Path(path).name)
        return load_image_data(path, *args, **kwargs)

    monkeypatch.setattr(validate, "load_image_data", counted)
    return names


def test_the_record_of_checked_files_spares_reading_unchanged_files_again(tmp_path, reads):
    root = aligned_dataset(tmp_path / "data", {"train": 4, "val": 2})
    truncate(root / "train" / "3.png")
    record = tmp_path / "run" / "checked_files.json"
    first = validate_dataset(root, checked=record)
    assert len(reads) == 6 and record.is_file()
    reads.clear()
    again = validate_dataset(root, checked=record)
    assert reads == [] and again.to_json() == first.to_json() and again.files == first.files
    assert again.bad_files == [root / "train" / "3.png"]


def test_files_changed_since_the_record_are_read_again(tmp_path, reads):
    root = aligned_dataset(tmp_path / "data", {"train": 4, "val": 2})
    record = tmp_path / "checked_files.json"
    validate_dataset(root, checked=record)
    reads.clear()
    truncate(root / "train" / "1.png")  # another size
    save(picture(64, 32, seed=9), root / "val" / "0.png")  # same size, rewritten
    os.utime(root / "val" / "0.png", ns=(0, 10**18))
    save(picture(64, 32), root / "train" / "new.png")
    report = validate_dataset(root, checked=record)
    assert sorted(reads) == ["0.png", "1.png", "new.png"]
    assert report.bad_files == [root / "train" / "1.png"] and len(report.pairs["train"]) == 5


@pytest.mark.parametrize("damage", ["not json", '{"version": 1, "max_pixels": 268435456, "files": []}',
                                    '{"version": 1, "max_pixels": 268435456, "files": {"X": 5}}', "limit"])
def test_a_record_that_does_not_fit_is_ignored_and_rewritten(tmp_path, reads, damage):
    root = aligned_dataset(tmp_path / "data", {"train": 2})
    record = tmp_path / "checked_files.json"
    validate_dataset(root, checked=record)
    saved = json.loads(record.read_text())
    if damage == "limit":
        saved["max_pixels"] = 10
    else:
        record.write_text(damage)
    for entry in saved["files"].values():
        entry["info"] = [1, 1, 1, 8]  # what the files would be read as if the record were trusted
    if damage == "limit":
        record.write_text(json.dumps(saved))
    reads.clear()
    report = validate_dataset(root, checked=record)
    assert len(reads) == 2 and report.ok and {info.width for info in report.files.values()} == {64}
    assert json.loads(record.read_text())["files"].keys() == {str(root / "train" / f"{i}.png") for i in range(2)}


@pytest.mark.skipif(not MAPS.is_dir(), reason="the maps dataset is not on this machine")
def test_a_few_files_of_the_real_maps_dataset_pass(tmp_path):
    files = sorted((MAPS / "train").glob("*.jpg"))[:4]
    for path in files:
        (tmp_path / "maps" / "train").mkdir(parents=True, exist_ok=True)
        os.symlink(path, tmp_path / "maps" / "train" / path.name)
    report = validate_dataset(tmp_path / "maps", crop_size=256)
    assert report.ok and report.problems == []
    assert report.formats() == {"3-channel 8-bit": 4}
    assert {(info.width, info.height) for info in report.files.values()} == {(1200, 600)}


def test_the_screen_tells_mixed_channel_counts_with_how_many_files_of_each(tmp_path, capsys):
    for name, mode in (("0", "L"), ("1", "RGB"), ("2", "RGB")):
        Image.new(mode, (16, 8)).save(tmp_path / f"{name}.png")
    validate.screen_for_training(tmp_path, "auto", "fail", tmp_path / "bad.json")
    err = capsys.readouterr().err
    assert "the aligned A|B files are of 2 formats: 2 3-channel 8-bit, 1 1-channel 8-bit file(s)" in err
    assert "0.png: has 1 channel(s) where most aligned A|B files have 3; it is converted to 3" in err
