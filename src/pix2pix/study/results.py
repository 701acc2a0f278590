"""`pix2pix study results`: the table printed, and STUDY/results/ with CSV files and an HTML page anyone can open."""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pix2pix.atomic import write_text_atomic
from pix2pix.study.schedule import TEST
from pix2pix.study.settings import Study
from pix2pix.study.stats import (
    COUNTED,
    FAILED_ATTENTION,
    NOT_FINISHED,
    RaterScore,
    Summary,
    rater_scores,
    summarise,
)
from pix2pix.study.store import ANSWER_COLUMNS, Store

RATER_COLUMNS = ("rater", "condition", "status", "test_trials", "fooled", "fooled_rate", "catch_trials",
                 "catch_correct")
EXPOSURE_TOLERANCE_MS = 50
"""Three frames at 60 Hz: a measured exposure further off than this is reported."""
HEADERS = ("condition", "raters", "trials", "fooled (mean ± s.e.)", "95% CI")
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; }
th { background: #f4f4f4; }
.note { color: #555; }
"""


@dataclass(frozen=True)
class Results:
    """What `results` found: counted raters' summaries, those who failed the attention rule, and every rater."""

    study: Study
    counted: list[Summary]
    failed_attention: list[Summary]
    scores: list[RaterScore]
    answers: list[dict]

    def off_exposure(self) -> int:
        """Test trials shown for a time further than EXPOSURE_TOLERANCE_MS from the setting (a busy or hidden page)."""
        target = 1000 * self.study.settings.exposure_s
        return sum(answer["phase"] == TEST and abs(answer["exposure_ms"] - target) > EXPOSURE_TOLERANCE_MS
                   for answer in self.answers)

    def count(self, status: str) -> int:
        return sum(score.status == status for score in self.scores)


def study_results(study: Study) -> Results:
    store = Store(study)
    answers = store.answers()
    scores = rater_scores(store.raters(), answers, study.settings)
    return Results(study, summarise(scores, study.conditions), summarise(scores, study.conditions, FAILED_ATTENTION),
                   scores, answers)


def format_table(summaries: Sequence[Summary]) -> str:
    """The paper's table, one condition a line, in columns."""
    rows = [HEADERS] + [_cells(summary) for summary in summaries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def format_report(results: Results) -> str:
    """What the command prints: the table, and the raters not in it."""
    lines = [format_table(results.counted)]
    if results.count(FAILED_ATTENTION):
        lines += ["", f"Failed the attention rule (not counted above): {results.count(FAILED_ATTENTION)} rater(s)",
                  format_table([summary for summary in results.failed_attention if summary.raters])]
    if results.off_exposure():
        lines += ["", f"{results.off_exposure()} test trial(s) were shown more than {EXPOSURE_TOLERANCE_MS} ms longer "
                      "or shorter than the exposure (counted; see exposure_ms in answers.csv)"]
    if results.count(NOT_FINISHED):
        lines += ["", f"Not finished (not counted above): {results.count(NOT_FINISHED)} rater(s), listed in raters.csv"]
    return "\n".join(lines)


def write_results(results: Results) -> Path:
    """STUDY/results/summary.csv, raters.csv, answers.csv (practice included) and index.html; returns the page."""
    out = results.study.results
    summaries = [(COUNTED, summary) for summary in results.counted]
    summaries += [(FAILED_ATTENTION, summary) for summary in results.failed_attention]
    write_text_atomic(out / "summary.csv", _csv(("group", *Summary.__dataclass_fields__),
                                                [(group, *asdict(summary).values()) for group, summary in summaries]))
    write_text_atomic(out / "raters.csv", _csv(RATER_COLUMNS, [_rater_row(score) for score in results.scores]))
    write_text_atomic(out / "answers.csv", _csv(ANSWER_COLUMNS, [[row[name] for name in ANSWER_COLUMNS]
                                                                 for row in results.answers]))
    page = out / "index.html"
    write_text_atomic(page, _html(results))
    return page


def _cells(summary: Summary) -> tuple[str, ...]:
    if math.isnan(summary.mean):
        fooled = "no raters yet"
    elif math.isnan(summary.standard_error):
        fooled = f"{_percent(summary.mean)} (one rater)"
    else:
        fooled = f"{_percent(summary.mean)} ± {_percent(summary.standard_error)}"
    interval = "" if math.isnan(summary.ci_low) else f"[{_percent(summary.ci_low)}, {_percent(summary.ci_high)}]"
    return summary.condition, str(summary.raters), str(summary.trials), fooled, interval


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def _rater_row(score: RaterScore) -> tuple:
    rate = "" if math.isnan(score.fooled_rate) else f"{score.fooled_rate:.6g}"
    return (score.rater, score.condition, score.status, score.trials, score.fooled, rate, score.catch_trials,
            score.catch_correct)


def _csv(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue()


def _html(results: Results) -> str:
    settings = results.study.settings
    protocol = (f"{settings.practice} practice trials with feedback, then {settings.test} test trials without "
                f"({settings.catch} of them catch trials); {settings.exposure_s:g} s of exposure; "
                f"{settings.size}x{settings.size} images; real and fake from "
                f"{'the same input' if settings.paired else 'different inputs'}.")
    parts = [f"<h1>Perceptual study: {_escape(results.study.folder.resolve().name)}</h1>",
             f"<p>{_escape(protocol)}</p>",
             "<h2>Fake taken for real (test trials)</h2>", _table(HEADERS, [_cells(s) for s in results.counted]),
             '<p class="note">Mean over raters ± standard error; 95% confidence interval by Student\'s t over '
             "raters. 50% means raters cannot tell the fake from the real. Practice trials are excluded.</p>"]
    if results.count(FAILED_ATTENTION):
        parts += [f"<h2>Failed the attention rule ({results.count(FAILED_ATTENTION)} rater(s), not counted)</h2>",
                  _table(HEADERS, [_cells(s) for s in results.failed_attention if s.raters])]
    parts += ["<h2>Raters</h2>", _table([column.replace("_", " ") for column in RATER_COLUMNS],
                                        [_rater_row(score) for score in results.scores])]
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Perceptual study</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n")


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{_escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{_escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _escape(value: object) -> str:
    return html.escape(str(value), quote=True)
