"""Seconds per translated image at the paper's defaults, against a naive baseline, and cost against image size.

    python benchmarks/translate.py                        # 256x256 file -> file, eval and paper modes
    python benchmarks/translate.py --ort-options          # also: ONNX Runtime session settings compared
    python benchmarks/translate.py --profile              # also: where ONNX Runtime's forward spends its time
    python benchmarks/translate.py --sizes 256 512 1024 2048 4096
    python benchmarks/translate.py --device cuda           # on a GPU: the torch backend (ONNX is CPU only)

Per image means the whole job of `pix2pix translate` with the model loaded once: read the PNG, translate, write
the PNG. The baseline does it the straightforward way: PyTorch's own layers, `torch.no_grad`, Pillow in and out.
The project's variants: the torch backend (in eval mode also on a copy with batch norm folded into the
convolutions, to show what folding gives there), the torch backend in bf16 (and fp16) where the device runs it
natively (`--precision`), each of those compiled (`--compile`; the compile time is printed, from an empty
TorchInductor cache and from a filled one), and the ONNX Runtime backend, exported once into a run folder (the time
of that export is printed). Variants run interleaved in one process. `--sizes` times the torch and ONNX backends
and the compiled variants on one image of each size, each in a fresh process, so that its peak memory (max RSS) is
its own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor_cache_")  # compile times from cold
import torch  # noqa: E402
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import interleave, machine, matmul_peak, peak_rss_mib, print_table, starved, write_json  # noqa: E402

from pix2pix.config import RunConfig  # noqa: E402
from pix2pix.data.reading import load_image_data  # noqa: E402
from pix2pix.data.tensors import image_to_tensor, save_image, tensor_to_image  # noqa: E402
from pix2pix.devices import DeviceError, check_precision, resolve_device  # noqa: E402
from pix2pix.export import OnnxGenerator, onnx_path, session_options  # noqa: E402
from pix2pix.inference import Translator, translate_files  # noqa: E402
from pix2pix.models import build_generator, in_mode  # noqa: E402
from pix2pix.models.fold import fold_batch_norm  # noqa: E402
from pix2pix.runs import RunDir  # noqa: E402

GENERATOR_GFLOP_256 = 12.1
"""Multiply-adds x 2 of one generator forward at 256x256, batch 1 (torch.utils.flop_counter)."""


def test_image(folder: Path, size: int) -> Path:
    rng = np.random.default_rng(0)
    path = folder / f"input_{size}.png"
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def naive_translate(generator: torch.nn.Module, source: Path, target: Path) -> None:
    """`generator` already in its mode (`in_mode`), with PyTorch's own layers: no CPU kernels, no folding."""
    device = next(generator.parameters()).device
    with torch.no_grad():
        output = generator(image_to_tensor(Image.open(source).convert("RGB")).unsqueeze(0).to(device))[0].cpu()
    tensor_to_image(output).save(target)


def random_run(folder: Path, config: RunConfig) -> tuple[RunDir, torch.nn.Module]:
    """A run folder with random weights (timing does not depend on them), and the naive generator holding them."""
    torch.manual_seed(0)
    naive = build_generator(config)
    run = RunDir(folder / "run")
    run.save_config(config)
    run.save_generator(naive.state_dict(), step=0)
    return run, naive


def folded(translator: Translator) -> Translator:
    """The torch backend on a copy of the generator with batch norm folded into the convolutions (eval mode)."""
    return Translator(fold_batch_norm(translator.generator), translator.config, mode="eval", seed=translator.seed)


def first_use_seconds(run: RunDir, mode: str) -> dict:
    """Seconds of the ONNX backend's first translation without an export (exporting) and with one (loading)."""
    onnx_path(run.path, mode).unlink(missing_ok=True)
    image = torch.zeros(1, 3, 256, 256)
    seconds = {}
    for what in ("export", "load"):
        start = time.perf_counter()
        Translator.load(run.path, mode=mode, backend="onnx")(image)
        seconds[f"{what} {mode}"] = round(time.perf_counter() - start, 1)
    return seconds


def backends(device: torch.device) -> tuple[str, ...]:
    return ("torch", "onnx") if device.type == "cpu" else ("torch",)


def low_precisions(device: torch.device) -> list[str]:
    """The reduced precisions this device runs natively (bf16 on CPUs with AVX-512 bf16 or AMX and on most GPUs,
    fp16 on GPUs); the others are named and left out."""
    runnable = []
    for precision in ("bf16", "fp16"):
        try:
            check_precision(device, precision)
        except DeviceError as err:
            print(f"skipped --precision {precision}: {err}", file=sys.stderr)
            continue
        runnable.append(precision)
    return runnable


