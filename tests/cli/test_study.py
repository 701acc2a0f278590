"""`pix2pix study` from the shell: a study made, its results printed and written, errors in one line."""

from __future__ import annotations

import csv

from pix2pix.cli import main
from pix2pix.study.schedule import CATCH
from pix2pix.study.settings import load_study
from pix2pix.study.store import Store
from tests.study.conftest import write_images


def make_study(tmp_path, *extra: str) -> str:
    names = [f"n{i:02d}" for i in range(16)]
    real = write_images(tmp_path / "real", names, seed=0)
    fakes = [f"{label}={write_images(tmp_path / label, names, seed=seed)}" for seed, label in enumerate(("a", "b"), 1)]
    assert main(["study", "create", str(tmp_path / "s"), "--real", str(real), "--fake", fakes[0], "--fake", fakes[1],
                 "--size", "32", *extra]) == 0
    return str(tmp_path / "s")


def rate(store: Store, rater: str, fooled: int, catch_right: bool = True, exposure_ms: float = 1000.0) -> str:
    """Answers every trial: the first `fooled` test trials wrong, catch trials as told, the rest right."""
    session = store.session(rater)
    wrong_left = 0
    for trial in session.trials:
        right = trial.fake_side
        wrong = "left" if right == "right" else "right"
        if trial.kind == CATCH:
            side = right if catch_right else wrong
        elif trial.phase == "test" and wrong_left < fooled:
            side, wrong_left = wrong, wrong_left + 1
        else:
            side = right
        store.record(rater, trial.trial, side, exposure_ms, 500.0)
    return session.condition


def test_results_print_the_table_and_keep_raters_who_failed_the_attention_rule_apart(tmp_path, capsys):
    study_dir = make_study(tmp_path, "--practice", "1", "--test", "5", "--catch", "1")
    store = Store(load_study(study_dir))
    conditions = [rate(store, "r0", 1), rate(store, "r1", 2), rate(store, "r2", 4, exposure_ms=1051),
                  rate(store, "r3", 0, False)]
    store.session("r4")  # opened the page, answered nothing
    capsys.readouterr()
    assert main(["study", "results", study_dir]) == 0
    printed = capsys.readouterr().out
    assert "Failed the attention rule (not counted above): 1 rater(s)" in printed
    assert "Not finished (not counted above): 1 rater(s)" in printed
    assert "5 test trial(s) were shown more than 50 ms longer or shorter" in printed
    rows = list(csv.DictReader(open(f"{study_dir}/results/summary.csv")))
    counted = {row["condition"]: row for row in rows if row["group"] == "counted"}
    by_condition = {label: [f for f, c in zip((1, 2, 4), conditions) if c == label] for label in ("a", "b")}
    for label, fooled in by_condition.items():
        assert int(counted[label]["raters"]) == len(fooled)
        assert int(counted[label]["trials"]) == 4 * len(fooled)
        assert float(counted[label]["mean"]) == sum(f / 4 for f in fooled) / len(fooled)
        assert f"{100 * sum(f / 4 for f in fooled) / len(fooled):.1f}%" in printed
    statuses = [row["status"] for row in csv.DictReader(open(f"{study_dir}/results/raters.csv"))]
    assert statuses == ["counted", "counted", "counted", "failed attention", "not finished"]
    assert len(list(csv.DictReader(open(f"{study_dir}/results/answers.csv")))) == 4 * 6


def test_errors_are_one_line_naming_the_flag(tmp_path, capsys):
    study_dir = make_study(tmp_path, "--practice", "2", "--test", "4")
    capsys.readouterr()
    assert main(["study", "create", study_dir, "--real", str(tmp_path / "real"), "--fake", f"a={tmp_path / 'a'}"]) == 2
    assert "a study exists here already" in capsys.readouterr().err
    assert main(["study", "create", str(tmp_path / "t"), "--real", str(tmp_path / "real"), "--fake", "nolabel"]) == 2
    assert "--fake 'nolabel': give LABEL=DIR" in capsys.readouterr().err
    assert main(["study", "create", str(tmp_path / "t"), "--real", str(tmp_path / "real"),
                 "--fake", f"a={tmp_path / 'a'}", "--test", "3", "--catch", "3"]) == 2
    assert "--catch must be at least 0 and below --test" in capsys.readouterr().err
    assert main(["study", "serve", str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no study here; make one with `pix2pix study create" in error
