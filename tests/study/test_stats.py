"""The fooled rate per condition against numbers computed by hand."""

from __future__ import annotations

import math

import pytest

from pix2pix.study.settings import StudySettings
from pix2pix.study.stats import (
    COUNTED,
    FAILED_ATTENTION,
    NOT_FINISHED,
    mean_error_interval,
    rater_scores,
    summarise,
)


def answers_of(rater: str, fooled: int, test: int, practice_wrong: int = 0, catch_missed: int = 0, catches: int = 0):
    """Rows as the answers database returns them: `fooled` of `test` test trials wrong, practice trials wrong too."""
    rows = [{"rater": rater, "phase": "practice", "kind": "fake", "correct": 0} for _ in range(practice_wrong)]
    rows += [{"rater": rater, "phase": "test", "kind": "fake", "correct": int(i >= fooled)} for i in range(test)]
    rows += [{"rater": rater, "phase": "test", "kind": "catch", "correct": int(i >= catch_missed)}
             for i in range(catches)]
    return rows


def rater(name: str, condition: str, answered: int = 12, trials: int = 12) -> dict:
    return {"rater": name, "condition": condition, "answered": answered, "trials": trials}


def test_a_condition_s_rate_is_the_mean_over_raters_with_its_standard_error_and_t_interval():
    # fooled rates 0.2, 0.3, 0.4, 0.5: mean 0.35, sd 0.129099, s.e. 0.0645497, t(0.975, 3) = 3.182446
    raters = [rater(f"r{i}", "cGAN", answered=12) for i in range(4)] + [rater("l", "L1")]
    answers = [row for i in range(4) for row in answers_of(f"r{i}", fooled=2 + i, test=10, practice_wrong=2)]
    answers += answers_of("l", fooled=1, test=10)
    scores = rater_scores(raters, answers, StudySettings(practice=2, test=10))
    cgan, l1 = summarise(scores, ["cGAN", "L1"])
    assert (cgan.raters, cgan.trials) == (4, 40)
    assert cgan.mean == pytest.approx(0.35)
    assert cgan.standard_error == pytest.approx(0.0645497, abs=1e-7)
    assert (cgan.ci_low, cgan.ci_high) == pytest.approx((0.35 - 0.2054264, 0.35 + 0.2054264), abs=1e-6)
    assert (l1.raters, l1.mean) == (1, pytest.approx(0.1))
    assert math.isnan(l1.standard_error) and math.isnan(l1.ci_low)


def test_the_interval_is_clipped_to_zero_and_one():
    # 0.1, 0.2, 0.3: mean 0.2, s.e. 0.057735, t(0.975, 2) = 4.302653, half width 0.248414
    mean, error, low, high = mean_error_interval([0.1, 0.2, 0.3])
    assert (mean, error, low, high) == pytest.approx((0.2, 0.0577350, 0.0, 0.448414), abs=1e-6)


def test_raters_who_fail_the_attention_rule_or_did_not_finish_are_kept_apart():
    settings = StudySettings(practice=0, test=12, catch=4, catch_pass=0.75)
    raters = [rater("ok", "a"), rater("one_miss", "a"), rater("two_misses", "a"), rater("left", "a", answered=5)]
    answers = (answers_of("ok", 3, 8, catches=4) + answers_of("one_miss", 4, 8, catch_missed=1, catches=4)
               + answers_of("two_misses", 8, 8, catch_missed=2, catches=4) + answers_of("left", 1, 5))
    scores = {score.rater: score for score in rater_scores(raters, answers, settings)}
    assert [scores[name].status for name in ("ok", "one_miss", "two_misses", "left")] == [
        COUNTED, COUNTED, FAILED_ATTENTION, NOT_FINISHED]
    assert scores["one_miss"].trials == 8 and scores["one_miss"].fooled == 4  # catch trials are not counted
    (counted,) = summarise(list(scores.values()), ["a"])
    assert counted.raters == 2 and counted.mean == pytest.approx((3 / 8 + 4 / 8) / 2)
    (failed,) = summarise(list(scores.values()), ["a"], FAILED_ATTENTION)
    assert failed.raters == 1 and failed.mean == 1.0