def compiled_name(precision: str) -> str:
    return "torch, compiled" if precision == "fp32" else f"torch {precision}, compiled"


def compiled_translator(run: RunDir, mode: str, device: torch.device, precision: str, source: Path, out: Path,
                        compile_seconds: dict) -> Translator:
    """A compiled translator, compiled on `source`'s size. Compiled twice: the first compile fills TorchInductor's
    cache on disk (what the first run on a machine pays), the second finds it filled (what later runs pay)."""
    for cache in ("empty cache", "filled cache"):
        translator = Translator.load(run.path, mode=mode, seed=0, device=str(device), precision=precision,
                                     compiled=True)
        start = time.perf_counter()
        translate_files(translator, [source], out)
        compile_seconds[f"{mode} {precision}, {cache}"] = round(time.perf_counter() - start, 1)
    return translator


def variants(run: RunDir, naive: torch.nn.Module, source: Path, out: Path, device: torch.device,
             precisions: list[str], compile_seconds: dict) -> dict[str, tuple[str, Callable]]:
    """Name -> (mode, one whole-file translation). Each ends by copying the output to the CPU, so a GPU's work is
    finished inside the timing. Fills `compile_seconds`."""
    found = {}
    for mode in ("eval", "paper"):
        network = in_mode(naive, mode)
        found[f"naive {mode}"] = (mode, lambda n=network: naive_translate(n, source, out / "naive.png"))
        translators = {backend: Translator.load(run.path, mode=mode, seed=0, device=str(device), backend=backend)
                       for backend in backends(device)}
        if mode == "eval" and device.type == "cpu":
            translators["torch, folded BN"] = folded(translators["torch"])
        for precision in precisions:
            translators[f"torch {precision}"] = Translator.load(run.path, mode=mode, seed=0, device=str(device),
                                                                precision=precision)
        for precision in ("fp32", *precisions):
            translators[compiled_name(precision)] = compiled_translator(run, mode, device, precision, source, out,
                                                                        compile_seconds)
        for backend, translator in translators.items():
            found[f"pix2pix {mode}, {backend}"] = (mode, lambda t=translator: translate_files(t, [source], out))
    return found


def compare(run: RunDir, naive: torch.nn.Module, size: int, repeats: int,
            device: torch.device) -> tuple[list[dict], dict]:
    """Every variant interleaved; also the ONNX backend's first-use cost and where an image's time goes. Leaves
    both graphs exported in `run` (on the CPU)."""
    folder = run.path.parent
    source = test_image(folder, size)
    first_use = ({**first_use_seconds(run, "eval"), **first_use_seconds(run, "paper")}
                 if "onnx" in backends(device) else {})
    (folder / "out").mkdir()
    precisions = low_precisions(device)
    compile_seconds: dict[str, float] = {}
    named = variants(run, naive.to(device), source, folder / "out", device, precisions, compile_seconds)
    peak = matmul_peak(device=device)
    timings = interleave({name: fn for name, (_, fn) in named.items()}, repeats)
    rows = []
    for name, timing in timings.items():
        base = timings[f"naive {named[name][0]}"].median
        low, high = timing.spread
        rows.append({"variant": name, "size": size, "s/image": f"{timing.median:.3f}",
                     "spread": f"{low:.3f}-{high:.3f}", "speedup": f"{base / timing.median:.2f}x",
                     "cpu/wall": f"{statistics.median(timing.cpu_ratios):.2f}",
                     "walls": timing.walls, "matmul_peak_gflops": peak})
    warn_if_starved(timings, device)
    return rows, {"first_use_seconds": first_use, "compile_seconds": compile_seconds,
                  "matmul_peak_gflops": round(peak, 1),
                  "stages": stages(run, source, folder / "stages", repeats, device, precisions)}


def stages(run: RunDir, source: Path, out: Path, repeats: int, device: torch.device,
           precisions: list[str]) -> list[dict]:
    """Where one whole-file eval translation spends its time, per backend: reading, the generator (its output
    back on the CPU), writing."""
    translators = {backend: Translator.load(run.path, mode="eval", device=str(device), backend=backend)
                   for backend in backends(device)}
    for precision in precisions:
        translators[f"torch {precision}"] = Translator.load(run.path, mode="eval", device=str(device),
                                                            precision=precision)
    for precision in ("fp32", *precisions):
        translators[compiled_name(precision)] = Translator.load(run.path, mode="eval", device=str(device),
                                                                precision=precision, compiled=True)
    return [stage_times(name, translator, source, out, repeats) for name, translator in translators.items()]


