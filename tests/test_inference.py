"""Translating with a trained run: any size, both test modes, seeds, the Python API and the command."""

from __future__ import annotations

import copy
import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import Translator, atomic
from pix2pix.cli import main
from pix2pix.runs import RunError
from pix2pix.training.loop import train
from tests.conftest import needs_cuda, needs_cxx


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, facades):
    from pix2pix.config import RunConfig
    from tests.conftest import TINY

    run = tmp_path_factory.mktemp("translate") / "run"
    train(RunConfig().updated({**TINY, "data": str(facades), "max_steps": 4}), run)
    return run


def gradient_image(width: int, height: int) -> Image.Image:
    x = torch.linspace(0, 255, width).expand(height, width)
    y = torch.linspace(0, 255, height)[:, None].expand(height, width)
    return Image.fromarray(torch.stack([x, y, (x + y) / 2], dim=-1).to(torch.uint8).numpy())


@pytest.mark.parametrize("size", [(300, 217), (33, 47), (32, 32), (5, 3)])
def test_any_input_size_gives_an_output_of_that_size(trained_run, size):
    output = Translator.load(trained_run, mode="eval")(gradient_image(*size))
    assert output.size == size and output.mode == "RGB"


def test_eval_mode_is_deterministic_and_paper_mode_varies_unless_seeded(trained_run):
    image = gradient_image(64, 48)
    evaluate = Translator.load(trained_run, mode="eval")
    assert evaluate(image).tobytes() == evaluate(image).tobytes()
    paper = Translator.load(trained_run, mode="paper")
    assert paper(image).tobytes() != paper(image).tobytes()
    seeded_a, seeded_b = Translator.load(trained_run, seed=3), Translator.load(trained_run, seed=3)
    assert seeded_a(image).tobytes() == seeded_b(image).tobytes()
    assert seeded_a(image).tobytes() != Translator.load(trained_run, seed=4)(image).tobytes()


def test_paper_mode_uses_batch_statistics_and_leaves_the_running_ones_alone(trained_run):
    translator = Translator.load(trained_run, mode="paper", seed=0)
    norms = [m for m in translator.generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    batch = torch.rand(2, 3, 32, 32) * 2 - 1
    both = translator(batch)
    alone = translator(batch[:1])
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, norms))
    assert all(m.track_running_stats for m in norms)
    assert not torch.allclose(both[:1], alone, atol=1e-4)  # statistics come from the batch it sees


@pytest.mark.parametrize("mode", ["paper", "eval"])
def test_eager_cpu_translation_runs_the_cpu_kernels_and_leaves_the_generator_plain(trained_run, monkeypatch, mode):
    from pix2pix.models import cpu_kernels

    calls = []
    real = cpu_kernels.transposed_conv_as_matmul
    monkeypatch.setattr(cpu_kernels, "transposed_conv_as_matmul", lambda *a: calls.append(a) or real(*a))
    translator = Translator.load(trained_run, mode=mode, seed=0)
    translator(gradient_image(32, 32))
    assert calls
    layers = {type(m) for m in translator.generator.modules() if "Conv" in type(m).__name__}
    assert layers == {torch.nn.Conv2d, torch.nn.ConvTranspose2d}


def test_an_unknown_mode_is_refused_when_the_translator_is_built(trained_run):
    with pytest.raises(ValueError, match="unknown `mode` 'test': use paper or eval"):
        Translator.load(trained_run, mode="test")


def test_load_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(RunError, match="not a pix2pix run folder"):
        Translator.load(tmp_path)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pix2pix", *args], capture_output=True, text=True)


def translate_one_file(run, image: Image.Image, folder, *flags: str) -> subprocess.CompletedProcess:
    """`pix2pix translate RUN FOLDER/in.png --out FOLDER/out FLAGS...`, the image saved there first."""
    image.save(folder / "in.png")
    return run_cli("translate", str(run), str(folder / "in.png"), "--out", str(folder / "out"), *flags)


