"""Self-contained HTML reports for training runs and translation folders, readable offline and while training.

Only the standard library, numpy, Pillow and matplotlib are used (and tifffile for TIFF previews when it is
installed), so reports can be rebuilt from a run folder (config.json, losses.jsonl, samples/, metrics.json) on a
machine without torch. The loss plot is drawn by `pix2pix.evaluation.loss_plot`, and images a browser cannot show
through the previews of `pix2pix.evaluation.previews`.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from pix2pix.atomic import write_text_atomic
from pix2pix.evaluation.loss_plot import plot_losses
from pix2pix.evaluation.metrics import ScoredImage
from pix2pix.evaluation.previews import browser_image, relative_url

CONFIG_SECTIONS = ("model", "data", "train")
L1_BEFORE_KEY = "l1_step0"
L1_NOW_KEY = "l1_now"
SAMPLE_PATTERN = "step_*.png"
SAMPLE_STEP = re.compile(r"step_(\d+)$")
SMALL_IMAGE_WIDTH = 256  # narrower images are upscaled by an integer factor with pixelated rendering
THUMBNAIL_WIDTH = 160

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
img { max-width: 100%; height: auto; }
img.pixelated { image-rendering: pixelated; }
.sections { display: flex; flex-wrap: wrap; gap: 2em; }
.side-by-side { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0; } figcaption { color: #555; font-size: 0.9em; }
.thumbnails { display: flex; flex-wrap: wrap; gap: 0.8em; }
.highlight { background: #eef7ee; border-left: 4px solid #4a4; padding: 0.6em 1em; }
.note { color: #777; font-style: italic; }
"""


@dataclass(frozen=True)
class ReportRow:
    """One translated image: the network input, its output and, for paired data, the ground truth."""

    name: str
    input: Path
    output: Path
    target: Path | None = None


# ---------------------------------------------------------------------------------------------- reports


def write_run_report(
    run_dir: Path, rows: Sequence[ReportRow] = (), rows_title: str = "Test translations"
) -> Path:
    """RUN/report.html: everything needed to judge a run at a glance, readable offline and while training.

    Shows the config (sections model/data/train), metrics.json if present (L1 at step 0 against now when
    both are there), the loss plot (written to RUN/losses.png), the step-0 sample grid beside the latest one
    so a reader sees the model learned, all sample grids as thumbnails, and then ``rows`` as a table.
    """
    run_dir = Path(run_dir)
    out_html = run_dir / "report.html"
    samples = _sample_grids(run_dir)
    sections = [
        _config_section(_read_json_object(run_dir / "config.json")),
        _metrics_section(_read_json_object(run_dir / "metrics.json")),
        _loss_section(plot_losses(run_dir / "losses.jsonl", run_dir / "losses.png"), run_dir),
        _progress_section(samples, run_dir),
        _all_samples_section(samples, run_dir),
    ]
    if rows:
        sections.append(_rows_section(rows, rows_title, run_dir))
    _write_html(out_html, f"pix2pix run: {run_dir.resolve().name}", sections)
    return out_html


def write_translation_report(
    out_dir: Path, rows: Sequence[ReportRow], title: str, run_dir: Path | None = None
) -> Path:
    """out_dir/report.html: rows side by side (input | output | target when present).

    With ``run_dir`` the run's loss plot is regenerated into out_dir, so the folder stays self-contained
    and can be moved or shared on its own.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = [_rows_section(rows, "Translations", out_dir)]
    if run_dir is not None:
        run_dir = Path(run_dir)
        plot = plot_losses(run_dir / "losses.jsonl", out_dir / "losses.png")
        sections.append(f"<p>Model trained in run <code>{_escape(run_dir)}</code>.</p>")
        sections.append(_loss_section(plot, out_dir))
    out_html = out_dir / "report.html"
    _write_html(out_html, title, sections)
    return out_html


def write_evaluation_report(out_dir: Path, means: dict[str, float], colour_plot: Path | None,
                            worst: Sequence[ScoredImage], best: Sequence[ScoredImage], colour_note: str = "",
                            skipped: Sequence[str] = (), per_class: dict[str, dict[str, Any]] | None = None) -> Path:
    """out_dir/report.html of `pix2pix evaluate`: the scores, the colour figure and the images that explain them;
    `per_class`: the FCN-score's accuracy and IoU per class name."""
    out_dir = Path(out_dir)
    colour = _image_link(colour_plot, out_dir, "Lab histograms") if colour_plot else _note(colour_note)
    sections = [
        _section("Metrics (means over the split)", _key_value_table(means, _format_metric)),
        _section("FCN-score per class", _columns_table(per_class)) if per_class else "",
        _section("Colour: L, a, b of generated and real pixels", colour),
        _scored_section("Worst by L1 (prediction | target)", worst, out_dir),
        _scored_section("Best by L1 (prediction | target)", best, out_dir),
    ]
    if skipped:
        items = "".join(f"<li>{_escape(name)}</li>" for name in skipped)
        sections.append(_section("Skipped (no partner, or failed)", f"<ul>{items}</ul>"))
    out_html = out_dir / "report.html"
    _write_html(out_html, "pix2pix evaluation", sections)
    return out_html


