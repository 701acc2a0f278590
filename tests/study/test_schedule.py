"""Each rater's schedule: balanced conditions and sides, no input twice, practice first, reproducible by seed."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from pix2pix.study.schedule import CATCH, FAKE, LEFT, PRACTICE, TEST, check_enough_images, rater_schedule
from pix2pix.study.settings import StudyError, StudySettings
from tests.study.conftest import name_study


def test_conditions_stay_balanced_as_raters_arrive():
    study = name_study(40, conditions=("a", "b", "c"), practice=2, test=4)
    counts = Counter()
    for arrival in range(20):
        condition, _ = rater_schedule(study, arrival)
        counts[condition] += 1
        assert max(counts.values()) - min(counts[label] for label in study.conditions) <= 1
    assert set(counts) == {"a", "b", "c"}


def test_practice_comes_first_and_sides_are_balanced_in_each_phase():
    study = name_study(200, practice=10, test=40)
    _, trials = rater_schedule(study, 0)
    assert [trial.phase for trial in trials] == [PRACTICE] * 10 + [TEST] * 40
    assert [trial.trial for trial in trials] == list(range(50))
    for phase, count in ((PRACTICE, 10), (TEST, 40)):
        lefts = sum(trial.fake_side == LEFT for trial in trials if trial.phase == phase)
        assert lefts == count // 2


def test_unpaired_trials_show_no_input_twice_and_the_condition_s_fakes():
    study = name_study(100, practice=10, test=40)
    condition, trials = rater_schedule(study, 1)
    shown = [trial.real_input for trial in trials] + [trial.fake_input for trial in trials]
    assert len(shown) == len(set(shown)) == 100
    assert all(trial.fake == f"fake/{condition}/{trial.fake_input}" for trial in trials)
    assert all(trial.real == f"real/{trial.real_input}" for trial in trials)


def test_paired_trials_show_one_input_as_real_and_fake():
    study = name_study(50, practice=10, test=40, paired=True)
    _, trials = rater_schedule(study, 0)
    assert all(trial.real_input == trial.fake_input for trial in trials)
    assert len({trial.real_input for trial in trials}) == 50


def test_catch_trials_are_test_trials_with_a_broken_fake():
    study = name_study(100, practice=4, test=10, catch=3)
    _, trials = rater_schedule(study, 0)
    catches = [trial for trial in trials if trial.kind == CATCH]
    assert len(catches) == 3 and all(trial.phase == TEST for trial in catches)
    assert all(trial.fake == f"broken/{trial.real_input}" for trial in catches)
    assert sum(trial.kind == FAKE for trial in trials) == 11


def test_schedules_are_reproducible_by_seed_and_fresh_for_each_rater():
    study = name_study(100, practice=10, test=40, seed=7)
    assert rater_schedule(study, 3) == rater_schedule(name_study(100, practice=10, test=40, seed=7), 3)
    orders = {tuple(trial.fake_input for trial in rater_schedule(study, arrival)[1]) for arrival in range(6)}
    assert len(orders) == 6
    assert rater_schedule(study, 3) != rater_schedule(name_study(100, practice=10, test=40, seed=8), 3)


def test_too_few_images_for_the_trials_is_an_error_that_says_so():
    names = [f"n{i}" for i in range(60)]
    with pytest.raises(StudyError, match="50 trials .* two different inputs"):
        check_enough_images(StudySettings(), names, {"L1": names})
    check_enough_images(StudySettings(paired=True), names, {"L1": names})


def test_every_arrival_gets_a_valid_schedule_with_random_sizes():
    rng = random.Random(0)
    for arrival in range(30):
        practice, test = rng.randint(0, 5), rng.randint(1, 9)
        study = name_study(2 * (practice + test), practice=practice, test=test, catch=rng.randint(0, test - 1))
        _, trials = rater_schedule(study, arrival)
        assert len(trials) == practice + test
        images = [trial.real for trial in trials] + [trial.fake for trial in trials]
        assert len(set(images)) == len(images)
