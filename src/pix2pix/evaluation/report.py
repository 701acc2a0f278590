"""Loss plots and self-contained HTML reports for training runs and translation folders.

Only the standard library, numpy, Pillow and matplotlib are used (and tifffile for TIFF previews when it is
installed), so reports can be rebuilt from a run folder (config.json, losses.jsonl, samples/, metrics.json) on a
machine without torch.

Browsers cannot display TIFF, so images a browser cannot show are drawn from 8-bit PNG previews written beside
the page (previews/), and link to the original file at full fidelity.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from pix2pix.atomic import atomic_path, write_text_atomic

NON_LOSS_KEYS = frozenset({"step", "epoch", "lr", "sec_per_it"})
CONFIG_SECTIONS = ("model", "data", "train")
L1_BEFORE_KEY = "l1_step0"
L1_NOW_KEY = "l1_now"
SAMPLE_PATTERN = "step_*.png"
SAMPLE_STEP = re.compile(r"step_(\d+)$")
SMALL_IMAGE_WIDTH = 256  # narrower images are upscaled by an integer factor with pixelated rendering
THUMBNAIL_WIDTH = 160
MAX_SMOOTHING_WINDOW = 51
BROWSER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})  # 16-bit PNGs included
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
PREVIEW_DIR = "previews"
PREVIEW_STEM_CHARS = 50  # keeps preview names far below the 255-byte file name limit
PREVIEW_COMPRESS_LEVEL = 1  # as pix2pix.data.images.PNG_COMPRESS_LEVEL: fast, files about as small
MAX_PREVIEW_PIXELS = 2**28  # as pix2pix.data.images.MAX_PIXELS: a small crafted TIFF can expand to gigabytes
SOURCE_STAMP_KEY = "pix2pix-source"  # PNG text chunk: mtime and size of the file the preview was made from
NOTE_KEY = "pix2pix-note"  # PNG text chunk: what the preview leaves out, shown again when it is reused
TIFF_IMAGE_AXES = ("YX", "YXS", "SYX", "CYX", "IYX", "QYX")  # tifffile's layouts of one image of bands

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


# ---------------------------------------------------------------------------------------------- loss log


def read_loss_log(path: Path) -> list[dict[str, float]]:
    """Numeric fields of every complete JSON line of a losses.jsonl.

    A run that has not logged yet has no file, and a process killed mid-write leaves a truncated last line:
    both are normal, so unreadable lines are skipped instead of failing the report.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = (_parse_json_object(line) for line in lines if line.strip())
    return [_numeric_fields(record) for record in records if record is not None]


