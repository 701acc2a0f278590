"""Checking a dataset before training on it: every file of every split, each problem with the fix, at once.

Errors are files that cannot be used (unreadable, truncated, empty, not an image, an image bomb, without a
partner, of another size than their partner, smaller than the crop). Warnings are files that load but differ
from most of their kind in channels or bit depth: they are converted or scaled when loaded, which may be wrong.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import ClassVar

from pix2pix.atomic import write_text_atomic
from pix2pix.data.dataset import Pair, detect_layout, images_in, split_folder
from pix2pix.data.images import DataError, can_convert
from pix2pix.data.reading import MAX_PIXELS, load_image_data

SPLITS = ("train", "val", "test")
SHOWN_PROBLEMS = 20
"""Problems listed in a message before '... and N more'; the JSON report has them all."""


@dataclass(frozen=True)
class Problem:
    path: Path
    problem: str
    fix: str
    severity: str = "error"  # "error": the file cannot be used; "warning": it loads, converted

    def line(self, root: Path | None = None) -> str:
        shown = self.path.relative_to(root) if root and self.path != root and self.path.is_relative_to(root) \
            else self.path
        return f"{shown}: {self.problem}; {self.fix}"

    def to_json(self) -> dict:
        return {"path": str(self.path), "problem": self.problem, "fix": self.fix, "severity": self.severity}


@dataclass(frozen=True)
class FileInfo:
    """What a readable file holds; the kind groups files that should agree (aligned files, A/ or B/)."""

    width: int
    height: int
    channels: int
    bit_depth: int
    kind: str

    @property
    def format(self) -> str:
        return f"{self.channels}-channel {self.bit_depth}-bit"


@dataclass
class ValidationReport:
    folder: Path
    layouts: dict[str, str] = field(default_factory=dict)  # split -> "aligned" or "folders"
    pairs: dict[str, list[Pair]] = field(default_factory=dict)  # split -> pairs whose files are all there
    files: dict[Path, FileInfo] = field(default_factory=dict)  # every readable image file
    checked: int = 0  # image files found in the splits
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No file that training could not use (warnings allowed)."""
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def bad_files(self) -> list[Path]:
        return sorted({p.path for p in self.errors})

    def usable_pairs(self, split: str) -> list[Pair]:
        """The split's pairs none of whose files has an error, in the order training uses."""
        bad = set(self.bad_files)
        return [p for p in self.pairs.get(split, []) if p.a not in bad and p.b not in bad]

    def formats(self) -> Counter:
        return Counter(info.format for info in self.files.values())

    def summary(self, limit: int | None = SHOWN_PROBLEMS) -> str:
        """What a person reads: the verdict, each split's pairs, the formats, then the problems."""
        errors, warnings = len(self.bad_files), len({p.path for p in self.warnings})
        verdict = "OK" if self.ok else f"{errors} bad file(s)"
        lines = [f"{self.folder}: {verdict}; {self.checked} image file(s) checked"
                 + (f", {warnings} with warnings" if warnings else "")]
        for split, pairs in self.pairs.items():
            usable = len(self.usable_pairs(split))
            lines.append(f"  {split}: {len(pairs)} pair(s), {self.layouts[split]} layout"
                         + ("" if usable == len(pairs) else f", {usable} usable"))
        lines += [f"  {name}: {count} file(s)" for name, count in self.formats().most_common()]
        lines += problem_lines(self.errors + self.warnings, self.folder, limit)
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "folder": str(self.folder), "ok": self.ok, "files": self.checked, "bad_files": len(self.bad_files),
            "warnings": len(self.warnings),
            "splits": {split: {"layout": self.layouts[split], "pairs": len(pairs),
                               "usable_pairs": len(self.usable_pairs(split))} for split, pairs in self.pairs.items()},
            "formats": dict(self.formats().most_common()),
            "problems": [p.to_json() for p in self.problems],
        }


def problem_lines(problems: list[Problem], root: Path, limit: int | None) -> list[str]:
    shown = problems if limit is None else problems[:limit]
    lines = [f"  {p.severity}: {p.line(root)}" for p in shown]
    if len(shown) < len(problems):
        lines.append(f"  ... and {len(problems) - len(shown)} more")
    return lines


