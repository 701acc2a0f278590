"""The study's answers in one SQLite file (the standard library's sqlite3): every answer committed in its own
transaction, in WAL mode with full sync, so that a server killed between two answers loses none it acknowledged.

Each call opens its own connection, so the server's worker threads never share one; writes take the database's
write lock at their start (BEGIN IMMEDIATE), so that two raters arriving at once get different arrival numbers and
two answers of one rater cannot both be taken as the next one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pix2pix.study.schedule import Trial, rater_schedule
from pix2pix.study.settings import Study, StudyError

SCHEMA = """
CREATE TABLE IF NOT EXISTS raters (
    rater TEXT PRIMARY KEY,
    arrival INTEGER NOT NULL UNIQUE,
    condition TEXT NOT NULL,
    started REAL NOT NULL,
    user_agent TEXT
);
CREATE TABLE IF NOT EXISTS trials (
    rater TEXT NOT NULL REFERENCES raters (rater),
    trial INTEGER NOT NULL,
    phase TEXT NOT NULL,
    kind TEXT NOT NULL,
    real_input TEXT NOT NULL,
    fake_input TEXT NOT NULL,
    real TEXT NOT NULL,
    fake TEXT NOT NULL,
    fake_side TEXT NOT NULL,
    PRIMARY KEY (rater, trial)
);
CREATE TABLE IF NOT EXISTS answers (
    rater TEXT NOT NULL,
    trial INTEGER NOT NULL,
    condition TEXT NOT NULL,
    phase TEXT NOT NULL,
    kind TEXT NOT NULL,
    real TEXT NOT NULL,
    fake TEXT NOT NULL,
    fake_side TEXT NOT NULL,
    answer TEXT NOT NULL CHECK (answer IN ('left', 'right')),
    correct INTEGER NOT NULL,
    exposure_ms REAL NOT NULL,
    reaction_ms REAL NOT NULL,
    answered REAL NOT NULL,
    PRIMARY KEY (rater, trial),
    FOREIGN KEY (rater, trial) REFERENCES trials (rater, trial)
);
"""
TRIAL_COLUMNS = ("trial", "phase", "kind", "real_input", "fake_input", "real", "fake", "fake_side")
ANSWER_COLUMNS = ("rater", "trial", "condition", "phase", "kind", "real", "fake", "fake_side", "answer", "correct",
                  "exposure_ms", "reaction_ms", "answered")


class AnswerRefused(StudyError):
    """An answer that is not the rater's next one (or names no trial of theirs); nothing was recorded."""


@dataclass(frozen=True)
class Session:
    """A rater's session as the page needs it: their trials and how many they have answered."""

    rater: str
    condition: str
    trials: list[Trial]
    answered: int

    @property
    def done(self) -> bool:
        return self.answered >= len(self.trials)


@dataclass(frozen=True)
class Recorded:
    """An answer as stored; `new` is False when this trial had been answered before (a resent answer)."""

    trial: Trial
    answer: str
    correct: bool
    new: bool


class Store:
    """The answers database of one study."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.path = study.database
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as err:
            raise StudyError(f"{self.path}: cannot open the answers database ({err})") from err
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the write lock from its start; committed when the block ends."""
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def session(self, rater: str, user_agent: str = "") -> Session:
        """The rater's session: made on their first visit (the next arrival number and its schedule), resumed after."""
        with self._transaction() as db:
            row = db.execute("SELECT condition FROM raters WHERE rater = ?", (rater,)).fetchone()
            if row is None:
                arrival = db.execute("SELECT COUNT(*) FROM raters").fetchone()[0]
                condition, trials = rater_schedule(self.study, arrival)
                db.execute("INSERT INTO raters VALUES (?, ?, ?, ?, ?)",
                           (rater, arrival, condition, time.time(), user_agent[:500]))
                db.executemany(f"INSERT INTO trials VALUES (?, {', '.join('?' * len(TRIAL_COLUMNS))})",
                               [(rater, *(getattr(trial, name) for name in TRIAL_COLUMNS)) for trial in trials])
            else:
                condition = row["condition"]
            return Session(rater, condition, self._trials(db, rater), self._answered(db, rater))

    def record(self, rater: str, trial: int, answer: str, exposure_ms: float, reaction_ms: float) -> Recorded:
        """Stores the rater's answer to `trial` (which side they took for the fake), if it is their next one; an
        answer sent again returns what was stored the first time."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM trials WHERE rater = ? AND trial = ?", (rater, trial)).fetchone()
            if row is None:
                raise AnswerRefused(f"rater {rater!r} has no trial {trial}")
            shown = Trial(**{name: row[name] for name in TRIAL_COLUMNS})
            stored = db.execute("SELECT answer, correct FROM answers WHERE rater = ? AND trial = ?",
                                (rater, trial)).fetchone()
            if stored is not None:
                return Recorded(shown, stored["answer"], bool(stored["correct"]), new=False)
            expected = self._answered(db, rater)
            if trial != expected:
                raise AnswerRefused(f"rater {rater!r} answers trial {expected} next, not trial {trial}")
            condition = db.execute("SELECT condition FROM raters WHERE rater = ?", (rater,)).fetchone()[0]
            correct = answer == shown.fake_side
            db.execute(f"INSERT INTO answers VALUES ({', '.join('?' * len(ANSWER_COLUMNS))})",
                       (rater, trial, condition, shown.phase, shown.kind, shown.real, shown.fake, shown.fake_side,
                        answer, int(correct), exposure_ms, reaction_ms, time.time()))
            return Recorded(shown, answer, correct, new=True)

    def trial(self, rater: str, trial: int) -> Trial | None:
        """One trial of the rater's schedule, or None when they have no such trial."""
        with self._connection() as db:
            row = db.execute(f"SELECT {', '.join(TRIAL_COLUMNS)} FROM trials WHERE rater = ? AND trial = ?",
                             (rater, trial)).fetchone()
        return None if row is None else Trial(**dict(row))

    def answers(self) -> list[dict[str, object]]:
        """Every answer, practice included, by rater arrival then trial."""
        with self._connection() as db:
            rows = db.execute("SELECT answers.* FROM answers JOIN raters USING (rater) "
                              "ORDER BY raters.arrival, answers.trial").fetchall()
        return [dict(row) for row in rows]

    def raters(self) -> list[dict[str, object]]:
        """Every rater who opened the page, with their condition and the number of trials they answered."""
        with self._connection() as db:
            rows = db.execute("SELECT raters.*, (SELECT COUNT(*) FROM answers WHERE answers.rater = raters.rater) "
                              "AS answered, (SELECT COUNT(*) FROM trials WHERE trials.rater = raters.rater) AS trials "
                              "FROM raters ORDER BY arrival").fetchall()
        return [dict(row) for row in rows]

    @staticmethod
    def _trials(db: sqlite3.Connection, rater: str) -> list[Trial]:
        rows = db.execute(f"SELECT {', '.join(TRIAL_COLUMNS)} FROM trials WHERE rater = ? ORDER BY trial", (rater,))
        return [Trial(**dict(row)) for row in rows]

    @staticmethod
    def _answered(db: sqlite3.Connection, rater: str) -> int:
        return db.execute("SELECT COUNT(*) FROM answers WHERE rater = ?", (rater,)).fetchone()[0]
