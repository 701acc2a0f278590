"""Run folders and the page checks the report tests share: pages are read as a browser would read them."""

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import tifffile
from PIL import Image

from pix2pix.evaluation.report import ReportRow

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
