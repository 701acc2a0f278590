"""Reports are built from real run folders written in tmp_path, and checked as a browser would read them."""

import json
import math
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from pix2pix.evaluation.report import (
    ReportRow,
    plot_losses,
    read_loss_log,
    write_run_report,
    write_translation_report,
)

VOID_ELEMENTS = {"meta", "img", "br", "hr", "link", "input"}
GAN_LOSSES = ("G_GAN", "G_L1", "D_real", "D_fake")


class _PageParser(HTMLParser):
    """Collects image sources and links, and checks every non-void tag is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []
        self.open_tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "img":
            self.sources.append(attributes["src"])
        if tag == "a":
            self.links.append(attributes["href"])
        if tag not in VOID_ELEMENTS:
            self.open_tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open_tags and self.open_tags[-1] == tag, f"unbalanced </{tag}>"
        self.open_tags.pop()


def parse_page(page: Path) -> _PageParser:
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    assert parser.open_tags == []
    return parser


def resolved_sources(page: Path) -> set[Path]:
    """Every img src, checked to be relative and to resolve to an existing file."""
    parser = parse_page(page)
    resolved = set()
    for src in parser.sources:
        assert not Path(unquote(src)).is_absolute() and ":" not in src, src
        target = (page.parent / unquote(src)).resolve()
        assert target.is_file(), src
        resolved.add(target)
    assert set(parser.links) >= set(parser.sources)  # every image links to its full-size file
    return resolved


def write_image(path: Path, size: tuple[int, int], color: tuple[int, int, int] = (200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def write_loss_log(path: Path, steps: int, keys: tuple[str, ...] = GAN_LOSSES) -> None:
    records = [
        {"step": step * 10, "epoch": step // 10, "lr": 2e-4, **{key: 1 / (1 + step) for key in keys}}
        for step in range(steps)
    ]
    lines = [json.dumps(record) for record in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_rows(folder: Path, count: int, with_target: bool) -> list[ReportRow]:
    return [
        ReportRow(
            name=f"image <{index}> & co",
            input=write_image(folder / "inputs" / f"{index} a.png", (32, 32)),
            output=write_image(folder / "outputs" / f"{index}.png", (32, 32)),
            target=write_image(folder / "targets" / f"{index}.png", (32, 32)) if with_target else None,
        )
        for index in range(count)
    ]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "facades"
    run.mkdir(parents=True)
    config = {
        "model": {"generator": "unet_256", "ngf": 64},
        "data": {"dataset": "<script>alert(1)</script>", "flip": True},
        "train": {"lambda_l1": 100.0, "epochs": 3},
    }
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    write_loss_log(run / "losses.jsonl", steps=40)
    for step in (0, 500, 1000):
        write_image(run / "samples" / f"step_{step:07d}.png", (96, 64))
    (run / "metrics.json").write_text(json.dumps({"step": 1000, "l1_now": 0.12, "l1_step0": 0.48}))
    return run


def test_read_loss_log_skips_truncated_last_line(tmp_path: Path) -> None:
    log = tmp_path / "losses.jsonl"
    complete = '{"step": 0, "epoch": 0, "G_L1": 0.5, "note": "x"}\n\n{"step": 10, "epoch": 0, "G_L1": 0.4}\n'
    log.write_text(complete + '{"step": 20, "ep')

    assert read_loss_log(log) == [{"step": 0, "epoch": 0, "G_L1": 0.5}, {"step": 10, "epoch": 0, "G_L1": 0.4}]


def test_read_loss_log_of_missing_or_empty_file_is_empty(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")

    assert read_loss_log(tmp_path / "missing.jsonl") == []
    assert read_loss_log(tmp_path / "empty.jsonl") == []


@pytest.mark.parametrize("keys", [GAN_LOSSES, ("G_L1",)])
def test_plot_losses_writes_png_atomically(tmp_path: Path, keys: tuple[str, ...]) -> None:
    log = tmp_path / "losses.jsonl"
    write_loss_log(log, steps=100, keys=keys)

    out = plot_losses(log, tmp_path / "plots" / "losses.png")

    assert out == tmp_path / "plots" / "losses.png"
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0
    assert [path.name for path in out.parent.iterdir()] == ["losses.png"]  # no temp file left behind


def test_plot_losses_handles_single_point_and_non_finite_values(tmp_path: Path) -> None:
    log = tmp_path / "losses.jsonl"
    log.write_text('{"step": 0, "epoch": 0, "G_L1": 0.5}\n{"step": 10, "epoch": 0, "G_L1": NaN}\n')

    assert plot_losses(log, tmp_path / "losses.png") is not None
    assert math.isnan(read_loss_log(log)[1]["G_L1"])


@pytest.mark.parametrize("content", [None, "", '{"step": 0, "epoch": 0, "lr": 0.0002}\n{"step": 1'])
def test_plot_losses_returns_none_without_losses(tmp_path: Path, content: str | None) -> None:
    log = tmp_path / "losses.jsonl"
    if content is not None:
        log.write_text(content)

    assert plot_losses(log, tmp_path / "losses.png") is None
    assert not (tmp_path / "losses.png").exists()


def test_run_report_shows_config_metrics_losses_samples_and_rows(run_dir: Path, tmp_path: Path) -> None:
    rows = make_rows(tmp_path / "test translations", count=2, with_target=True)

    page = write_run_report(run_dir, rows)

    assert page == run_dir / "report.html"
    sources = resolved_sources(page)
    samples = sorted((run_dir / "samples").glob("*.png"))
    assert {samples[0].resolve(), samples[-1].resolve(), (run_dir / "losses.png").resolve()} <= sources
    assert {path.resolve() for row in rows for path in (row.input, row.output, row.target)} <= sources
    text = page.read_text(encoding="utf-8")
    assert "unet_256" in text and "lambda_l1" in text and "100.0" in text
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "image &lt;1&gt; &amp; co" in text
    assert "0.48" in text and "0.12" in text and "-75%" in text
    assert "step 0" in text and "step 1000" in text
    assert 'class="pixelated"' in text


def test_run_report_of_fresh_run_without_logs_or_samples(tmp_path: Path) -> None:
    run = tmp_path / "new run"
    run.mkdir()

    page = write_run_report(run)

    assert resolved_sources(page) == set()
    text = page.read_text(encoding="utf-8")
    for note in ("No config.json found.", "No losses logged yet.", "No sample grids yet."):
        assert note in text


@pytest.mark.parametrize("with_target", [True, False])
def test_translation_report_is_self_contained(run_dir: Path, tmp_path: Path, with_target: bool) -> None:
    out_dir = tmp_path / "translated"
    rows = make_rows(out_dir, count=3, with_target=with_target)

    page = write_translation_report(out_dir, rows, title="Facades <test>", run_dir=run_dir)

    assert page == out_dir / "report.html"
    sources = resolved_sources(page)
    assert all(source.is_relative_to(out_dir.resolve()) for source in sources)
    assert (out_dir / "losses.png").resolve() in sources
    assert len(sources) == 1 + len(rows) * (3 if with_target else 2)
    text = page.read_text(encoding="utf-8")
    assert "Facades &lt;test&gt;" in text
    assert ("<th>target</th>" in text) == with_target


def test_translation_report_without_run_has_no_loss_plot(tmp_path: Path) -> None:
    rows = make_rows(tmp_path / "out", count=1, with_target=False)

    page = write_translation_report(tmp_path / "out", rows, title="Maps")

    assert not (tmp_path / "out" / "losses.png").exists()
    assert len(resolved_sources(page)) == 2