def validate_dataset(folder: Path, *, layout: str = "auto", crop_size: int | None = None,
                     max_pixels: int | None = None, splits: tuple[str, ...] = SPLITS,
                     workers: int = 0, checked: Path | None = None) -> ValidationReport:
    """Reads every file of each split present (train/, val/, test/, or the folder itself as training data) in
    full, in `workers` processes when > 1, and reports every problem with its fix instead of stopping at the
    first. With `checked`, a record of what each file held (see `CheckedFiles`) spares re-reading the files
    that have not changed since it was written."""
    folder = Path(folder)
    report = ValidationReport(folder)
    if not folder.is_dir():
        report.problems.append(Problem(folder, "dataset folder not found", "check the path"))
        return report
    for split in splits:
        split_dir = split_folder(folder, split)
        if split_dir is not None:
            _find_split_pairs(report, split, split_dir, layout)
    _read_all(report, max_pixels or MAX_PIXELS, workers, checked)
    for pairs in report.pairs.values():
        for pair in pairs:
            _check_pair(report, pair, crop_size)
    _check_formats_agree(report)
    return report


def _find_split_pairs(report: ValidationReport, split: str, folder: Path, layout: str) -> None:
    kind = detect_layout(folder, layout)
    report.layouts[split] = kind
    if kind == "aligned":
        pairs = [Pair(path.stem, path, None) for path in images_in(folder)]
        report.checked += len(pairs)
    else:
        pairs = _partnered(report, folder)
    if not pairs:
        report.problems.append(Problem(folder, "no image pairs found",
                                       "add aligned A|B files, or A/ and B/ folders of files with the same names"))
    report.pairs[split] = pairs


def _partnered(report: ValidationReport, folder: Path) -> list[Pair]:
    """Pairs of A/ and B/ files by name; files without a partner, or whose name two files share, are problems."""
    a_files, b_files = _by_stem(report, folder / "A"), _by_stem(report, folder / "B")
    for files, other in ((a_files, "B"), (b_files, "A")):
        for stem in sorted(files.keys() - (a_files.keys() & b_files.keys())):
            report.problems.append(Problem(files[stem], f"no partner named {stem}.* in {other}/",
                                           f"add its partner to {folder / other} or remove it"))
    return [Pair(stem, a_files[stem], b_files[stem]) for stem in sorted(a_files.keys() & b_files.keys())]


