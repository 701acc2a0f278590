"""Reports are built from real run folders written in tmp_path, and checked as a browser would read them."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pix2pix.evaluation.report import write_run_report, write_translation_report
from tests.evaluation.conftest import make_rows, resolved_sources, write_image, write_tiff


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
