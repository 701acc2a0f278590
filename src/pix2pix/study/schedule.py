"""Who sees what: each rater's condition and trials, made on their first visit from the study's seed and their
order of arrival, so that a schedule is reproducible and never depends on the server's state beyond that order.

Conditions are assigned in blocks: every run of as many raters as there are conditions gets each condition once,
in a seeded random order, so that counts never differ by more than one. Within a rater no input is shown twice
(paired trials show one input as real and as fake; unpaired ones two different inputs), practice trials come
first, and the fake is on the left in half of the practice and half of the test trials (one more on a random side
when the count is odd).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from pix2pix.study.settings import Study, StudyError, StudySettings

PRACTICE, TEST = "practice", "test"
FAKE, CATCH = "fake", "catch"
LEFT, RIGHT = "left", "right"


@dataclass(frozen=True)
class Trial:
    """One trial as a rater sees it: the real and the fake image (paths in the study folder), and where the fake is."""

    trial: int
    phase: str
    kind: str
    real_input: str
    fake_input: str
    real: str
    fake: str
    fake_side: str

    def as_row(self) -> dict[str, object]:
        return asdict(self)


def condition_for(arrival: int, conditions: Sequence[str], seed: int) -> str:
    """The condition of the rater who arrived `arrival`-th (from 0): block randomisation over conditions."""
    block, position = divmod(arrival, len(conditions))
    order = list(conditions)
    random.Random(f"{seed}:block:{block}").shuffle(order)
    return order[position]


def rater_schedule(study: Study, arrival: int) -> tuple[str, list[Trial]]:
    """The condition and the trials of the `arrival`-th rater (from 0)."""
    settings = study.settings
    condition = condition_for(arrival, study.conditions, settings.seed)
    rng = random.Random(f"{settings.seed}:rater:{arrival}")
    kinds = [FAKE] * settings.practice + _shuffled([CATCH] * settings.catch + [FAKE] * (settings.test - settings.catch),
                                                   rng)
    inputs = pick_inputs(rng, kinds, list(study.real), list(study.fakes[condition]), settings.paired)
    sides = _balanced_sides(settings.practice, rng) + _balanced_sides(settings.test, rng)
    trials = []
    for index, (kind, (real_name, fake_name), side) in enumerate(zip(kinds, inputs, sides)):
        fake = study.broken[fake_name] if kind == CATCH else study.fakes[condition][fake_name]
        phase = PRACTICE if index < settings.practice else TEST
        trials.append(Trial(index, phase, kind, real_name, fake_name, study.real[real_name], fake, side))
    return condition, trials


def pick_inputs(rng: random.Random, kinds: Sequence[str], real_names: list[str], fake_names: list[str],
                paired: bool) -> list[tuple[str, str]]:
    """(real input, fake input) per trial, no input twice. A catch trial's broken image is made from its own real
    image; a paired trial's fake from its real image's input; an unpaired trial's fake from another input."""
    reals, fakes = _shuffled(sorted(real_names), rng), _shuffled(sorted(fake_names), rng)
    fake_set, used, picked = set(fake_names), set(), []
    for kind in kinds:
        if kind == CATCH or paired:
            candidates = reals if kind == CATCH else [name for name in reals if name in fake_set]
            name = _next_unused(candidates, used)
            picked.append((name, name))
        else:
            fake = _next_unused(fakes, used)
            picked.append((_next_unused(reals, used), fake))
    return picked


def check_enough_images(settings: StudySettings, real_names: list[str], fakes: dict[str, list[str]]) -> None:
    """A StudyError when a rater's trials would need an input twice."""
    kinds = [FAKE] * (settings.trials - settings.catch) + [CATCH] * settings.catch
    for label, fake_names in fakes.items():
        try:
            pick_inputs(random.Random(settings.seed), kinds, real_names, fake_names, settings.paired)
        except _OutOfInputs as err:
            per_trial = "one input" if settings.paired else "two different inputs (real and fake)"
            raise StudyError(
                f"condition {label!r}: {settings.trials} trials (`practice` + `test`) of {per_trial} each need "
                f"more images than the {len(real_names)} real and {len(fake_names)} fake ones given ({err}); "
                "give more images or fewer trials") from err


class _OutOfInputs(Exception):
    pass


def _next_unused(names: list[str], used: set[str]) -> str:
    for name in names:
        if name not in used:
            used.add(name)
            return name
    raise _OutOfInputs(f"ran out after {len(used)} inputs")


def _balanced_sides(count: int, rng: random.Random) -> list[str]:
    sides = [LEFT] * (count // 2) + [RIGHT] * (count // 2) + ([rng.choice([LEFT, RIGHT])] if count % 2 else [])
    return _shuffled(sides, rng)


def _shuffled(items: list, rng: random.Random) -> list:
    items = list(items)
    rng.shuffle(items)
    return items
