"""A rater in a real browser (Debian's Chromium under Playwright) against `pix2pix study serve`: practice with
feedback, test trials, closing the page and coming back, then `pix2pix study results` on what they answered."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from pix2pix.cli import main
from tests.study.conftest import serve

EXPOSURE_MS = 500
ARTIFACTS = Path(os.environ.get("PIX2PIX_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")) / "study"
"""Screenshots of a trial and of the results page, and the printed table, kept for people to look at."""


@pytest.fixture
def study_dir(model_folders, tmp_path) -> Path:
    real, fakes = model_folders
    assert main(["study", "create", str(tmp_path / "study"), "--real", str(real), "--fake", f"L1={fakes['L1']}",
                 "--fake", f"L1+cGAN={fakes['L1+cGAN']}", "--practice", "2", "--test", "3", "--catch", "1",
                 "--catch-pass", "0", "--exposure", str(EXPOSURE_MS / 1000), "--size", "128"]) == 0
    return tmp_path / "study"


def answer_trials(page, count: int, screenshot: Path | None = None) -> list[str]:
    """Answers `count` trials by clicking (the last by key), clicking through messages; the feedback seen."""
    feedback = []
    for index in range(count):
        page.wait_for_selector("body[data-state=showing], body[data-state=message]")
        if page.evaluate("document.body.dataset.state") == "message":
            page.click("#go")
            page.wait_for_selector("body[data-state=showing]")
        if screenshot is not None and index == count - 1:
            page.screenshot(path=screenshot)
        page.wait_for_selector("body[data-state=question]")
        if index == count - 1:
            page.keyboard.press("f")
        else:
            page.click("#left" if index % 2 else "#right")
        page.wait_for_function("!['question', 'sending'].includes(document.body.dataset.state)")
        if page.evaluate("document.body.dataset.state") == "feedback":
            feedback.append(page.inner_text("#feedback"))
    return feedback


def test_a_rater_in_the_browser_practises_answers_comes_back_and_is_counted(browser, study_dir, capsys):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for server in serve(study_dir, cli=True):
        context = browser.new_context(viewport={"width": 900, "height": 500})
        page = context.new_page()
        page.goto(server.url)
        page.wait_for_selector("body[data-state=message]")
        assert "2 trials are practice" in page.inner_text("#text")
        page.click("#go")
        feedback = answer_trials(page, 4, screenshot=ARTIFACTS / "trial.png")
        page.close()  # closed before the last trial: the same browser continues where it left off
        page = context.new_page()
        page.goto(server.url)
        page.wait_for_selector("body[data-state=message]")
        assert "trial 5 of 5" in page.inner_text("#text")
        page.click("#go")
        assert answer_trials(page, 1) == []
        page.wait_for_selector("body[data-state=done]")
        page.reload()  # a second session is refused
        page.wait_for_selector("body[data-state=done]")
        assert "completed this study already" in page.inner_text("#text")
        page.goto(server.url + "?rater=no%20spaces")
        page.wait_for_selector("body[data-state=done]")
        assert "must be 1 to 64 letters" in page.inner_text("#text")
    assert len(feedback) == 2 and all(text.startswith(("Correct", "Wrong")) for text in feedback)

    with sqlite3.connect(study_dir / "answers.sqlite") as db:
        rows = db.execute("SELECT phase, kind, answer, correct, exposure_ms, reaction_ms FROM answers "
                          "ORDER BY trial").fetchall()
        raters = db.execute("SELECT rater FROM raters").fetchall()
    assert len(raters) == 1 and raters[0][0].startswith("r")
    assert [row[0] for row in rows] == ["practice"] * 2 + ["test"] * 3
    assert [row[2] for row in rows] == ["right", "left", "right", "left", "left"]
    assert sum(row[1] == "catch" for row in rows) == 1
    for *_, exposure_ms, reaction_ms in rows:
        assert EXPOSURE_MS - 20 <= exposure_ms <= EXPOSURE_MS + 120  # to about a frame; a loaded machine drops some
        assert 0 < reaction_ms < 30_000

    capsys.readouterr()
    assert main(["study", "results", str(study_dir)]) == 0
    printed = capsys.readouterr().out
    (ARTIFACTS / "results.txt").write_text(printed)
    assert "fooled (mean ± s.e.)" in printed and "(one rater)" in printed and "no raters yet" in printed
    page = browser.new_page()
    page.goto((study_dir / "results" / "index.html").as_uri())
    assert "Fake taken for real" in page.inner_text("body")
    page.screenshot(path=ARTIFACTS / "results.png", full_page=True)
    page.close()