def _by_stem(report: ValidationReport, folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        report.problems.append(Problem(folder, "folder not found", "A/ and B/ folders hold the pairs; add it"))
        return {}
    groups: dict[str, list[Path]] = {}
    files = images_in(folder)
    report.checked += len(files)
    for path in files:
        groups.setdefault(path.stem, []).append(path)
    for stem, paths in groups.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            report.problems += [Problem(p, f"{names} share the name {stem}, so its partner is ambiguous",
                                        "rename or remove all but one") for p in paths]
    return {stem: paths[0] for stem, paths in groups.items() if len(paths) == 1}


def _read_all(report: ValidationReport, max_pixels: int, workers: int, checked: Path | None) -> None:
    """Decodes every paired file in full, as training will, in worker processes when asked; files that the
    `checked` record holds unchanged are taken from it."""
    kinds = {}
    for pairs in report.pairs.values():
        for pair in pairs:
            kinds.update({pair.a: "aligned A|B"} if pair.b is None else {pair.a: "A", pair.b: "B"})
    record = CheckedFiles.load(checked, max_pixels)
    results = {path: record.result(path) for path in kinds}
    unknown = [path for path, result in results.items() if result is None]
    results.update(zip(unknown, _probe_all(unknown, max_pixels, workers)))
    record.save(results)
    for path, result in results.items():
        if isinstance(result, Problem):
            report.problems.append(result)
        else:
            report.files[path] = FileInfo(*result, kinds[path])


def _probe_all(paths: list[Path], max_pixels: int, workers: int) -> list[tuple[int, int, int, int] | Problem]:
    if workers > 1 and len(paths) > 1:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(_probe, paths, repeat(max_pixels), chunksize=len(paths) // (8 * workers) + 1))
    return [_probe(path, max_pixels) for path in paths]


@dataclass
class CheckedFiles:
    """What decoding each file found, keyed by its path, size and modification time, kept in a JSON file.

    Decoding a dataset in full takes minutes for large ones (3.5 s for the 1096 files of maps), and a resumed run
    checks its data again: with this record it re-reads only the files that changed or appeared since (as rsync
    tells them: by size and time). A record of another version or pixel limit, or one that cannot be read, is
    ignored."""

    path: Path | None
    max_pixels: int
    entries: dict[str, dict] = field(default_factory=dict)
    stamps: dict[Path, list[int] | None] = field(default_factory=dict)  # taken before reading each file

    VERSION: ClassVar[int] = 1

    @classmethod
    def load(cls, path: Path | None, max_pixels: int) -> CheckedFiles:
        record = cls(path, max_pixels)
        try:
            saved = json.loads(path.read_text()) if path is not None else {}
        except (OSError, ValueError):
            return record
        if isinstance(saved, dict) and saved.get("version") == cls.VERSION and saved.get("max_pixels") == max_pixels \
                and isinstance(saved.get("files"), dict):
            record.entries = saved["files"]
        return record

    def result(self, file: Path) -> tuple[int, int, int, int] | Problem | None:
        """The recorded result, if the file is as it was when recorded; else None (read it)."""
        stamp = self.stamps[file] = _file_stamp(file)
        entry = self.entries.get(str(file))
        if stamp is None or not isinstance(entry, dict) or entry.get("stat") != stamp:
            return None
        try:
            if "problem" in entry:
                return Problem(file, str(entry["problem"]), str(entry["fix"]))
            info = tuple(int(value) for value in entry["info"])
        except (KeyError, TypeError, ValueError):
            return None
        return info if len(info) == 4 else None

    def save(self, results: dict[Path, tuple[int, int, int, int] | Problem]) -> None:
        """Records the results of the files stamped by `result` (stamps from before reading: a file changed
        while being read is read again next time)."""
        if self.path is None:
            return
        files = {}
        for file, result in results.items():
            stamp = self.stamps.get(file)
            if stamp is not None:
                found = {"problem": result.problem, "fix": result.fix} if isinstance(result, Problem) else \
                    {"info": list(result)}
                files[str(file)] = {"stat": stamp, **found}
        record = {"version": self.VERSION, "max_pixels": self.max_pixels, "files": files}
        write_text_atomic(self.path, json.dumps(record, separators=(",", ":")) + "\n")


def _file_stamp(path: Path) -> list[int] | None:
    """Size and modification time in ns: what tells a rewritten file from the one that was checked."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _probe(path: Path, max_pixels: int) -> tuple[int, int, int, int] | Problem:
    """(width, height, channels, bit depth) of the fully decoded file, or its problem (picklable, for workers)."""
    try:
        image = load_image_data(path, max_pixels=max_pixels)
    except DataError as err:
        return Problem(path, err.problem or str(err), err.fix or "replace or remove the file")
    return (*image.size, image.channels, image.bit_depth)


def _check_pair(report: ValidationReport, pair: Pair, crop_size: int | None) -> None:
    if pair.b is None:
        info = report.files.get(pair.a)
        if info is not None and info.width < 2:
            report.problems.append(Problem(pair.a, f"{info.width}x{info.height} is too narrow to hold an A|B pair",
                                           "use aligned A|B files, or A/ and B/ folders"))
        elif info is not None:
            _check_crop(report, pair.a, info.width // 2, info.height, crop_size, "each half is")
        return
    a, b = report.files.get(pair.a), report.files.get(pair.b)
    for path, info in ((pair.a, a), (pair.b, b)):
        if info is not None:
            _check_crop(report, path, info.width, info.height, crop_size, "it is")
    if a is not None and b is not None and (a.width, a.height) != (b.width, b.height):
        report.problems.append(Problem(pair.b, f"{b.width}x{b.height} differs from its partner {pair.a.name} "
                                               f"({a.width}x{a.height})", "resize one to match or remove the pair"))


def _check_crop(report: ValidationReport, path: Path, width: int, height: int, crop_size: int | None,
                subject: str) -> None:
    if crop_size is not None and min(width, height) < crop_size:
        report.problems.append(Problem(path, f"{subject} {width}x{height}, smaller than the {crop_size} crop",
                                       "use larger images or a smaller `crop_size`"))


def _check_formats_agree(report: ValidationReport) -> None:
    """Files of one kind should share channels and bit depth; the odd ones out are converted when loaded (or
    cannot be, which is an error)."""
    by_kind: dict[str, Counter] = {}
    for info in report.files.values():
        by_kind.setdefault(info.kind, Counter())[(info.channels, info.bit_depth)] += 1
    for path, info in report.files.items():
        channels, bit_depth = by_kind[info.kind].most_common(1)[0][0]
        if info.channels != channels:
            convertible = can_convert(info.channels, channels)
            report.problems.append(Problem(
                path, f"has {info.channels} channel(s) where most {info.kind} files have {channels}",
                f"it is converted to {channels} when loaded; convert the file yourself if that is wrong"
                if convertible else "convert it or remove it", "warning" if convertible else "error"))
        elif info.bit_depth != bit_depth:
            report.problems.append(Problem(
                path, f"is {info.bit_depth}-bit where most {info.kind} files are {bit_depth}-bit",
                "its values are scaled by its own bit depth; re-save it if that is wrong", "warning"))


def screen_for_training(root: Path, layout: str, on_bad_file: str, record: Path, workers: int = 0,
                        checked: Path | None = None) -> ValidationReport:
    """Validates the splits a run reads (train and val) before its first step. With 'fail', any bad file stops
    the run with a list of them; with 'skip', each is named once on stderr and its pairs are left out. Every
    problem goes to `record` as JSON (a stale record is removed when there are none); `checked` is the record
    of what each file held, which spares a resumed run re-reading unchanged files."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found; check `data`")
    report = validate_dataset(root, layout=layout, splits=("train", "val"), workers=workers, checked=checked)
    if not report.problems:
        record.unlink(missing_ok=True)
        return report
    write_text_atomic(record, json.dumps(report.to_json(), indent=2) + "\n")
    if not report.ok and on_bad_file == "fail":
        raise DataError(_failure_message(report, record))
    _tell(report, record)
    if not report.usable_pairs("train"):
        raise DataError(f"{root}: no usable training pairs; the problems are listed in {record}")
    return report


def _formats_by_kind(report: ValidationReport) -> dict[str, Counter]:
    """How many files of each kind hold each format: a mixed dataset is told with its counts, not only per file."""
    kinds: dict[str, Counter] = {}
    for info in report.files.values():
        kinds.setdefault(info.kind, Counter())[info.format] += 1
    return kinds


def _failure_message(report: ValidationReport, record: Path) -> str:
    lines = [f"{report.folder}: {len(report.bad_files)} bad file(s) among {report.checked}; all are listed in "
             f"{record}. Fix or remove them, or set `on_bad_file` skip to train without them:"]
    return "\n".join(lines + problem_lines(report.errors, report.folder, SHOWN_PROBLEMS))


def _tell(report: ValidationReport, record: Path) -> None:
    """Each skipped file once (all its problems on one line), the first warnings, and what is left to train on."""
    reasons: dict[Path, list[str]] = {}
    for problem in report.errors:
        reasons.setdefault(problem.path, []).append(problem.problem)
    for path, problems in reasons.items():
        print(f"pix2pix: warning: skipping {path}: {'; '.join(problems)}", file=sys.stderr)
    for kind, formats in _formats_by_kind(report).items():
        if len(formats) > 1:
            found = ", ".join(f"{count} {name}" for name, count in formats.most_common())
            print(f"pix2pix: note: the {kind} files are of {len(formats)} formats: {found} file(s)", file=sys.stderr)
    notes = report.warnings
    for problem in notes[:SHOWN_PROBLEMS]:
        print(f"pix2pix: note: {problem.line()}", file=sys.stderr)
    if len(notes) > SHOWN_PROBLEMS:
        print(f"pix2pix: note: ... and {len(notes) - SHOWN_PROBLEMS} more", file=sys.stderr)
    if reasons:
        kept = ", ".join(f"{split} {len(report.usable_pairs(split))} of {len(pairs)} pairs"
                         for split, pairs in report.pairs.items())
        print(f"pix2pix: skipped {len(reasons)} bad file(s), kept {kept}; the list is in {record}", file=sys.stderr)
