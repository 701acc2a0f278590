"""Reports are built from real run folders written in tmp_path, and checked as a browser would read them."""

import json
import math
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import tifffile
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
    """Collects image sources, the links around them and all links, and checks every non-void tag is closed in
    order."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []
        self.linked_images: list[tuple[str | None, str, str]] = []  # (href of the enclosing link, src, alt)
        self.open_tags: list[str] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "img":
            self.sources.append(attributes["src"])
            self.linked_images.append((self._href, attributes["src"], attributes["alt"]))
        if tag == "a":
            self.links.append(attributes["href"])
            self._href = attributes["href"]
        if tag not in VOID_ELEMENTS:
            self.open_tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open_tags and self.open_tags[-1] == tag, f"unbalanced </{tag}>"
        self.open_tags.pop()
        if tag == "a":
            self._href = None


def parse_page(page: Path) -> _PageParser:
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    assert parser.open_tags == []
    return parser


def resolve(page: Path, url: str) -> Path:
    """The file a relative URL of the page names, checked to exist."""
    assert not Path(unquote(url)).is_absolute() and ":" not in url, url
    target = (page.parent / unquote(url)).resolve()
    assert target.is_file(), url
    return target


def resolved_sources(page: Path) -> set[Path]:
    """Every img src, checked to be relative and to resolve to an existing file."""
    parser = parse_page(page)
    for href, _, _ in parser.linked_images:  # every image links to its full-size file
        assert href is not None
        resolve(page, href)
    return {resolve(page, src) for src in parser.sources}


def shown_images(page: Path) -> dict[Path, tuple[Path, str]]:
    """Linked file -> (the file its img shows, alt text), for every image of the page."""
    parser = parse_page(page)
    return {resolve(page, href): (resolve(page, src), alt) for href, src, alt in parser.linked_images}


def write_tiff(path: Path, samples: np.ndarray) -> Path:
    """A TIFF as the project writes them: bands as contiguous samples, 3 or 4 bands as RGB(A)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    photometric = "rgb" if samples.ndim == 3 and samples.shape[2] in (3, 4) else "minisblack"
    tifffile.imwrite(path, samples, photometric=photometric, planarconfig="contig")
    return path


def preview_pixels(preview: Path) -> tuple[str, np.ndarray]:
    with Image.open(preview) as image:
        assert image.format == "PNG"
        return image.mode, np.asarray(image)


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


# ---------------------------------------------------------------------------------------------- previews


def test_translation_report_shows_16bit_and_multiband_tiffs_through_8bit_png_previews(tmp_path: Path) -> None:
    out_dir = tmp_path / "translated"
    rgb = np.zeros((32, 40, 3), np.uint16)
    rgb[0, 0] = (0, 128, 129)  # 128/257 rounds down, 129/257 up
    rgb[1, 2] = (65535, 2570, 32896)
    bands = np.full((32, 40, 6), 65535, np.uint16)
    bands[3, 4, :3] = (257, 514, 771)
    gray = np.zeros((32, 40), np.uint16)
    gray[0, 0], gray[5, 6] = 256, 65535
    row = ReportRow(
        name="tile",
        input=write_tiff(tmp_path / "aerial" / "tile.tif", rgb),
        output=write_tiff(out_dir / "tile.tif", bands),
        target=write_tiff(tmp_path / "truth" / "tile.tiff", gray),
    )

    page = write_translation_report(out_dir, [row], title="Aerial")

    shown = shown_images(page)
    assert set(shown) == {row.input.resolve(), row.output.resolve(), row.target.resolve()}  # links: the originals
    previews = {preview for preview, _ in shown.values()}
    assert len(previews) == 3 and all(preview.parent == (out_dir / "previews").resolve() for preview in previews)
    mode, pixels = preview_pixels(shown[row.input.resolve()][0])
    assert mode == "RGB" and pixels[0, 0].tolist() == [0, 0, 1] and pixels[1, 2].tolist() == [255, 10, 128]
    mode, pixels = preview_pixels(shown[row.output.resolve()][0])
    assert mode == "RGB" and pixels[3, 4].tolist() == [1, 2, 3] and pixels[0, 0].tolist() == [255, 255, 255]
    mode, pixels = preview_pixels(shown[row.target.resolve()][0])
    assert mode == "L" and pixels[0, 0] == 1 and pixels[5, 6] == 255 and pixels[1, 1] == 0
    assert "bands 1-3 of 6 shown as RGB" in shown[row.output.resolve()][1]
    assert "bands 1-3 of 6 shown as RGB" in page.read_text(encoding="utf-8")  # also visible under the image
    assert all(not path.name.startswith(".") for path in (out_dir / "previews").iterdir())  # no temp files left


