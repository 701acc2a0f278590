"""Images a browser cannot show (TIFF, many bands, 16 bits, floats) reach the page through 8-bit PNG previews."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from pix2pix.evaluation.report import ReportRow, write_run_report, write_translation_report
from tests.evaluation.conftest import parse_page, preview_pixels, resolve, shown_images, write_image, write_tiff


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
