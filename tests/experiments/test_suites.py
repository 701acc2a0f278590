"""The ablation suites: the paper's variants, trained alike, scored alike, tabulated, and resumed without redoing."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from pix2pix.config import ConfigError, RunConfig
from pix2pix.evaluation.fcn import FCNSettings
from pix2pix.evaluation.segmenter import SegmenterSettings
from pix2pix.experiments.run import run_experiments
from pix2pix.experiments.suites import SUITES, Budget, Evaluation, Variant, base_settings
from pix2pix.runs import RunDir
from pix2pix.training.loop import train
from tests.conftest import TINY
from tests.evaluation.test_fid import ColourStatistics, saved

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.fixture
def evaluation(tmp_path):
    """Scoring with a tiny stand-in for Inception, so FID and KID cost nothing here, and a segmenter for the
    FCN-score trained in a few steps into this test's folder."""
    fcn = FCNSettings(segmenter_cache=tmp_path / "segmenters", segmenter=SegmenterSettings(width=4, steps=5, crop=32))
    return Evaluation("test", saved(ColourStatistics(), tmp_path / "colour_statistics.pt"), fcn)


def test_the_suites_are_the_papers_tables_and_share_the_variant_they_have_in_common():
    labels = {suite: [variant.label for variant in variants] for suite, variants in SUITES.items()}
    assert labels["losses"] == ["L1", "GAN", "cGAN", "L1+GAN", "L1+cGAN"]
    assert [v.skip_connections for v in SUITES["generators"]] == [False, False, True, True]
    assert [v.patch for v in SUITES["patches"]] == [1, 16, 70, 286]
    assert {v.objective for v in SUITES["patches"]} == {"l1+cgan"}
    shared = set.intersection(*({v.key for v in variants} for variants in SUITES.values()))
    assert shared == {Variant("L1+cGAN", "l1+cgan").key}
    assert len({v.key for variants in SUITES.values() for v in variants}) == 10  # trained once each under `all`


def test_a_budget_in_steps_spans_whole_epochs_half_constant_half_decaying():
    assert Budget(steps=100).settings(train_pairs=30, batch_size=2) == {"n_epochs": 4, "n_epochs_decay": 3,
                                                                       "max_steps": 100}
    assert Budget(epochs=5).settings(train_pairs=30, batch_size=1) == {"n_epochs": 3, "n_epochs_decay": 2,
                                                                       "max_steps": None}
    assert Budget().settings(train_pairs=30, batch_size=1) == {}


def test_settings_the_suites_vary_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="`patch`"):
        base_settings({"patch": 16}, None)
    file = tmp_path / "settings.toml"
    file.write_text('[model]\nskip_connections = false\n')
    with pytest.raises(ConfigError, match="`skip_connections`"):
        base_settings({}, file)


def test_a_suite_trains_every_variant_alike_and_writes_the_table_csv_and_figure(facades, tmp_path, evaluation):
    written = run_experiments("losses", {**TINY, "data": str(facades)}, None, tmp_path, Budget(steps=3),
                              evaluation)
    assert [path.name for path in written] == ["losses.md", "losses.csv", "losses.png"]
    configs = {v.key: RunDir(tmp_path / "runs" / v.key).load_config() for v in SUITES["losses"]}
    assert {(c.train.gan_mode, c.train.lambda_l1, c.model.conditional) for c in configs.values()} == {
        ("none", 100.0, True), ("vanilla", 0.0, False), ("vanilla", 0.0, True), ("vanilla", 100.0, False),
        ("vanilla", 100.0, True)}
    assert {(c.train.seed, c.train.max_steps, c.data.crop_size) for c in configs.values()} == {(0, 3, 32)}
    assert {RunDir(tmp_path / "runs" / key).generator_step() for key in configs} == {3}

    rows = list(csv.DictReader((tmp_path / "losses.csv").open()))
    assert [row["variant"] for row in rows] == ["L1", "GAN", "cGAN", "L1+GAN", "L1+cGAN", "Ground truth (real photos)"]
    for row, variant in zip(rows, SUITES["losses"]):
        scores = json.loads((tmp_path / "evaluations" / variant.key / "metrics.json").read_text())
        assert float(row["L1"]) == pytest.approx(scores["means"]["l1"], rel=1e-5)
        assert float(row["FID"]) == pytest.approx(scores["distribution"]["fid"], rel=1e-5)
        assert float(row["FCN class IoU"]) == pytest.approx(scores["fcn"]["generated"]["class_iou"], rel=1e-5)
    truth = json.loads((tmp_path / "evaluations" / SUITES["losses"][0].key / "metrics.json").read_text())["fcn"]
    assert rows[-1]["variant"] == "Ground truth (real photos)" and rows[-1]["L1"] == ""
    assert float(rows[-1]["FCN per-pixel acc"]) == pytest.approx(truth["reference"]["pixel_accuracy"], rel=1e-5)
    table = (tmp_path / "losses.md").read_text()
    assert table.count("\n| ") == 7 and "| L1+cGAN |" in table  # header, five variants and the ground truth
    assert "seed 0" in table and "3 steps" in table and "FID floor" in table


def test_a_suite_run_again_trains_nothing_and_an_interrupted_variant_continues(facades, tmp_path, evaluation):
    settings = {**TINY, "data": str(facades)}
    cut_short = Variant("U-Net, L1", "l1")
    config = RunConfig().updated({**settings, **cut_short.settings(), "n_epochs": 1, "n_epochs_decay": 1,
                                  "max_steps": 2, "save_every": 1})
    train(config, tmp_path / "runs" / cut_short.key)  # as if stopped at step 2 of 4

    run_experiments("generators", settings, None, tmp_path, Budget(steps=4), evaluation)
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "runs" / cut_short.key / "losses.jsonl").read_text().splitlines() if '"G_L1"' in line]
    assert steps == [1, 2, 3, 4]  # continued from its checkpoint, not started again
    stamps = {path: path.stat().st_mtime_ns for path in (tmp_path / "runs").rglob("*") if path.is_file()}
    stamps.update({path: path.stat().st_mtime_ns for path in (tmp_path / "evaluations").rglob("scores.json")})

    run_experiments("generators", settings, None, tmp_path, Budget(steps=4), evaluation)
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in stamps.items())


def test_a_variant_that_cannot_train_is_refused_before_any_trains(facades, tmp_path, evaluation):
    with pytest.raises(ConfigError, match="`patch` 286 needs `crop_size` >= 128"):
        run_experiments("patches", {**TINY, "data": str(facades)}, None, tmp_path, Budget(steps=2), evaluation)
    assert not (tmp_path / "runs").exists()
    torch.manual_seed(0)  # nothing else to check: no run folder was made