def _parse_json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _numeric_fields(record: dict[str, Any]) -> dict[str, float]:
    return {
        key: value
        for key, value in record.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def _loss_keys(records: Sequence[dict[str, float]]) -> list[str]:
    """Every logged key that is not bookkeeping, in first-seen order (the set depends on the objective)."""
    keys = dict.fromkeys(key for record in records for key in record if key not in NON_LOSS_KEYS)
    return list(keys)


def _loss_series(records: Sequence[dict[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one loss sorted by step, without non-finite values that would poison the average."""
    pairs = [
        (record["step"], record[key])
        for record in records
        if "step" in record and key in record and math.isfinite(record[key])
    ]
    steps = np.array([step for step, _ in pairs], dtype=float)
    values = np.array([value for _, value in pairs], dtype=float)
    order = np.argsort(steps, kind="stable")
    return steps[order], values[order]


def _smoothing_window(count: int) -> int:
    """Odd window of about a tenth of the points: visible trend without hiding the shape of short runs."""
    return min(MAX_SMOOTHING_WINDOW, 2 * (count // 20) + 1)


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of the same length; the ends average over the points that exist (no lag)."""
    kernel = np.ones(window)
    sums = np.convolve(values, kernel, mode="same")
    counts = np.convolve(np.ones_like(values), kernel, mode="same")
    return sums / counts


# ---------------------------------------------------------------------------------------------- plot


def plot_losses(log_path: Path, out_png: Path) -> Path | None:
    """One PNG with one subplot per loss key (G_GAN, G_L1, D_real, D_fake, ...) against step.

    The raw values are drawn faint and a moving average on top, so the trend is readable with noisy GAN
    losses. Returns None if there is nothing to plot. The PNG is written atomically so a report or viewer
    never sees a half-written file while training is still logging.
    """
    records = read_loss_log(Path(log_path))
    series = {key: _loss_series(records, key) for key in _loss_keys(records)}
    series = {key: (steps, values) for key, (steps, values) in series.items() if len(steps) > 0}
    if not series:
        return None
    figure = _loss_figure(series)
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return out_png


def _loss_figure(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    columns = min(2, len(series))
    rows = math.ceil(len(series) / columns)
    figure = Figure(figsize=(6 * columns, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for index, (axis, (key, (steps, values))) in enumerate(zip(axes, series.items(), strict=False)):
        _plot_loss(axis, key, steps, values, color=f"C{index}")
    for axis in axes[len(series) :]:
        axis.set_visible(False)
    figure.suptitle("Training losses: raw values faint, centred moving average bold")
    return figure


def _plot_loss(axis: Axes, key: str, steps: np.ndarray, values: np.ndarray, color: str) -> None:
    window = _smoothing_window(len(values))
    marker = "o" if len(values) == 1 else None  # a lone point draws no line
    axis.plot(steps, values, color=color, alpha=0.25, linewidth=0.8, marker=marker)
    axis.plot(steps, _moving_average(values, window), color=color, linewidth=2)
    axis.set_title(f"{key}   (average over {window} points)" if window > 1 else key)
    axis.set_xlabel("step")
    axis.grid(alpha=0.3)


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


def _figure(image: Path, html_dir: Path, caption: str, thumbnail: bool = False) -> str:
    link = _image_link(image, html_dir, caption, thumbnail=thumbnail)
    return f"<figure>{link}<figcaption>{_escape(caption)}</figcaption></figure>"


def _image_link(image: Path, html_dir: Path, alt: str, thumbnail: bool = False) -> str:
    """An image that links to its file at full size, via paths relative to the HTML so the folder can move.

    Files a browser cannot show are drawn from a PNG preview; when there is none, a note says why.
    """
    image = Path(image)
    href = _escape(_relative_url(image, html_dir))
    shown = _browser_image(image, html_dir)
    if shown.path is None:
        return f'<a href="{href}">{_escape(image.name)}</a>{_note(shown.note)}'
    src = _escape(_relative_url(shown.path, html_dir))
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


def _relative_url(target: Path, html_dir: Path) -> str:
    try:
        relative = os.path.relpath(os.path.abspath(target), os.path.abspath(html_dir))
    except ValueError:  # on Windows, a different drive has no relative path
        return Path(os.path.abspath(target)).as_uri()
    return quote(relative.replace(os.sep, "/"))


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


# ---------------------------------------------------------------------------------------------- previews


@dataclass(frozen=True)
class _Shown:
    """What a page draws for an image file: a file a browser displays (None if there is none) and a note."""

    path: Path | None
    note: str = ""


def _browser_image(image: Path, html_dir: Path) -> _Shown:
    """The file itself when a browser can show it, else its PNG preview, or the reason there is none.

    Any error is turned into a note: a damaged image must not cost the whole report (decoders raise all kinds).
    """
    if image.suffix.lower() in BROWSER_SUFFIXES:
        return _Shown(image)
    preview = _preview_path(image, html_dir)
    try:
        return _Shown(preview, _updated_preview(image, preview))
    except Exception as err:  # noqa: BLE001 - see the docstring
        return _Shown(None, f"no preview: {_first_line(err)}")


def _preview_path(image: Path, html_dir: Path) -> Path:
    """previews/<stem>-<hash of the path from the page>.png: files that share a name get different previews,
    and the name stays the same when the page moves together with its images."""
    digest = hashlib.blake2b(_relative_url(image, html_dir).encode(), digest_size=6).hexdigest()
    return html_dir / PREVIEW_DIR / f"{image.stem[:PREVIEW_STEM_CHARS]}-{digest}.png"


def _updated_preview(image: Path, preview: Path) -> str:
    """Writes the preview unless it was made from the file as it is now (reports are rewritten every epoch);
    returns its note. The stamp is taken before reading, so a file replaced meanwhile is converted again."""
    status = image.stat()
    stamp = f"{status.st_mtime_ns}:{status.st_size}"
    made_from, note = _preview_stamp_and_note(preview)
    if made_from == stamp:
        return note
    pixels, note = _preview_pixels(_read_samples(image))
    info = PngInfo()
    info.add_text(SOURCE_STAMP_KEY, stamp)
    info.add_text(NOTE_KEY, note)
    with atomic_path(preview) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG", pnginfo=info, compress_level=PREVIEW_COMPRESS_LEVEL)
    return note


def _preview_stamp_and_note(preview: Path) -> tuple[str | None, str]:
    """The text chunks of an existing preview (read from the header only), or (None, "") if there is none."""
    try:
        with Image.open(preview) as opened:
            return opened.info.get(SOURCE_STAMP_KEY), opened.info.get(NOTE_KEY, "")
    except OSError:
        return None, ""


def _read_samples(image: Path) -> np.ndarray:
    """H x W x C samples as the file holds them. TIFFs are read with tifffile when it is installed, because
    Pillow drops bands past the fourth and reads 16-bit colour at 8 bits; otherwise Pillow shows what it can."""
    if image.suffix.lower() in TIFF_SUFFIXES:
        try:
            import tifffile
        except ImportError:
            return _read_with_pillow(image, hint="install tifffile to read this TIFF")
        return _read_with_tifffile(tifffile, image)
    return _read_with_pillow(image, hint="")


def _read_with_tifffile(tifffile: ModuleType, image: Path) -> np.ndarray:
    with tifffile.TiffFile(image) as tif:
        if not tif.series:  # tifffile logs why and finds no image in a damaged file
            raise ValueError("no image found: the TIFF is damaged")
        series = tif.series[0]
        if series.axes not in TIFF_IMAGE_AXES:
            raise ValueError(f"a TIFF of axes {series.axes} {series.shape} is not one image of bands")
        _check_preview_pixels(series.shape[series.axes.index("Y")] * series.shape[series.axes.index("X")])
        samples = series.asarray()
    if series.axes == "YX":
        return samples[:, :, None]
    return samples if series.axes == "YXS" else np.moveaxis(samples, 0, -1)


def _read_with_pillow(image: Path, hint: str) -> np.ndarray:
    try:
        with Image.open(image) as opened:
            _check_preview_pixels(opened.width * opened.height)
            if opened.mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not opened.mode.startswith("I;16"):
                opened = opened.convert("RGBA" if "transparency" in opened.info else "RGB")  # palettes, CMYK, ...
            samples = np.asarray(opened)
    except OSError as err:
        raise OSError(f"{_first_line(err)}; {hint}" if hint else _first_line(err)) from err
    return samples if samples.ndim == 3 else samples[:, :, None]


def _check_preview_pixels(pixels: int) -> None:
    if pixels > MAX_PREVIEW_PIXELS:
        raise ValueError(f"{pixels:,} pixels is over the preview limit of {MAX_PREVIEW_PIXELS:,}")


def _preview_pixels(samples: np.ndarray) -> tuple[np.ndarray, str]:
    """8-bit samples a PNG holds as gray, gray+alpha, RGB or RGBA, and a note of what the preview changes:
    bands past the third are left out, and values with no fixed range are stretched."""
    pixels, note = _as_8bit(samples)
    bands = pixels.shape[2]
    if bands > 4:
        pixels = pixels[:, :, :3]
        note = "; ".join(filter(None, [f"bands 1-3 of {bands} shown as RGB", note]))
    return (pixels[:, :, 0] if pixels.shape[2] == 1 else pixels), note


def _as_8bit(samples: np.ndarray) -> tuple[np.ndarray, str]:
    """8 bits as they are; 16 bits divided by 257, the scale of the bit depth and not of the image's own
    maximum, so a dark file looks dark; floats in [0, 1] times 255; anything else stretched from its minimum
    to its maximum, which the note says."""
    if samples.dtype.kind == "u" and samples.dtype.itemsize == 1:
        return samples, ""
    if samples.dtype.kind == "u" and samples.dtype.itemsize == 2:
        return ((samples.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8), ""
    values = np.nan_to_num(samples.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if low >= 0 and high <= 1:
        return np.round(values * 255).astype(np.uint8), ""
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return np.round(scaled * 255).astype(np.uint8), f"values {low:.4g} to {high:.4g} stretched to 0-255"


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