def test_translate_command_writes_outputs_targets_and_a_report(trained_run, facades, tmp_path):
    out = tmp_path / "out"
    result = run_cli("translate", str(trained_run), str(facades / "test"), "--out", str(out), "--aligned",
                     "--seed", "1", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    names = sorted(p.stem for p in (facades / "test").iterdir())
    for name in names:
        assert Image.open(out / f"{name}.png").size == (32, 32)
        assert Image.open(out / f"{name}_target.png").size == (32, 32)
    report = (out / "report.html").read_text()
    assert all(f"{name}_target.png" in report for name in names)


def test_translate_goes_on_past_bad_files_and_says_which_failed(trained_run, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    gradient_image(40, 30).save(inputs / "good.png")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    result = run_cli("translate", str(trained_run), str(inputs), "--out", str(out), "--mode", "eval")
    assert result.returncode == 1
    assert "broken.png" in result.stderr and "Traceback" not in result.stderr
    assert Image.open(out / "good.png").size == (40, 30)
    assert not (out / "broken.png").exists() and not list(out.glob(".*.tmp"))


def test_damaged_weights_are_refused_naming_the_file(trained_run, tmp_path):
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    weights = run / "generator.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(RunError, match=f"{weights}: unreadable weights"):
        Translator.load(run)
    result = run_cli("translate", str(run), str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"pix2pix: error: {weights}: unreadable weights")


def test_an_out_path_that_is_a_file_is_refused_before_anything_is_written(trained_run, tmp_path):
    gradient_image(40, 30).save(tmp_path / "in.png")
    (tmp_path / "out").write_text("a file")
    result = run_cli("translate", str(trained_run), str(tmp_path / "in.png"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == f"pix2pix: error: {tmp_path / 'out'}: is a file, not a folder; choose another --out\n"
    assert (tmp_path / "out").read_text() == "a file"


def test_a_folder_without_images_is_an_error_not_a_summary_of_nothing(trained_run, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    result = run_cli("translate", str(trained_run), str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"pix2pix: error: {tmp_path / 'empty'}: no image files in it (.png ")


def test_a_full_disk_stops_translating_in_one_line_leaving_no_partial_file(trained_run, tmp_path, monkeypatch,
                                                                          capsys):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    gradient_image(40, 30).save(tmp_path / "a.png")
    gradient_image(40, 30).save(tmp_path / "b.png")
    monkeypatch.setattr(atomic.os, "fsync", no_space)  # the disk fills while the first output is written
    out = tmp_path / "out"
    assert main(["translate", str(trained_run), str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                 "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"pix2pix: error: {out}: cannot write a.png (No space left on device); "
                                       "check the --out folder and its free space\n")
    assert list(out.iterdir()) == []


def test_16bit_gray_to_4band_tiff_trains_and_translates_at_full_fidelity(tmp_path):
    """Channels come from the data (1 in, 4 out) and a 16-bit input gives a 16-bit output."""
    import numpy as np

    tifffile = pytest.importorskip("tifffile")
    from pix2pix.data.reading import load_image_data
    from tests.conftest import tiny_flags

    rng = np.random.default_rng(0)
    for side in ("A", "B"):
        (tmp_path / "data" / side).mkdir(parents=True)
    for i in range(2):
        Image.fromarray(rng.integers(0, 65535, (32, 32), dtype=np.uint16)).save(tmp_path / "data" / "A" / f"{i}.png")
        tifffile.imwrite(tmp_path / "data" / "B" / f"{i}.tif", rng.integers(0, 255, (32, 32, 4), dtype=np.uint8),
                         photometric="minisblack", planarconfig="contig")
    run, out = tmp_path / "run", tmp_path / "out"
    trained = run_cli("train", "--out", str(run), *tiny_flags(tmp_path / "data"), "--max-steps", "1")
    assert trained.returncode == 0, trained.stderr
    translated = run_cli("translate", str(run), str(tmp_path / "data" / "A" / "0.png"), "--out", str(out))
    assert translated.returncode == 0, translated.stderr
    output = load_image_data(out / "0.png")
    assert (output.channels, output.bit_depth, output.size) == (4, 16, (32, 32))


@pytest.mark.parametrize("length, tile, overlap", [(100, 32, 8), (64, 64, 16), (30, 64, 16), (1000, 256, 64)])
def test_tiles_cover_every_pixel_and_neighbours_share_the_overlap(length, tile, overlap):
    from pix2pix.inference import tile_starts

    starts = tile_starts(length, min(tile, length), overlap)
    size = min(tile, length)
    covered = torch.zeros(length, dtype=torch.bool)
    for start in starts:
        covered[start:start + size] = True
    assert covered.all() and starts[-1] + size == length
    assert all(a + size - b >= overlap for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("length, largest, overlap, expected", [
    (2048, 1792, 64, 1280),  # 2 x 2 tiles of 1280 rather than 3 x 3 of 1024
    (4096, 1792, 64, 1536),
    (1000, 1792, 64, 1024),
    (300, 64, 16, 64),
])
def test_automatic_tiles_are_as_few_as_the_budget_allows_and_unpadded(length, largest, overlap, expected):
    from pix2pix.inference import fewest_tiles_size, tile_starts

    tile = fewest_tiles_size(length, largest, overlap, multiple=32 if largest == 64 else 256)
    assert tile == expected and tile <= largest
    count = len(tile_starts(length, min(tile, length), overlap))
    assert count == max(1, -(-(length - overlap) // (largest - overlap)))


def column_steps(tensor: torch.Tensor) -> torch.Tensor:
    """Mean absolute change between neighbouring columns."""
    return (tensor[..., 1:] - tensor[..., :-1]).abs().mean(dim=(0, 1, 2))


def test_blending_hides_the_seams_that_tile_dependent_outputs_would_leave():
    """A stand-in generator whose output shifts with each tile's content (as padding and batch statistics make a
    real one do): cut hard, the tiles show a step at every border; blended, the offset is spread over the overlap,
    so no column changes by more than a fraction of the hard step."""
    from pix2pix.inference import translate_in_tiles

    smooth = torch.linspace(-1, 1, 160).expand(1, 3, 48, 160).contiguous()
    tile_dependent = lambda part: part + part.mean()  # noqa: E731
    hard_cut = translate_in_tiles(tile_dependent, smooth, tile=32, overlap=0)
    blended = translate_in_tiles(tile_dependent, smooth, tile=48, overlap=24)
    hard_step = column_steps(hard_cut)[[31, 63, 95, 127]].min()
    assert hard_step > 20 * column_steps(smooth).max()
    assert column_steps(blended).max() < 0.2 * hard_step


def test_tiled_eval_translation_of_a_smooth_image_matches_its_smoothness(trained_run):
    from pix2pix.inference import Tiling

    image = image_to_batch(gradient_image(96, 40))
    blended = Translator.load(trained_run, mode="eval", tiling=Tiling(tile=32, overlap=16))(image)
    whole = Translator.load(trained_run, mode="eval", tiling=Tiling(tile=0))(image)
    assert blended.shape == whole.shape == (1, 3, 40, 96)
    assert column_steps(blended).max() < 2 * column_steps(whole).max()


def test_images_over_the_memory_budget_are_tiled_automatically(trained_run):
    from pix2pix.inference import Tiling

    small_budget = Translator.load(trained_run, mode="eval", tiling=Tiling(memory_budget_gib=1e-6))
    assert small_budget.tile_size(torch.zeros(1, 3, 64, 64)) == 32  # the U-Net's multiple: the smallest tile
    assert Translator.load(trained_run, mode="eval").tile_size(torch.zeros(1, 3, 64, 64)) is None
    image = image_to_batch(gradient_image(50, 30))
    explicit = Translator.load(trained_run, mode="eval", tiling=Tiling(tile=32))
    torch.testing.assert_close(small_budget(image), explicit(image))
    assert not torch.allclose(small_budget(image), Translator.load(trained_run, mode="eval")(image))


@pytest.mark.parametrize(("flags", "named"), [(["--tile", "-5"], "--tile"), (["--overlap", "-1"], "--overlap"),
                                              (["--memory-budget", "0"], "--memory-budget")])
def test_tiling_flags_out_of_range_are_refused_by_name(trained_run, tmp_path, flags, named):
    gradient_image(40, 30).save(tmp_path / "in.png")
    result = run_cli("translate", str(trained_run), str(tmp_path / "in.png"), "--out", str(tmp_path / "out"), *flags)
    assert result.returncode == 2 and f"pix2pix: error: {named} must be " in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_negative_overlap_which_would_leave_gaps_between_tiles_is_refused():
    from pix2pix.config import ConfigError
    from pix2pix.inference import Tiling

    with pytest.raises(ConfigError, match="`overlap` must be >= 0"):
        Tiling(tile=32, overlap=-1)


def image_to_batch(image: Image.Image) -> torch.Tensor:
    from pix2pix.data.tensors import image_to_tensor

    return image_to_tensor(image).unsqueeze(0)


def test_translate_command_tiles_on_request_and_keeps_the_size(trained_run, tmp_path):
    result = translate_one_file(trained_run, gradient_image(300, 217), tmp_path, "--mode", "eval", "--tile", "64",
                                "--overlap", "16")
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out" / "in.png").size == (300, 217)


native_bf16 = pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                                 reason="this CPU has no native bf16")


@native_bf16
def test_bf16_translation_holds_the_generator_in_bf16_and_stays_close_to_fp32(trained_run):
    """Odd sizes go through the padding in bf16 too; the output comes back as fp32 within a small fraction of the
    [-1, 1] range, and paper mode stays reproducible by seed."""
    image = image_to_batch(gradient_image(45, 37))
    fp32 = Translator.load(trained_run, mode="eval")
    bf16 = Translator.load(trained_run, mode="eval", precision="bf16")
    assert all(p.dtype == torch.bfloat16 for p in bf16.generator.parameters())
    reference, output = fp32(image), bf16(image)
    assert output.dtype == torch.float32 and output.shape == reference.shape
    assert (output - reference).abs().max() < 0.02
    assert not torch.equal(output, reference)  # really computed in bf16
    paper = [Translator.load(trained_run, mode="paper", seed=5, precision="bf16")(image) for _ in range(2)]
    assert torch.equal(paper[0], paper[1])


@pytest.mark.skipif(torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has native bf16")
def test_bf16_translation_is_refused_on_a_cpu_that_would_emulate_it(trained_run):
    from pix2pix.devices import DeviceError

    with pytest.raises(DeviceError, match="no native bf16"):
        Translator.load(trained_run, precision="bf16")


def test_translate_command_refuses_precisions_the_device_or_backend_cannot_run(trained_run, tmp_path):
    for flags, message in ((["--precision", "fp16", "--device", "cpu"], "fp16 needs a CUDA or MPS device"),
                           (["--precision", "bf16", "--backend", "onnx"], "needs --backend torch"),
                           (["--compile", "--backend", "onnx"], "without --backend onnx")):
        result = translate_one_file(trained_run, gradient_image(32, 32), tmp_path, *flags)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "out").exists()


@native_bf16
def test_translate_command_in_bf16_writes_the_images(trained_run, tmp_path):
    result = translate_one_file(trained_run, gradient_image(40, 30), tmp_path, "--precision", "bf16", "--mode", "eval",
                                "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out" / "in.png").size == (40, 30)


def with_trained_looking_norms(generator: torch.nn.Module) -> torch.nn.Module:
    """Batch norms as after long training: running statistics that match the activations (a few steps leave
    them near 0 and 1, and eval mode then shrinks the signal so far that a wrongly folded layer hardly shows) and
    an affine away from the identity."""
    torch.manual_seed(0)
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a plain average over the calibration batch
            norm.weight.uniform_(0.5, 2)
            norm.bias.uniform_(-1, 1)
        generator.train()(torch.rand(8, 3, 32, 32) * 2 - 1)
    for norm in norms:
        norm.momentum = 0.1
    return generator


@needs_cxx
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_compiled_translation_gives_the_eager_images_in_both_modes(trained_run, device):
    """An odd size goes through the padding; eval mode folds batch norm (the innermost transposed convolution has
    as many input as output channels); paper mode draws the same dropout masks for a seed and normalizes with the
    batch's statistics inside the compiled code. (On CUDA both may round convolutions through TF32.)"""
    image = image_to_batch(gradient_image(45, 37))
    for mode in ("eval", "paper"):
        eager = Translator.load(trained_run, mode=mode, seed=3, device=device)
        with_trained_looking_norms(eager.generator)
        compiled = Translator(copy.deepcopy(eager.generator), eager.config, mode=mode, seed=3, device=device,
                             compiled=True)
        assert torch.allclose(compiled(image), eager(image), atol=1e-4 if device == "cpu" else 1e-2), mode


@native_bf16
@needs_cxx
def test_compiled_bf16_translation_stays_close_to_fp32(trained_run):
    image = image_to_batch(gradient_image(40, 30))
    output = Translator.load(trained_run, mode="eval", precision="bf16", compiled=True)(image)
    assert (output - Translator.load(trained_run, mode="eval")(image)).abs().max() < 0.02


def compile_without_a_cxx_compiler(translator: Translator, image: torch.Tensor) -> None:
    import torch._inductor.config as inductor_config

    from pix2pix.inference import CompileError

    with inductor_config.patch({"fx_graph_cache": False, "cpp.cxx": ("/no/such/compiler",)}):
        with pytest.raises(CompileError, match="C\\+\\+ compiler"):
            translator(image)


def test_compiling_without_a_cxx_compiler_is_a_clear_error(trained_run):
    compile_without_a_cxx_compiler(Translator.load(trained_run, mode="eval", compiled=True),
                                   image_to_batch(gradient_image(32, 32)))


@needs_cxx
def test_every_compiled_translator_in_a_process_is_compiled_past_pytorchs_default_limit(trained_run):
    """PyTorch compiles at most 8 variants of one function by default, then silently runs the rest uncompiled; a
    ninth translator must still compile (shown by its failing without a compiler)."""
    image = image_to_batch(gradient_image(32, 32))
    for _ in range(8):
        Translator.load(trained_run, mode="eval", compiled=True)(image)
    compile_without_a_cxx_compiler(Translator.load(trained_run, mode="eval", compiled=True), image)


@needs_cxx
def test_translate_command_compiled_writes_what_the_eager_translator_gives(trained_run, tmp_path):
    image = gradient_image(40, 30)
    result = translate_one_file(trained_run, image, tmp_path, "--compile", "--mode", "eval", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    written = torch.tensor(np.asarray(Image.open(tmp_path / "out" / "in.png")), dtype=torch.int16)
    expected = torch.tensor(np.asarray(Translator.load(trained_run, mode="eval")(image)), dtype=torch.int16)
    assert (written - expected).abs().max() <= 1
