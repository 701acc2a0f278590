"""The ONNX export and `--backend onnx`: torch's images in both modes, seeds, the cache in the run folder, the
commands, and a clear message when ONNX Runtime is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import Translator
from pix2pix.cli import main
from pix2pix.config import RunConfig
from pix2pix.export import ExportError, onnx_path
from pix2pix.inference import Tiling
from pix2pix.models import in_mode
from pix2pix.models.generator import run_padded
from pix2pix.training.loop import train
from tests.conftest import TINY


@pytest.fixture(scope="module")
def run(tmp_path_factory, facades):
    path = tmp_path_factory.mktemp("export") / "run"
    train(RunConfig().updated({**TINY, "data": str(facades), "max_steps": 4}), path)
    return path


@pytest.fixture(scope="module")
def onnx(run):
    """Translators on the ONNX backend, one per mode; the first call of each exports into the run folder."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    return {mode: Translator.load(run, mode=mode, backend="onnx", device="cpu") for mode in ("eval", "paper")}


def images(batch: int = 2, height: int = 40, width: int = 52) -> torch.Tensor:
    """Not multiples of the U-Net's 32, so padding and cropping are part of what is compared."""
    torch.manual_seed(1)
    return torch.rand(batch, 3, height, width) * 2 - 1


def test_onnx_eval_mode_equals_torch_eval_mode(onnx):
    generator = onnx["eval"].generator
    x = images()
    with torch.no_grad():
        expected = run_padded(in_mode(generator, "eval"), x, generator.multiple)
    torch.testing.assert_close(onnx["eval"](x), expected, atol=1e-4, rtol=1e-4)
    assert onnx_path(onnx["eval"].run.path, "eval").is_file()


def test_onnx_paper_mode_equals_torch_paper_mode_with_the_same_seed(onnx):
    """The masks are drawn as nn.Dropout draws them and batch norm uses the batch's statistics, so a seeded paper
    translation is the same image on both backends; with running statistics it would not be."""
    x = images()
    onnx["paper"].seed = 5
    torch_paper = Translator.load(onnx["paper"].run.path, mode="paper", seed=5)
    expected = torch_paper(x)
    torch.testing.assert_close(onnx["paper"](x), expected, atol=1e-4, rtol=1e-4)
    generator = torch_paper.generator.eval()
    for dropout in (m for m in generator.modules() if isinstance(m, torch.nn.Dropout)):
        dropout.train()
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(5)
        running_statistics = generator.forward_any_size(x)
    assert (running_statistics - expected).abs().max() > 0.05


def test_onnx_paper_mode_repeats_with_a_seed_and_varies_without(onnx):
    x = images(batch=1)
    paper = onnx["paper"]
    paper.seed = 3
    first, again = paper(x), paper(x)
    paper.seed = 4
    other = paper(x)
    paper.seed = None
    assert torch.equal(first, again)
    assert (first - other).abs().max() > 1e-3
    assert (paper(x) - paper(x)).abs().max() > 1e-3


def test_onnx_backend_tiles_like_the_torch_backend(onnx):
    x = images(batch=1, height=40, width=96)
    tiling = Tiling(tile=32, overlap=16)
    onnx["eval"].tiling = tiling
    try:
        tiled = onnx["eval"](x)
    finally:
        onnx["eval"].tiling = Tiling()
    expected = Translator.load(onnx["eval"].run.path, mode="eval", tiling=tiling)(x)
    torch.testing.assert_close(tiled, expected, atol=1e-4, rtol=1e-4)


def test_the_export_is_reused_until_the_run_saves_new_weights(onnx, tmp_path, monkeypatch):
    onnx["eval"](images(batch=1))  # exported by now
    run = tmp_path / "run"
    shutil.copytree(onnx["eval"].run.path, run)  # keeps the files' times, so the export is still up to date

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr("pix2pix.export.export_graph", no_export)
    Translator.load(run, mode="eval", backend="onnx")(images(batch=1))
    weights = run / "generator.safetensors"
    saved = weights.stat().st_mtime_ns
    shutil.copy(weights, tmp_path / "new.safetensors")
    (tmp_path / "new.safetensors").replace(weights)  # as the next save of a training run would
    assert weights.stat().st_mtime_ns != saved
    with pytest.raises(AssertionError, match="exported again"):
        Translator.load(run, mode="eval", backend="onnx")(images(batch=1))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pix2pix", *args], capture_output=True, text=True)


def test_translate_command_with_the_onnx_backend_writes_torchs_images(onnx, facades, tmp_path):
    inputs = facades / "test"
    for backend in ("onnx", "torch"):
        result = run_cli("translate", str(onnx["eval"].run.path), str(inputs), "--out", str(tmp_path / backend),
                         "--mode", "eval", "--aligned", "--backend", backend)
        assert result.returncode == 0, result.stderr
    for path in sorted(inputs.iterdir()):
        written = np.asarray(Image.open(tmp_path / "onnx" / f"{path.stem}.png"), dtype=int)
        expected = np.asarray(Image.open(tmp_path / "torch" / f"{path.stem}.png"), dtype=int)
        assert written.shape == (32, 32, 3) and written.std() > 1
        assert np.abs(written - expected).max() <= 1  # float rounding may flip the last 8-bit step


