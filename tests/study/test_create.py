"""`create`: a self-contained study folder from a real folder and the models' output folders."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from pix2pix.study.create import create_study, images_by_name, parse_fake
from pix2pix.study.settings import StudyError, StudySettings, load_study
from tests.study.conftest import write_images


def test_images_are_copied_at_the_display_size_and_the_settings_stored(model_folders, tmp_path):
    real, fakes = model_folders
    created = create_study(tmp_path / "s", real, fakes, StudySettings(practice=2, test=3, size=48, catch=1, seed=5))
    study = load_study(tmp_path / "s")
    assert study.settings == StudySettings(practice=2, test=3, size=48, catch=1, seed=5)
    assert study.conditions == ["L1", "L1+cGAN"] and created.left_out == 0
    assert len(study.real) == 12 and len(study.broken) == 12
    for path in [*study.real.values(), *study.fakes["L1+cGAN"].values(), *study.broken.values()]:
        with Image.open(study.folder / path) as image:
            assert image.size == (48, 48) and image.mode == "RGB"
    assert json.loads((tmp_path / "s" / "study.json").read_text())["settings"]["exposure_s"] == 1.0


def test_a_study_is_never_overwritten(model_folders, tmp_path):
    real, fakes = model_folders
    create_study(tmp_path / "s", real, fakes, StudySettings(practice=1, test=2, size=32))
    with pytest.raises(StudyError, match="a study exists here already"):
        create_study(tmp_path / "s", real, fakes, StudySettings(practice=1, test=2, size=32))


def test_evaluate_s_folders_give_outputs_as_fakes_and_targets_as_reals(tmp_path):
    folder = write_images(tmp_path / "eval", ["a", "b"], seed=0)
    write_images(folder, ["a", "b"], seed=1, suffix="_target")
    write_images(folder, ["a", "b"], seed=2, suffix="_input")
    write_images(folder, ["losses", "notes"], seed=3)  # a report's figure, and an image that is no output
    assert set(images_by_name(folder, "fake")) == {"a", "b"}
    assert images_by_name(folder, "real")["a"].name == "a_target.png"
    assert set(images_by_name(write_images(tmp_path / "plain", ["losses", "x"], seed=0), "fake")) == {"x"}


def test_bad_inputs_are_errors_that_name_the_problem(model_folders, tmp_path):
    real, fakes = model_folders
    with pytest.raises(StudyError, match="LABEL=DIR"):
        parse_fake("no label")
    with pytest.raises(StudyError, match="folder not found"):
        create_study(tmp_path / "s", tmp_path / "missing", fakes, StudySettings())
    with pytest.raises(StudyError, match="need more images"):
        create_study(tmp_path / "s", real, fakes, StudySettings())
    with pytest.raises(StudyError, match="`catch` must be"):
        create_study(tmp_path / "s", real, fakes, StudySettings(test=2, catch=2))
    assert not (tmp_path / "s").exists()
