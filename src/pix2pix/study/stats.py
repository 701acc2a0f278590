"""The paper's number: per condition, the share of test trials in which the fake was taken for real.

A rater's fooled rate is the share of their test trials (catch trials aside) in which they picked the real image
as the fake. Raters are the unit: a condition's rate is the mean over its raters ± the standard error of that mean
(sample standard deviation / sqrt(n)), as the paper reports it, and its 95% confidence interval is Student's t
over raters (mean ± t(0.975, n-1) x standard error, clipped to [0, 1]); trials of one rater are not independent,
so an interval over pooled trials (Wilson) would be too narrow. One rater gives no spread: no error, no interval.

Counted are the raters who answered every trial and passed the attention rule: with catch trials in the study, a
rater passes by calling the broken image fake in at least `catch_pass` of their catch trials. The others are
summarised apart (failed the attention rule) or listed (not finished), never left out silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pix2pix.study.schedule import CATCH, FAKE, TEST
from pix2pix.study.settings import StudySettings

COUNTED, FAILED_ATTENTION, NOT_FINISHED = "counted", "failed attention", "not finished"


@dataclass(frozen=True)
class RaterScore:
    """One rater's test trials: how often the fake fooled them, and their catch trials."""

    rater: str
    condition: str
    trials: int
    fooled: int
    catch_trials: int
    catch_correct: int
    status: str

    @property
    def fooled_rate(self) -> float:
        return self.fooled / self.trials if self.trials else math.nan


@dataclass(frozen=True)
class Summary:
    """A condition's fooled rate over its raters (the paper's form) and its 95% confidence interval."""

    condition: str
    raters: int
    trials: int
    mean: float
    standard_error: float
    ci_low: float
    ci_high: float


def rater_scores(raters: Iterable[dict], answers: Iterable[dict], settings: StudySettings) -> list[RaterScore]:
    """Each rater's score from the answers database's rows (`Store.raters`, `Store.answers`)."""
    tests: dict[str, list[dict]] = {}
    for answer in answers:
        if answer["phase"] == TEST:
            tests.setdefault(answer["rater"], []).append(answer)
    scores = []
    for rater in raters:
        mine = tests.get(rater["rater"], [])
        fakes = [answer for answer in mine if answer["kind"] == FAKE]
        catches = [answer for answer in mine if answer["kind"] == CATCH]
        catch_correct = sum(bool(answer["correct"]) for answer in catches)
        status = _status(rater["answered"] >= rater["trials"], catch_correct, len(catches), settings.catch_pass)
        scores.append(RaterScore(rater["rater"], rater["condition"], len(fakes),
                                 sum(not answer["correct"] for answer in fakes), len(catches), catch_correct, status))
    return scores


def summarise(scores: Sequence[RaterScore], conditions: Sequence[str], status: str = COUNTED) -> list[Summary]:
    """Per condition, over the raters of `status` who have test trials."""
    summaries = []
    for condition in conditions:
        chosen = [score for score in scores if score.condition == condition and score.status == status
                  and score.trials]
        mean, error, low, high = mean_error_interval([score.fooled_rate for score in chosen])
        summaries.append(Summary(condition, len(chosen), sum(score.trials for score in chosen), mean, error, low, high))
    return summaries


def mean_error_interval(rates: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, standard error of the mean and its t interval (clipped to [0, 1]); NaN where `rates` cannot tell."""
    n = len(rates)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = sum(rates) / n
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    deviation = math.sqrt(sum((rate - mean) ** 2 for rate in rates) / (n - 1))
    error = deviation / math.sqrt(n)
    from scipy.stats import t  # imported here: the server never needs scipy

    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * error
    return mean, error, max(0.0, mean - half), min(1.0, mean + half)


def _status(finished: bool, catch_correct: int, catch_trials: int, catch_pass: float) -> str:
    if not finished:
        return NOT_FINISHED
    if catch_trials and catch_correct < catch_pass * catch_trials:
        return FAILED_ATTENTION
    return COUNTED