def test_export_command_writes_a_stamped_graph_for_each_mode_asked(onnx, tmp_path, capsys):
    import onnxruntime

    copy = tmp_path / "run"
    shutil.copytree(onnx["eval"].run.path, copy, ignore=shutil.ignore_patterns("*.onnx"))
    assert main(["export", str(copy), "--mode", "paper"]) == 0
    assert str(copy / "generator-paper.onnx") in capsys.readouterr().out
    assert not (copy / "generator-eval.onnx").exists()
    session = onnxruntime.InferenceSession(str(copy / "generator-paper.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", "mask_0", "mask_1", "mask_2"]
    assert session.get_modelmeta().custom_metadata_map["pix2pix.mode"] == "paper"


def test_a_missing_onnxruntime_is_named_with_the_install_command(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ExportError, match=r'pip install "pix2pix\[onnx\]"'):
        Translator.load(run, mode="eval", backend="onnx")(images(batch=1))
    Image.new("RGB", (32, 32)).save(tmp_path / "in.png")
    status = main(["translate", str(run), str(tmp_path / "in.png"), "--out", str(tmp_path / "out"),
                   "--backend", "onnx"])
    error = capsys.readouterr().err
    assert status == 2 and 'onnxruntime' in error and 'pip install "pix2pix[onnx]"' in error
    assert "Traceback" not in error


@pytest.mark.parametrize("height, width, bias", [(1, 1, True), (3, 5, False), (16, 16, True)])
def test_subpixel_form_of_the_transposed_convolution_gives_the_same_output(height, width, bias):
    from pix2pix.export import SubPixelTransposedConv

    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(24, 16, 4, stride=2, padding=1, bias=bias)
    assert SubPixelTransposedConv.applies_to(conv)
    x = torch.randn(2, 24, height, width)
    with torch.no_grad():
        torch.testing.assert_close(SubPixelTransposedConv(conv)(x), conv(x), atol=1e-5, rtol=1e-5)


def test_exporting_leaves_the_generator_as_pytorchs_plain_layers(onnx):
    """Both graphs are exported from copies: the translator's generator keeps its layers and running statistics."""
    for translator in onnx.values():
        translator(images(batch=1))  # exported by now
        modules = list(translator.generator.modules())
        assert {type(m) for m in modules if "Conv" in type(m).__name__} == {torch.nn.Conv2d, torch.nn.ConvTranspose2d}
        assert sum(isinstance(m, torch.nn.Dropout) for m in modules) == 3
        assert all(m.track_running_stats and m.running_mean is not None
                   for m in modules if isinstance(m, torch.nn.BatchNorm2d))


LOAD_WITHOUT_PIX2PIX = """
import sys, torch
module = torch.jit.load(sys.argv[1])
with torch.no_grad():
    outputs = [module(x) for x in torch.load(sys.argv[2])]
assert "pix2pix" not in sys.modules, "pix2pix was imported"
torch.save(outputs, sys.argv[3])
"""


def test_torchscript_eval_mode_runs_without_pix2pix_as_torch_eval_mode_at_several_sizes(run, tmp_path, capsys):
    out = tmp_path / "exported" / "generator.pt"
    assert main(["export", str(run), "--format", "torchscript", "--mode", "eval", "--out", str(out)]) == 0
    assert f"Wrote {out} (eval mode, torchscript)" in capsys.readouterr().out
    inputs = [images(1, 32, 32), images(3, 64, 32), images(2, 64, 96)]
    torch.save(inputs, tmp_path / "inputs.pt")
    loaded = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_PIX2PIX, str(out), str(tmp_path / "inputs.pt"),
                             str(tmp_path / "outputs.pt")], capture_output=True, text=True, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    translator = Translator.load(run, mode="eval")
    for x, output in zip(inputs, torch.load(tmp_path / "outputs.pt")):
        assert output.shape == x.shape
        assert (output - translator(x)).abs().max() < 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_paper_mode_draws_the_masks_of_torchs_generator_and_records_what_it_needs(run, tmp_path):
    """`torch.manual_seed(N)` before a call gives the images of the torch backend's paper mode with seed N."""
    assert main(["export", str(run), "--format", "torchscript", "--mode", "paper"]) == 0
    extra = {"pix2pix.json": ""}
    module = torch.jit.load(str(run / "generator-paper.pt"), _extra_files=extra)
    assert json.loads(extra["pix2pix.json"]) | {"source": ""} == {
        "mode": "paper", "multiple": 32, "input_nc": 3, "output_nc": 3, "source": ""}
    x = images(2, 64, 32)
    outputs = {}
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        with torch.no_grad():
            outputs.setdefault(seed, []).append(module(x))
    assert torch.equal(*outputs[5]) and (outputs[5][0] - outputs[6][0]).abs().max() > 1e-3
    expected = Translator.load(run, mode="paper", seed=5)(x)
    assert (outputs[5][0] - expected).abs().max() < 1e-4


@pytest.mark.parametrize("broken", ["missing", "bad weights"])
def test_exporting_a_broken_run_is_one_line(run, tmp_path, capsys, broken):
    target = tmp_path / "run"
    if broken == "bad weights":
        shutil.copytree(run, target, ignore=shutil.ignore_patterns("*.onnx", "*.pt", "checkpoints"))
        (target / "generator.safetensors").write_bytes(b"not weights")
    status = main(["export", str(target), "--format", "torchscript", "--mode", "eval"])
    error = capsys.readouterr().err
    assert status == 2 and error.count("\n") == 1 and error.startswith(f"pix2pix: error: {target}")
    assert ("not a pix2pix run folder" if broken == "missing" else "unreadable weights") in error
    assert not list(tmp_path.rglob("*.pt"))


def test_one_out_file_for_several_modes_is_refused(run, tmp_path, capsys):
    assert main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "g.pt")]) == 2
    assert capsys.readouterr().err == ("pix2pix: error: --out names one file, and 2 modes were asked for; choose one "
                                       "--mode (paper or eval)\n")
