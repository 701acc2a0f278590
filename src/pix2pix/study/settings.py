"""A study folder's settings and image lists (study.json): written once by `create`, read by the schedule, the
server and the results, so that every rater and every report uses the settings the study was made with."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pix2pix.atomic import write_text_atomic

STUDY_FILE = "study.json"
DATABASE_FILE = "answers.sqlite"
IMAGES_DIR = "images"
RESULTS_DIR = "results"
FORMAT = 1
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
"""A condition's label: also its folder name under images/fake/ and a URL path segment."""


class StudyError(ValueError):
    """A study that cannot be made, served or read as asked; the message names the file or setting and the fix."""


@dataclass(frozen=True)
class StudySettings:
    """The protocol of Isola et al. (after Zhang et al.'s colorization study) by default: 10 practice trials with
    feedback, 40 test trials without, 1 s of exposure, 256x256 images, real and fake from different inputs."""

    practice: int = 10
    test: int = 40
    exposure_s: float = 1.0
    size: int = 256
    paired: bool = False
    catch: int = 0
    """Test trials whose fake is an obviously broken image (the attention check); not counted for any condition."""
    catch_pass: float = 0.75
    """A rater passes the attention check by calling the broken image fake in at least this share of catch trials."""
    seed: int = 0

    def check(self) -> None:
        """Every setting in its range, named as the library names settings."""
        rules = [("practice", self.practice >= 0, "at least 0"), ("test", self.test >= 1, "at least 1"),
                 ("exposure_s", 0 < self.exposure_s <= 60, "in (0, 60] seconds"),
                 ("size", 16 <= self.size <= 2048, "in [16, 2048] pixels"),
                 ("catch", 0 <= self.catch < self.test, "at least 0 and below `test`"),
                 ("catch_pass", 0 <= self.catch_pass <= 1, "in [0, 1]")]
        for name, holds, rule in rules:
            if not holds:
                raise StudyError(f"`{name}` must be {rule}, got {getattr(self, name)}")

    @property
    def trials(self) -> int:
        return self.practice + self.test

    @property
    def inputs_per_trial(self) -> int:
        """Paired trials show one input twice (real and fake); unpaired ones two different inputs."""
        return 1 if self.paired else 2


@dataclass(frozen=True)
class Study:
    """A prepared study: its folder, settings, and the images (paths relative to the folder) by input name."""

    folder: Path
    settings: StudySettings
    real: dict[str, str]
    fakes: dict[str, dict[str, str]]
    """Condition label -> input name -> image path."""
    broken: dict[str, str] = field(default_factory=dict)
    """Input name -> the broken image made from its real image, for catch trials."""
    id: str = ""
    """Random, made at creation: the page keys its rater id by it, so two studies served in turn never share one."""

    @property
    def conditions(self) -> list[str]:
        return list(self.fakes)

    @property
    def database(self) -> Path:
        return self.folder / DATABASE_FILE

    @property
    def results(self) -> Path:
        return self.folder / RESULTS_DIR

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "id": self.id, "settings": asdict(self.settings), "conditions": self.conditions,
                "real": self.real, "fakes": self.fakes, "broken": self.broken}

    def save(self) -> None:
        write_text_atomic(self.folder / STUDY_FILE, json.dumps(self.to_json(), indent=1) + "\n")


def load_study(folder: Path) -> Study:
    """The study in `folder`, or a StudyError saying how to make one."""
    folder = Path(folder)
    path = folder / STUDY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise StudyError(f"{path}: no study here; make one with `pix2pix study create {folder} ...`") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StudyError(f"{path}: not valid JSON ({err}); the study file is damaged") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StudyError(f"{path}: not a study file of format {FORMAT}")
    try:
        settings = StudySettings(**data["settings"])
        fakes = {label: dict(data["fakes"][label]) for label in data["conditions"]}
        return Study(folder, settings, dict(data["real"]), fakes, dict(data["broken"]), str(data["id"]))
    except (KeyError, TypeError) as err:
        raise StudyError(f"{path}: missing or unexpected entry {err}; the study file is damaged") from err