def stage_times(name: str, translator: Translator, source: Path, out: Path, repeats: int) -> dict:
    tensor = image_to_tensor(load_image_data(source, 3)).unsqueeze(0)
    output = translator(tensor)[0]
    parts = {"read PNG": lambda: image_to_tensor(load_image_data(source, 3)),
             "generator": lambda: translator(tensor),
             "write PNG": lambda: save_image(output, out / "stage.png")}
    timings = interleave(parts, repeats)
    row = {"backend": name, **{stage: f"{t.median * 1000:.1f} ms" for stage, t in timings.items()}}
    gflop = GENERATOR_GFLOP_256 * source_pixels(source) / 256**2
    row["generator GFLOP/s"] = f"{gflop / timings['generator'].median:.0f}"
    return row


def source_pixels(source: Path) -> int:
    with Image.open(source) as image:
        return image.width * image.height


def ort_options(run: RunDir, size: int, repeats: int) -> list[dict]:
    """The eval graph's forward under ONNX Runtime session settings, interleaved (threads, optimization level,
    spinning between calls)."""
    path = onnx_path(run.path, "eval")
    batch = torch.rand(1, 3, size, size) * 2 - 1
    sessions = {}
    for threads in (1, 2):
        for level in ("basic", "extended", "all"):
            for spinning in (False, True):
                name = f"threads {threads}, {level}, spin {'on' if spinning else 'off'}"
                sessions[name] = OnnxGenerator(path, session_options(threads, spinning, level))
    timings = interleave({name: lambda g=g: g(batch) for name, g in sessions.items()}, repeats)
    warn_if_starved(timings, torch.device("cpu"))
    fastest = min(t.median for t in timings.values())
    return [{"options": name, "s/forward": f"{t.median:.3f}", "spread": f"{t.spread[0]:.3f}-{t.spread[1]:.3f}",
             "vs fastest": f"{t.median / fastest:.2f}x", "cpu/wall": f"{statistics.median(t.cpu_ratios):.2f}"}
            for name, t in timings.items()]


def ort_profile(run: RunDir, size: int, runs: int = 6) -> list[dict]:
    """ONNX Runtime's own per-operator times for the eval graph, per forward: the convolutions split into those
    whose weights are used at most 64 times (the innermost layers, which hold most of the weights and do little
    arithmetic with them) and the rest, with their GFLOP/s; then every other kind of operator."""
    options = session_options()
    options.enable_profiling = True
    options.profile_file_prefix = str(run.path / "ort_profile")
    generator = OnnxGenerator(onnx_path(run.path, "eval"), options)
    batch = torch.rand(1, 3, size, size) * 2 - 1
    for _ in range(runs):
        generator(batch)
    events = json.loads(Path(generator.session.end_profiling()).read_text())
    millis: dict[str, float] = {}
    gflop: dict[str, float] = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        kind, args = event["args"]["op_name"], event["args"]
        if kind.startswith("Conv"):
            uses, flop = conv_work(kind, args)
            kind = f"{kind}, weights used {'<= 64' if uses <= 64 else '> 64'} times"
            if flop:
                gflop[kind] = gflop.get(kind, 0.0) + flop / 1e9 / runs
        millis[kind] = millis.get(kind, 0.0) + event["dur"] / 1000 / runs
    return [{"operator": kind, "ms/forward": f"{ms:.1f}", "share": f"{ms / sum(millis.values()):.0%}",
             "GFLOP": f"{gflop[kind]:.2f}" if kind in gflop else "",
             "GFLOP/s": f"{gflop[kind] / ms * 1000:.0f}" if kind in gflop else ""}
            for kind, ms in sorted(millis.items(), key=lambda item: -item[1])]


def conv_work(kind: str, args: dict) -> tuple[int, int | None]:
    """How often each weight of a convolution is used in one call (once per output pixel of a Conv, once per input
    pixel of a ConvTranspose; few uses means the layer streams its weights rather than computes), and its FLOP
    where the profile shows the weights' shape (not for ConvTranspose, whose weights ONNX Runtime prepacks)."""
    shapes = [next(iter(shape.values())) for shape in args["input_type_shape"]]
    if kind == "ConvTranspose":
        return math.prod(shapes[0][2:]), None
    output = next(iter(args["output_type_shape"][0].values()))
    return math.prod(output[2:]), 2 * math.prod(output) * math.prod(shapes[1][1:])


