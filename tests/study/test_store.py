"""The answers database: sessions made once and resumed, answers in order, each committed on its own."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from pix2pix.study.create import create_study
from pix2pix.study.settings import StudySettings, load_study
from pix2pix.study.store import AnswerRefused, Store


@pytest.fixture
def study(model_folders, tmp_path):
    real, fakes = model_folders
    return create_study(tmp_path / "study", real, fakes, StudySettings(practice=1, test=3, size=32)).study


def test_a_rater_s_session_is_made_once_and_resumed_where_they_left_off(study):
    store = Store(study)
    first = store.session("ann")
    store.record("ann", 0, first.trials[0].fake_side, 1000.0, 800.0)
    again = Store(load_study(study.folder)).session("ann")
    assert again.trials == first.trials and again.condition == first.condition
    assert again.answered == 1 and not again.done
    assert store.session("bob").condition != first.condition  # the second arrival gets the other condition


def test_answers_are_taken_in_order_and_a_resent_answer_is_not_recorded_twice(study):
    store = Store(study)
    trials = store.session("ann").trials
    with pytest.raises(AnswerRefused, match="trial 0 next, not trial 1"):
        store.record("ann", 1, "left", 1000.0, 500.0)
    with pytest.raises(AnswerRefused, match="no trial"):
        store.record("nobody", 0, "left", 1000.0, 500.0)
    wrong = "left" if trials[0].fake_side == "right" else "right"
    assert store.record("ann", 0, wrong, 1001.0, 500.0).correct is False
    resent = store.record("ann", 0, trials[0].fake_side, 1001.0, 500.0)
    assert (resent.new, resent.answer, resent.correct) == (False, wrong, False)
    for trial in trials[1:]:
        assert store.record("ann", trial.trial, trial.fake_side, 1000.0, 400.0).correct
    assert store.session("ann").done
    rows = store.answers()
    assert [row["trial"] for row in rows] == [0, 1, 2, 3]
    assert rows[0]["phase"] == "practice" and rows[1]["phase"] == "test"
    assert rows[0]["fake"] == trials[0].fake and rows[0]["exposure_ms"] == 1001.0


def test_the_database_is_in_wal_mode_and_every_answer_is_committed_at_once(study):
    store = Store(study)
    trial = store.session("ann").trials[0]
    store.record("ann", 0, "left", 1000.0, 300.0)
    other = sqlite3.connect(study.database)  # another process's view, while the store holds no connection
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT rater, trial, answer, fake_side FROM answers").fetchall() == [
        ("ann", 0, "left", trial.fake_side)]


def test_raters_arriving_at_once_get_distinct_arrivals_and_keep_their_own_answers(study):
    store, errors = Store(study), []

    def rate(name: str) -> None:
        try:
            for trial in store.session(name).trials:
                store.record(name, trial.trial, "left", 1000.0, float(len(name)))
        except Exception as err:  # reported below: an assertion in a thread would be lost
            errors.append(err)

    names = [f"rater{i}" * (i + 1) for i in range(6)]
    threads = [threading.Thread(target=rate, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    raters = store.raters()
    assert sorted(row["arrival"] for row in raters) == list(range(6))
    assert all(row["answered"] == 4 for row in raters)
    assert all(row["reaction_ms"] == len(row["rater"]) for row in store.answers())