def _scored_section(title: str, images: Sequence[ScoredImage], html_dir: Path) -> str:
    body = "".join(
        f"<tr><td>{_escape(image.name)}</td><td>{image.scores.l1:.4f}</td><td>{image.scores.psnr:.2f}</td>"
        f"<td>{image.scores.ssim:.4f}</td><td>{_image_link(image.pred, html_dir, f'{image.name} prediction')}</td>"
        f"<td>{_image_link(image.target, html_dir, f'{image.name} target')}</td></tr>"
        for image in images
    )
    head = "".join(f"<th>{name}</th>" for name in ("name", "L1", "PSNR", "SSIM", "prediction", "target"))
    return _section(title, f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object from disk, or None when absent or unreadable (e.g. being rewritten)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _sample_grids(run_dir: Path) -> list[Path]:
    """Sample grids in training order (file names are zero-padded steps, so name order is step order)."""
    return sorted((run_dir / "samples").glob(SAMPLE_PATTERN))


def _sample_caption(grid: Path) -> str:
    match = SAMPLE_STEP.fullmatch(grid.stem)
    return f"step {int(match.group(1))}" if match else grid.stem


# ---------------------------------------------------------------------------------------------- sections


def _config_section(config: dict[str, Any] | None) -> str:
    if config is None:
        return _section("Configuration", _note("No config.json found."))
    names = list(CONFIG_SECTIONS) + [name for name in config if name not in CONFIG_SECTIONS]
    tables = [
        f"<div><h3>{_escape(name)}</h3>{_key_value_table(config[name], _format_config_value)}</div>"
        for name in names
        if isinstance(config.get(name), dict)
    ]
    return _section("Configuration", f'<div class="sections">{"".join(tables)}</div>')


def _metrics_section(metrics: dict[str, Any] | None) -> str:
    if metrics is None:
        return ""
    return _section("Metrics", _l1_highlight(metrics) + _key_value_table(metrics, _format_metric))


def _l1_highlight(metrics: dict[str, Any]) -> str:
    """One sentence comparing the L1 of the untrained generator with the current one: did training help?"""
    before, now = metrics.get(L1_BEFORE_KEY), metrics.get(L1_NOW_KEY)
    if not (_is_number(before) and _is_number(now)):
        return ""
    at_step = f" at step {_format_metric(metrics['step'])}" if _is_number(metrics.get("step")) else " now"
    change = f" ({(now - before) / before:+.0%})" if before else ""
    text = (
        f"Held-out L1: {_escape(_format_metric(before))} at step 0 &rarr; "
        f"<strong>{_escape(_format_metric(now))}</strong>{_escape(at_step)}{_escape(change)}"
    )
    return f'<p class="highlight">{text}</p>'


def _loss_section(plot: Path | None, html_dir: Path) -> str:
    if plot is None:
        return _section("Losses", _note("No losses logged yet."))
    return _section("Losses", _image_link(plot, html_dir, "training losses"))


def _progress_section(samples: Sequence[Path], html_dir: Path) -> str:
    """First and latest sample grid side by side: the clearest evidence that the generator learned."""
    if not samples:
        return _section("Samples (input | output | target)", _note("No sample grids yet."))
    shown = [samples[0]] if len(samples) == 1 else [samples[0], samples[-1]]
    figures = "".join(_figure(grid, html_dir, _sample_caption(grid)) for grid in shown)
    return _section("Samples (input | output | target)", f'<div class="side-by-side">{figures}</div>')


def _all_samples_section(samples: Sequence[Path], html_dir: Path) -> str:
    if len(samples) < 2:
        return ""
    figures = "".join(_figure(grid, html_dir, _sample_caption(grid), thumbnail=True) for grid in samples)
    return _section("All sample grids", f'<div class="thumbnails">{figures}</div>')


def _rows_section(rows: Sequence[ReportRow], title: str, html_dir: Path) -> str:
    if not rows:
        return _section(title, _note("No images."))
    with_target = any(row.target is not None for row in rows)
    headers = ["name", "input", "output"] + (["target"] if with_target else [])
    body = "".join(_row_html(row, html_dir, with_target) for row in rows)
    head = "".join(f"<th>{header}</th>" for header in headers)
    return _section(title, f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _row_html(row: ReportRow, html_dir: Path, with_target: bool) -> str:
    cells = [
        _escape(row.name),
        _image_link(row.input, html_dir, f"{row.name} input"),
        _image_link(row.output, html_dir, f"{row.name} output"),
    ]
    if with_target:
        cells.append(_image_link(row.target, html_dir, f"{row.name} target") if row.target else _note("none"))
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


# ---------------------------------------------------------------------------------------------- html helpers


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_escape(title)}</h2>{body}</section>"


def _note(text: str) -> str:
    return f'<p class="note">{_escape(text)}</p>'


def _key_value_table(values: dict[str, Any], format_value: Callable[[Any], str]) -> str:
    rows = "".join(
        f"<tr><th>{_escape(key)}</th><td>{_escape(format_value(value))}</td></tr>"
        for key, value in values.items()
    )
    return f"<table>{rows}</table>"


def _columns_table(rows: dict[str, dict[str, Any]]) -> str:
    """One row per key, one column per key of the first row's values; None shows as a dash."""
    columns = list(next(iter(rows.values())))
    head = "".join(f"<th>{_escape(name)}</th>" for name in ["", *columns])
    body = "".join(f"<tr><th>{_escape(key)}</th>"
                   + "".join(f"<td>{_escape('-' if row[c] is None else _format_metric(row[c]))}</td>" for c in columns)
                   + "</tr>" for key, row in rows.items())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(image: Path, html_dir: Path, caption: str, thumbnail: bool = False) -> str:
    link = _image_link(image, html_dir, caption, thumbnail=thumbnail)
    return f"<figure>{link}<figcaption>{_escape(caption)}</figcaption></figure>"


def _image_link(image: Path, html_dir: Path, alt: str, thumbnail: bool = False) -> str:
    """An image that links to its file at full size, via paths relative to the HTML so the folder can move.

    Files a browser cannot show are drawn from a PNG preview; when there is none, a note says why.
    """
    image = Path(image)
    href = _escape(relative_url(image, html_dir))
    shown = browser_image(image, html_dir)
    if shown.path is None:
        return f'<a href="{href}">{_escape(image.name)}</a>{_note(shown.note)}'
    src = _escape(relative_url(shown.path, html_dir))
    described = f"{alt} ({shown.note})" if shown.note else alt
    size = _size_attributes(shown.path, thumbnail)
    link = f'<a href="{href}"><img src="{src}" alt="{_escape(described)}"{size}></a>'
    return link + (_note(shown.note) if shown.note else "")


def _size_attributes(image: Path, thumbnail: bool) -> str:
    """Thumbnails get a fixed width; small images an integer upscale with crisp pixels instead of blur."""
    if thumbnail:
        return f' width="{THUMBNAIL_WIDTH}"'
    width = _image_width(image)
    if width is None or width >= SMALL_IMAGE_WIDTH:
        return ""
    scale = math.ceil(SMALL_IMAGE_WIDTH / width)
    return f' class="pixelated" width="{width * scale}"'


def _image_width(image: Path) -> int | None:
    """Width from the file header (cheap: Pillow reads pixels lazily), None if it cannot be read."""
    try:
        with Image.open(image) as opened:
            return opened.width
    except OSError:
        return None


def _escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _format_metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _format_config_value(value: Any) -> str:
    """Strings as they are; everything else as JSON (true, null, [1, 2]) to match config.json."""
    return value if isinstance(value, str) else json.dumps(value)


def _write_html(path: Path, title: str, sections: Sequence[str]) -> None:
    body = "\n".join(section for section in sections if section)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )
    write_text_atomic(path, page)