def test_run_report_previews_tiff_rows_beside_its_page(run_dir: Path, tmp_path: Path) -> None:
    row = ReportRow("tile", write_tiff(tmp_path / "in.tif", np.full((32, 32), 514, np.uint16)), tmp_path / "x.png")
    write_image(row.output, (32, 32))

    page = write_run_report(run_dir, [row])

    preview, _ = shown_images(page)[row.input.resolve()]
    assert preview.parent == (run_dir / "previews").resolve()
    assert preview_pixels(preview)[1][0, 0] == 2


@pytest.mark.parametrize(("bands", "mode"), [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA"), (5, "RGB")])
def test_8bit_tiff_preview_keeps_values_and_maps_bands_to_a_png_mode(tmp_path: Path, bands: int, mode: str) -> None:
    samples = (np.arange(32 * 40 * bands).reshape(32, 40, bands) % 251).astype(np.uint8)
    row = ReportRow("tile", write_tiff(tmp_path / "in.tif", samples.squeeze(axis=2) if bands == 1 else samples),
                    write_image(tmp_path / "out.png", (40, 32)))

    page = write_translation_report(tmp_path / "out", [row], title="Bands")

    preview_mode, pixels = preview_pixels(shown_images(page)[row.input.resolve()][0])
    assert preview_mode == mode
    assert np.array_equal(pixels.reshape(32, 40, -1), samples[:, :, :3] if bands > 4 else samples)


@pytest.mark.parametrize(
    ("values", "expected", "note"),
    [([0.0, 0.5, 1.0], [0, 128, 255], ""), ([-1.0, 0.0, 3.0], [0, 64, 255], "values -1 to 3 stretched to 0-255")],
)
def test_float_tiff_preview_scales_unit_range_and_stretches_others(
    tmp_path: Path, values: list[float], expected: list[int], note: str
) -> None:
    samples = np.zeros((32, 40), np.float32)
    samples[0, :3] = values
    row = ReportRow("tile", write_tiff(tmp_path / "in.tif", samples), write_image(tmp_path / "out.png", (40, 32)))

    page = write_translation_report(tmp_path / "out", [row], title="Floats")

    preview, alt = shown_images(page)[row.input.resolve()]
    assert preview_pixels(preview)[1][0, :3].tolist() == expected
    assert note in alt and ("stretched" in alt) == bool(note)


def test_browser_images_are_shown_as_they_are_without_previews(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 32), (10, 20, 30)).save(photo)
    deep = out_dir / "deep.png"
    out_dir.mkdir()
    Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(deep)  # 16-bit PNG: browsers show it
    row = ReportRow("photo", photo, deep, write_image(tmp_path / "truth.png", (32, 32)))

    page = write_translation_report(out_dir, [row], title="Browser images")

    shown = shown_images(page)
    assert {link: preview for link, (preview, _) in shown.items()} == {
        path.resolve(): path.resolve() for path in (row.input, row.output, row.target)
    }
    assert not (out_dir / "previews").exists()


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated"])
def test_damaged_tiff_gives_a_note_with_a_link_instead_of_an_image(tmp_path: Path, damage: str) -> None:
    damaged = write_tiff(tmp_path / "broken.tif", np.full((32, 40, 6), 1000, np.uint16))
    whole = damaged.read_bytes()
    damaged.write_bytes({"garbage": b"II*\x00garbage", "empty": b"", "truncated": whole[: len(whole) // 2]}[damage])
    row = ReportRow("broken", damaged, write_image(tmp_path / "out.png", (40, 32)))

    page = write_translation_report(tmp_path / "out", [row], title="Damaged")

    parser = parse_page(page)
    assert damaged.resolve() in {resolve(page, href) for href in parser.links}
    assert damaged.resolve() not in shown_images(page)
    assert set(shown_images(page)) == {row.output.resolve()}
    assert page.read_text(encoding="utf-8").count("no preview: ") == 1


def test_tiff_preview_without_tifffile_uses_pillow_or_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readable = write_tiff(tmp_path / "rgb.tif", np.full((32, 40, 3), 77, np.uint8))
    multiband = write_tiff(tmp_path / "six.tif", np.full((32, 40, 6), 77, np.uint8))
    monkeypatch.setitem(sys.modules, "tifffile", None)  # import tifffile now raises ImportError

    page = write_translation_report(tmp_path / "out", [ReportRow("tile", readable, multiband)], title="No tifffile")

    shown = shown_images(page)
    assert set(shown) == {readable.resolve()}
    assert preview_pixels(shown[readable.resolve()][0])[1][0, 0].tolist() == [77, 77, 77]
    assert "install tifffile" in page.read_text(encoding="utf-8")


def test_files_that_share_a_name_get_their_own_previews(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    rows = [
        ReportRow(
            "x",
            write_tiff(tmp_path / folder / "x.tif", np.full((32, 32), 257 * value, np.uint16)),
            write_tiff(out_dir / folder / "x.tif", np.full((32, 32), 257 * (value + 1), np.uint16)),
        )
        for folder, value in (("a", 10), ("b", 20))
    ]

    page = write_translation_report(out_dir, rows, title="Same names")

    shown = shown_images(page)
    assert len({preview for preview, _ in shown.values()}) == 4
    for row in rows:
        for path in (row.input, row.output):
            expected = int(tifffile.imread(path)[0, 0]) // 257
            assert preview_pixels(shown[path.resolve()][0])[1][0, 0] == expected


def test_rewriting_the_report_reuses_up_to_date_previews_and_redoes_changed_ones(tmp_path: Path) -> None:
    source = write_tiff(tmp_path / "tile.tif", np.full((32, 40, 6), 257 * 5, np.uint16))
    row = ReportRow("tile", source, write_image(tmp_path / "out.png", (40, 32)))
    out_dir = tmp_path / "out"
    page = write_translation_report(out_dir, [row], title="Epoch 1")
    preview, _ = shown_images(page)[source.resolve()]
    written = preview.stat()

    page = write_translation_report(out_dir, [row], title="Epoch 2")

    reused = preview.stat()
    assert (reused.st_ino, reused.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert "bands 1-3 of 6 shown as RGB" in shown_images(page)[source.resolve()][1]  # the note survives reuse

    write_tiff(source, np.full((32, 40, 6), 257 * 9, np.uint16))
    later = source.stat().st_mtime_ns + 2_000_000_000  # a clearly later mtime, whatever the clock's resolution
    os.utime(source, ns=(later, later))
    page = write_translation_report(out_dir, [row], title="Epoch 3")

    assert shown_images(page)[source.resolve()][0] == preview
    assert preview.stat().st_ino != written.st_ino
    assert preview_pixels(preview)[1][0, 0].tolist() == [9, 9, 9]


WITHOUT_TORCH = """
import sys
from importlib.abc import MetaPathFinder
from pathlib import Path

class NoTorch(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("no torch on this machine")

sys.meta_path.insert(0, NoTorch())
from pix2pix.evaluation.report import ReportRow, write_translation_report

tiff, png, out = map(Path, sys.argv[1:])
write_translation_report(out, [ReportRow("tile", tiff, png)], title="Rebuilt without torch")
assert "torch" not in sys.modules
"""


def test_report_module_builds_tiff_previews_without_torch(tmp_path: Path) -> None:
    """Reports are rebuilt from run folders on machines without torch: report.py must not need it."""
    tiff = write_tiff(tmp_path / "in.tif", np.full((32, 40, 6), 1000, np.uint16))
    png = write_image(tmp_path / "out.png", (40, 32))

    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, str(tiff), str(png), str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )

    assert result.returncode == 0, result.stderr
    assert len(resolved_sources(tmp_path / "out" / "report.html")) == 2
