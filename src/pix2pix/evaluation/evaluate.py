"""`pix2pix evaluate`: generated images scored against their targets, written as JSON, CSV and an HTML page.

Works on any implementation's outputs (files matched by name without extension), or translates a dataset split
with a run first. FID and KID (with FID's noise floor) come from distribution.py, the FCN-score from fcn.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pix2pix.atomic import write_text_atomic
from pix2pix.data.dataset import files_by_stem, split_folder
from pix2pix.data.images import DataError
from pix2pix.data.reading import load_image_data
from pix2pix.evaluation.colour_plot import plot_colour_histograms
from pix2pix.evaluation.distribution import DistributionScores, distribution_scores, load_network
from pix2pix.evaluation.fcn import FCNScores, FCNSettings, fcn_for_folders, fcn_for_run
from pix2pix.evaluation.fid import FIDError
from pix2pix.evaluation.metrics import (
    LAB_BINS,
    LAB_CHANNELS,
    MissingDependency,
    ScoredImage,
    as_unit,
    intersection,
    lab_counts,
    pixel_scores,
    skimage_module,
)
from pix2pix.evaluation.report import write_evaluation_report

SCORES = ("l1", "psnr", "ssim")
SHOWN_PER_END = 4
"""How many of the worst and of the best images (by L1) the report shows."""


@dataclass
class Evaluation:
    """Everything metrics.json holds: per-image scores, the colour histograms and what could not be scored."""

    images: list[ScoredImage]
    unmatched: list[str]
    inputs: dict[str, Any]
    failed: list[str] = field(default_factory=list)
    generated_lab: np.ndarray | None = None
    real_lab: np.ndarray | None = None
    colour_note: str = ""
    distribution: DistributionScores | None = None
    distribution_note: str = ""
    fcn: FCNScores | None = None

    def means(self) -> dict[str, float]:
        return {key: float(np.mean([getattr(image.scores, key) for image in self.images])) for key in SCORES}

    def intersections(self) -> dict[str, float]:
        if self.generated_lab is None:
            return {}
        return {name: intersection(self.generated_lab[i], self.real_lab[i]) for i, name in enumerate(LAB_CHANNELS)}


def match_folders(pred: Path, target: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """(name, prediction, target) for names in both folders, and the files of either without a partner."""
    preds, targets = files_by_stem(pred), files_by_stem(target)
    pairs = [(name, preds[name], targets[name]) for name in sorted(preds.keys() & targets.keys())]
    unmatched = sorted(str(path) for name, path in {**preds, **targets}.items()
                       if name not in preds or name not in targets)
    if not pairs:
        raise DataError(f"{pred} and {target}: no file names in common (without extension); give `pred` and "
                        "`target` folders whose files share names")
    return pairs, unmatched


def evaluate_folders(pred: Path, target: Path, fid_network: Path | None = None, fcn: FCNSettings | None = None,
                     inputs: Path | None = None, data: Path | None = None) -> Evaluation:
    """With `fcn`, also the FCN-score (fcn.py): of label maps, or of photos against the label maps in `inputs`
    parsed by a segmenter trained on `data`."""
    skimage_module("metrics")
    pairs, unmatched = match_folders(pred, target)
    evaluation = score_pairs(pairs, unmatched, {"pred": str(pred), "target": str(target)})
    if fcn is not None:
        evaluation.fcn = fcn_for_folders(fcn, pairs, inputs, data)
    add_distribution(evaluation, pairs, fid_network)
    return evaluation


def evaluate_run(run: Path, data: Path, out: Path, split: str = "test", mode: str = "paper",
                 seed: int | None = None, fid_network: Path | None = None,
                 fcn: FCNSettings | None = None) -> Evaluation:
    """Translates the split's aligned A|B files into out/images with the run, then scores them; with `fcn`, also
    the FCN-score."""
    from pix2pix.inference import Translator, translate_files

    skimage_module("metrics")
    folder = split_folder(data, split)
    if folder is None:
        raise DataError(f"{data}: no `split` folder {split!r}; choose one the dataset has")
    translator = Translator.load(run, mode=mode, seed=seed)
    summary = translate_files(translator, [folder], Path(out) / "images", aligned=True)
    if not summary.done:
        raise DataError(f"{folder}: no file could be translated ({'; '.join(summary.failed)})")
    pairs = [(done.name, done.output, done.target) for done in summary.done]
    inputs = {"run": str(run), "data": str(data), "split": split, "mode": mode, "seed": seed}
    evaluation = score_pairs(pairs, [], inputs)
    evaluation.failed = summary.failed
    if fcn is not None:
        evaluation.fcn = fcn_for_run(fcn, data, translator.config.data.direction,
                                     [(done.input, done.output, done.target) for done in summary.done])
    add_distribution(evaluation, pairs, fid_network)
    return evaluation


def add_distribution(evaluation: Evaluation, pairs: list[tuple[str, Path, Path]], fid_network: Path | None) -> None:
    """FID/KID need a network that may be missing or too few images: then a one-line note, and the rest stands."""
    if len(pairs) < 2:
        evaluation.distribution_note = "FID/KID skipped: they need at least 2 images"
        return
    generated, real = [pair[1] for pair in pairs], [pair[2] for pair in pairs]
    try:
        evaluation.distribution = distribution_scores(load_network(fid_network), generated, real)
    except MissingDependency as err:
        evaluation.distribution_note = str(err)
    except FIDError as err:
        raise DataError(f"{err}; give `--fid-network` a TorchScript feature network, or leave it out for the "
                        "default") from err


def score_pairs(pairs: list[tuple[str, Path, Path]], unmatched: list[str], inputs: dict[str, Any]) -> Evaluation:
    evaluation = Evaluation([], unmatched, inputs)
    colour = np.zeros((2, 3, LAB_BINS), dtype=np.int64)  # generated, real; None once an image is not RGB
    for name, pred_path, target_path in pairs:
        target = load_image_data(target_path)
        pred = load_image_data(pred_path, target.channels)
        if pred.size != target.size:
            raise DataError(f"{pred_path}: {pred.size[0]}x{pred.size[1]} pixels but its target {target_path} is "
                            f"{target.size[0]}x{target.size[1]}; score images of the same size")
        pred_unit, target_unit = as_unit(pred.pixels, pred.bit_depth), as_unit(target.pixels, target.bit_depth)
        evaluation.images.append(ScoredImage(name, pred_path, target_path, pixel_scores(pred_unit, target_unit)))
        if target.channels == 3 and colour is not None:
            colour += np.stack([lab_counts(pred_unit), lab_counts(target_unit)])
        else:
            colour = None
    if colour is None:
        evaluation.colour_note = "Colour histograms skipped: they need RGB images (3 channels)."
    else:
        evaluation.generated_lab, evaluation.real_lab = colour
    return evaluation


def write_outputs(evaluation: Evaluation, out: Path) -> Path:
    """out/metrics.json, metrics.csv, colour.png (RGB only) and report.html; returns the report's path."""
    out = Path(out)
    write_text_atomic(out / "metrics.json", json.dumps(_jsonable(summary(evaluation)), indent=2, allow_nan=False))
    write_text_atomic(out / "metrics.csv", _csv(evaluation.images))
    plot = None
    if evaluation.generated_lab is not None:
        plot = plot_colour_histograms(evaluation.generated_lab, evaluation.real_lab, evaluation.intersections(),
                                      out / "colour.png")
    ranked = sorted(evaluation.images, key=lambda image: image.scores.l1)
    shown = min(SHOWN_PER_END, len(ranked) // 2 or 1)
    per_class = evaluation.fcn.per_class() if evaluation.fcn is not None else {}
    return write_evaluation_report(out, table(evaluation), plot, ranked[::-1][:shown], ranked[:shown],
                                   evaluation.colour_note, evaluation.unmatched + evaluation.failed, per_class)


def summary(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "means": evaluation.means(),
        "intersections": evaluation.intersections(),
        "colour_note": evaluation.colour_note,
        "distribution": _distribution(evaluation.distribution),
        "distribution_note": evaluation.distribution_note,
        "fcn": evaluation.fcn.summary() if evaluation.fcn is not None else None,
        "counts": {"scored": len(evaluation.images), "unmatched": len(evaluation.unmatched),
                   "failed": len(evaluation.failed)},
        "unmatched": evaluation.unmatched,
        "failed": evaluation.failed,
        "inputs": evaluation.inputs,
        "images": [_row(image) for image in evaluation.images],
    }


def table(evaluation: Evaluation) -> dict[str, float]:
    """The numbers a reader compares first: mean scores, the colour intersections, FID and KID, the FCN-score."""
    means = evaluation.means()
    rows = {"L1": means["l1"], "PSNR (dB)": means["psnr"], "SSIM": means["ssim"]}
    rows.update({f"{name} intersection": value for name, value in evaluation.intersections().items()})
    scores = evaluation.distribution
    if scores is not None:
        rows.update({"FID": scores.fid, "KID": scores.kid})
        if scores.fid_floor is not None:
            rows["FID floor (real halves)"] = scores.fid_floor
    if evaluation.fcn is not None:
        rows.update(evaluation.fcn.rows())
    return rows


def format_table(evaluation: Evaluation) -> str:
    rows = table(evaluation)
    width = max(map(len, rows))
    return "\n".join(f"{name:<{width}}  {value:.4f}" for name, value in rows.items())


def _distribution(scores: DistributionScores | None) -> dict[str, Any] | None:
    """FID's floor sits beside it: FID is biased upwards at small sample sizes, and the floor shows by how much."""
    if scores is None:
        return None
    return {"fid": scores.fid, "kid": scores.kid, "fid_floor": scores.fid_floor, "network": scores.network,
            "images": scores.images, "kid_estimate": "one unbiased MMD^2 over all features, cubic kernel",
            "fid_floor_note": "FID between two seeded random halves of the target images"}


def _row(image: ScoredImage) -> dict[str, Any]:
    return {"name": image.name, "pred": str(image.pred), "target": str(image.target),
            **{key: getattr(image.scores, key) for key in SCORES}}


def _csv(images: list[ScoredImage]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["name", "pred", "target", *SCORES], lineterminator="\n")
    writer.writeheader()
    writer.writerows(_row(image) for image in images)
    return text.getvalue()


def _jsonable(value: Any) -> Any:
    """Infinite PSNR (identical images) as the string "inf": JSON has no infinity."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value