def warn_if_starved(timings: dict, device: torch.device) -> None:
    """On a GPU the CPU mostly waits, so CPU time per wall second says nothing about the host there."""
    if device.type == "cpu" and starved(timings, torch.get_num_threads()):
        print("WARNING: starved host: CPU time per wall second is far below the thread count; these timings are "
              "not representative.", file=sys.stderr)


SIZE_VARIANTS = {"torch": {}, "onnx": {"backend": "onnx"}, "torch, compiled": {"compiled": True},
                 "torch bf16, compiled": {"precision": "bf16", "compiled": True}}
"""The variants timed against image size, as `Translator` settings."""


def size_variants(device: torch.device) -> list[str]:
    names = ["torch", "onnx"] if device.type == "cpu" else ["torch"]
    return names + [compiled_name(precision) for precision in ("fp32", *low_precisions(device)) if precision != "fp16"]


def one_size(size: int, variant: str, device: str) -> dict:
    """Translates one image of `size` x `size` (tiled when over the memory budget), in this process. First one
    piece of that size (the whole image, or one tile) goes through, so that the ONNX export or the compile is not
    in the time. On a GPU, the peak is the GPU memory torch allocated."""
    config = RunConfig()
    torch.manual_seed(0)
    translator = Translator(build_generator(config), config, mode="eval", device=device, **SIZE_VARIANTS[variant])
    folder = Path(tempfile.mkdtemp())
    source = test_image(folder, size)
    tile = translator.tile_size(torch.zeros(1, 3, size, size))
    translator(torch.zeros(1, 3, tile or size, tile or size))
    start = time.perf_counter()
    translate_files(translator, [source], folder / "out")
    seconds = time.perf_counter() - start
    row = {"size": size, "variant": variant, "seconds": round(seconds, 2), "tile": tile or "whole",
           "us/pixel": round(seconds / size**2 * 1e6, 2), "max_rss_mib": round(peak_rss_mib())}
    if translator.device.type == "cuda":
        row["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated(translator.device) / 2**20)
    return row


def size_table(sizes: list[int], device: torch.device) -> list[dict]:
    rows = []
    variants = size_variants(device)
    for size in sizes:
        for variant in variants:
            child = subprocess.run([sys.executable, __file__, "--one-size", str(size), variant, str(device)],
                                   capture_output=True, text=True, check=True)
            rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ort-options", action="store_true", help="also compare ONNX Runtime session settings")
    parser.add_argument("--profile", action="store_true", help="also ONNX Runtime's per-operator profile")
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the torch backend on a GPU")
    parser.add_argument("--one-size", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_size:
        print(json.dumps(one_size(int(args.one_size[0]), args.one_size[1], args.one_size[2])))
        return
    try:
        device = resolve_device(args.device)
    except DeviceError as err:
        sys.exit(f"translate.py: {err}")
    if device.type != "cpu" and (args.ort_options or args.profile):
        parser.error("--ort-options and --profile time ONNX Runtime, which runs on the CPU: use --device cpu")
    crop = min(args.size, 256)  # the paper's U-Net, one level shallower per halving below 256
    run, naive = random_run(Path(tempfile.mkdtemp()), RunConfig().updated({"crop_size": crop, "load_size": crop}))
    rows, extra = compare(run, naive, args.size, args.repeats, device)
    print_table(rows, ["variant", "size", "s/image", "spread", "speedup", "cpu/wall"])
    print(f"\nONNX backend, first use (s): {extra['first_use_seconds']}; matmul peak on {device} "
          f"{extra['matmul_peak_gflops']} GFLOP/s")
    print(f"--compile, first image (s): {extra['compile_seconds']}\n")
    print_table(extra["stages"], list(extra["stages"][0]))
    if args.ort_options:
        extra["ort_options"] = ort_options(run, args.size, args.repeats)
    if args.profile:
        extra["ort_profile"] = ort_profile(run, args.size)
    for name in ("ort_options", "ort_profile"):
        if name in extra:
            print()
            print_table(extra[name], list(extra[name][0]))
    sizes = size_table(args.sizes, device) if args.sizes else []
    if sizes:
        print()
        print_table(sizes, ["size", "variant", "seconds", "tile", "us/pixel", "max_rss_mib", "gpu_peak_mib"])
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    path = write_json(f"translate_{args.size}{suffix}", {"machine": machine(), "device": str(device), "rows": rows,
                                                         **extra, "sizes": sizes})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
