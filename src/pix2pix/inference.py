"""Translating images with a trained run: `Translator.load(RUN)(image)`. Needs only the run folder."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from pix2pix.config import ConfigError, RunConfig
from pix2pix.data.images import IMAGE_EXTENSIONS, DataError, ImageData, is_image_file, pil_mode, split_aligned
from pix2pix.data.reading import load_image_data
from pix2pix.data.tensors import image_to_tensor, save_image, tensor_to_image
from pix2pix.data.writing import output_suffix, write_image
from pix2pix.devices import AUTOCAST_DTYPES, check_precision, generator_layout, resolve_device
from pix2pix.models import UNetGenerator, check_mode, in_mode, with_cpu_kernels
from pix2pix.models.fold import fold_batch_norm
from pix2pix.models.generator import run_padded
from pix2pix.runs import RunDir, load_generator

BYTES_PER_PIXEL_PER_NGF = 10
"""Peak memory of one generator forward, per input pixel and per unit of ngf (measured about 600 bytes per pixel
at ngf 64 for 1024x1024 and 2048x2048 inputs on CPU)."""

BACKENDS = ("torch", "onnx")


COMPILED_VARIANTS_LIMIT = 64
"""Every compiled translator in a process, in each mode, precision and input shape, adds one variant of
the generator's forward; past this many, later ones run uncompiled (with a warning). PyTorch's default of 8 was
reached by a process holding a few models."""


class CompileError(RuntimeError):
    """TorchInductor could not compile the generator (on CPU it needs a C++ compiler)."""


def compile_for_inference(generator: UNetGenerator, mode: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The generator compiled for one test mode by TorchInductor, with its weights frozen in as constants: they are
    prepared once (packed into oneDNN's layouts on CPU) instead of at every call. Compiled at the first call for
    each input shape (seconds to a minute; TorchInductor caches the result on disk for later processes); weights
    changed afterwards are not seen.

    In eval mode batch norm is folded into the convolutions here, by `fold_batch_norm`, on a copy: TorchInductor's
    own folding scales a transposed convolution's weights along the wrong axis when its input and output channels
    are equal, as in the U-Net's innermost layer. Paper mode compiles `PaperGenerator`, the eager translation's
    own definition; its dropout draws the masks with PyTorch's own random ops rather than TorchInductor's, so that
    a seed gives the same paper-mode images compiled or not (for about 3 ms per 256x256 image). The CPU kernels
    (`with_cpu_kernels`) are not used here: PyTorch's own convolutions compile to faster code than their matmuls."""
    import torch._dynamo.config as dynamo_config
    import torch._dynamo.exc
    import torch._inductor.config as inductor_config

    network = fold_batch_norm(generator) if mode == "eval" else in_mode(generator, mode)
    compiled = torch.compile(network, dynamic=False)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        try:
            with inductor_config.patch(freezing=True, fallback_random=True), \
                    dynamo_config.patch(recompile_limit=COMPILED_VARIANTS_LIMIT):
                return compiled(batch)
        except torch._dynamo.exc.BackendCompilerFailed as err:
            reason = str(err).strip().splitlines()[0]
            raise CompileError(f"`compiled`: TorchInductor could not compile the generator ({reason}); on a CPU it "
                               "needs a C++ compiler such as g++; or leave out `compiled`") from err

    return forward


@dataclass(frozen=True)
class Tiling:
    """How a large image is split: `tile` x `tile` pieces overlapping by `overlap` pixels and blended. With
    `tile=None` an image is tiled only when translating it whole would exceed the memory budget, in as few tiles
    as the budget allows; `tile=0` never tiles."""

    tile: int | None = None
    overlap: int = 64
    memory_budget_gib: float = 2.0

    def __post_init__(self) -> None:
        """A negative overlap would leave unblended gaps (NaN pixels) between tiles."""
        if self.tile is not None and self.tile < 0:
            raise ConfigError(f"`tile` must be >= 0 (0: never tile), got {self.tile}")
        if self.overlap < 0:
            raise ConfigError(f"`overlap` must be >= 0, got {self.overlap}")
        if not self.memory_budget_gib > 0:
            raise ConfigError(f"`memory_budget_gib` must be > 0, got {self.memory_budget_gib}")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Offsets of tiles covering `length`, neighbours sharing at least `overlap` pixels; the last ends flush."""
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def fewest_tiles_size(length: int, largest: int, overlap: int, multiple: int) -> int:
    """The tile side that covers `length` with the fewest tiles no larger than `largest`, shared out evenly and
    rounded up to the U-Net's multiple (so no tile is padded)."""
    overlap = min(overlap, largest // 2)
    count = max(1, math.ceil((length - overlap) / (largest - overlap)))
    even = math.ceil((length + (count - 1) * overlap) / count)
    return min(largest, math.ceil(even / multiple) * multiple)


def blend_window(height: int, width: int, overlap: int) -> torch.Tensor:
    """Weights that rise linearly over `overlap` pixels from each edge of a tile, so that where tiles overlap each
    one fades out as its neighbour fades in and no seam shows."""
    def ramp(n: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float32) + 0.5
        return torch.minimum(i, n - i).div(max(overlap, 1)).clamp(max=1.0)
    return ramp(height)[:, None] * ramp(width)[None, :]


def translate_in_tiles(forward, batch: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Translates overlapping tiles one at a time and blends them: memory bounded by the tile, not the image."""
    height, width = batch.shape[-2:]
    tile_h, tile_w = min(tile, height), min(tile, width)
    overlap = min(overlap, tile // 2)
    window = blend_window(tile_h, tile_w, overlap)
    total = weights = None
    for top in tile_starts(height, tile_h, overlap):
        for left in tile_starts(width, tile_w, overlap):
            out = forward(batch[..., top:top + tile_h, left:left + tile_w]).cpu()
            if total is None:
                total = out.new_zeros(*out.shape[:-2], height, width)
                weights = out.new_zeros(height, width)
            total[..., top:top + tile_h, left:left + tile_w] += out * window
            weights[top:top + tile_h, left:left + tile_w] += window
    return total / weights


def check_backend(backend: str, device: torch.device, precision: str, compiled: bool) -> None:
    """ONNX Runtime runs here on the CPU, in fp32, as exported: refuse the settings it would ignore."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown `backend` {backend!r}: use {' or '.join(BACKENDS)}")
    if backend != "onnx":
        return
    if device.type != "cpu":
        raise ConfigError(f"`backend` onnx runs on the CPU (ONNX Runtime's CPU provider), not {device}: use "
                          "`device` cpu, or `backend` torch on this device")
    if precision != "fp32":
        raise ConfigError(f"`backend` onnx computes in fp32; `precision` {precision} needs `backend` torch")
    if compiled:
        raise ConfigError("`compiled` compiles the torch backend; use it without `backend` onnx")


class Translator:
    """Maps an image of any size to its translation: padded to the U-Net's multiple, then cropped back; images too
    large for the memory budget are translated in overlapping, blended tiles.

    `mode="paper"` keeps dropout on and normalizes with the test batch's statistics, as the paper does;
    `mode="eval"` is deterministic. With a `seed`, paper-mode outputs are reproducible per call.
    `backend="onnx"` runs the generator's ONNX export (`pix2pix.export`) in ONNX Runtime, on the CPU: exported at the
    first call in each mode and kept in the run folder, so load new weights into a new Translator.
    `precision="bf16"` (or `"fp16"` on a GPU) holds the generator's weights and activations in that type: faster
    where the device computes in it natively, with 8-bit outputs within one level of fp32's; the generator given is
    converted in place. `compiled=True` runs it through `compile_for_inference` (torch backend): it pays for its
    compile time when many images share a size. `memory_format` is this machine's choice, as in training.
    """

    def __init__(self, generator: UNetGenerator, config: RunConfig, mode: str = "paper",
                 seed: int | None = None, device: torch.device | str = "cpu", tiling: Tiling = Tiling(),
                 backend: str = "torch", run: RunDir | None = None, precision: str = "fp32",
                 compiled: bool = False, memory_format: str = "auto") -> None:
        self.device = torch.device(device)
        check_backend(backend, self.device, precision, compiled)
        check_precision(self.device, precision)
        check_mode(mode)
        self.dtype = AUTOCAST_DTYPES.get(precision, torch.float32)
        self.memory_format = generator_layout(self.device, memory_format)
        self.generator = generator.to(self.device, self.dtype, memory_format=self.memory_format)
        self.config = config
        self.mode = mode
        self.seed = seed
        self.tiling = tiling
        self.backend = backend
        self.run = run
        self.compiled = compiled
        self._forwards: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}

    @classmethod
    def load(cls, run_dir: Path | str, mode: str = "paper", seed: int | None = None,
             device: str = "cpu", tiling: Tiling = Tiling(), backend: str = "torch",
             precision: str = "fp32", compiled: bool = False, memory_format: str = "auto") -> Translator:
        """Rebuilds the generator from the run's saved config and latest weights; no settings need repeating."""
        run = RunDir(run_dir)
        generator, config = load_generator(run)
        if backend == "onnx" and device == "auto":
            device = "cpu"
        return cls(generator, config, mode, seed, resolve_device(device), tiling, backend, run, precision, compiled,
                   memory_format)

    @property
    def input_mode(self) -> str:
        return pil_mode(self.config.channels[0])

    def tile_size(self, batch: torch.Tensor) -> int | None:
        """The tile to use for this batch, or None to translate it whole."""
        tile = self.tiling.tile
        if tile is not None:
            return tile or None
        bytes_per_pixel = batch.shape[0] * BYTES_PER_PIXEL_PER_NGF * self.config.model.ngf
        budget_pixels = self.tiling.memory_budget_gib * 2**30 / bytes_per_pixel
        height, width = batch.shape[-2:]
        if height * width <= budget_pixels:
            return None
        multiple = self.generator.multiple
        largest = max(multiple, math.isqrt(int(budget_pixels)) // multiple * multiple)
        return fewest_tiles_size(max(height, width), largest, self.tiling.overlap, multiple)

    def translate_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """B x C x H x W in [-1, 1] -> the generator's output, same height and width."""
        tile = self.tile_size(batch)
        forward = self._forward()
        with self._seeded(), torch.no_grad():
            if tile is None:
                return forward(batch.to(self.device)).cpu()
            return translate_in_tiles(lambda part: forward(part.to(self.device)), batch, tile, self.tiling.overlap)

    def _forward(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The any-size forward pass of the current mode and backend, built once per mode."""
        if self.mode not in self._forwards:
            self._forwards[self.mode] = self._build_forward(self.mode)
        return self._forwards[self.mode]

    def _build_forward(self, mode: str) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.backend == "onnx":
            from pix2pix.export import onnx_generator

            return onnx_generator(self.generator, mode, self.run).forward_any_size
        if self.compiled:
            network = compile_for_inference(self.generator, mode)
        else:
            network = in_mode(self.generator, mode)
            if self.device.type == "cpu":
                network = with_cpu_kernels(network)
        return functools.partial(self._torch_forward, network)

    def _torch_forward(self, network: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.dtype, memory_format=self.memory_format)
        return run_padded(network, batch, self.generator.multiple).float()

    def __call__(self, image: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        if isinstance(image, torch.Tensor):
            return self.translate_tensor(image)
        tensor = image_to_tensor(image.convert(self.input_mode)).unsqueeze(0)
        return tensor_to_image(self.translate_tensor(tensor)[0])

    @contextlib.contextmanager
    def _seeded(self):
        if self.seed is None:
            yield
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            yield


@dataclass
class TranslatedFile:
    name: str
    input: Path
    output: Path
    target: Path | None = None


@dataclass
class TranslationSummary:
    done: list[TranslatedFile] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "path: reason"


def collect_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given, and the image files directly inside given folders, sorted."""
    found: list[Path] = []
    for path in map(Path, inputs):
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p)))
        else:
            found.append(path)
    return found


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, n = path.stem, 2
    while stem in used:
        stem, n = f"{path.stem}_{n}", n + 1
    used.add(stem)
    return stem


def translate_files(translator: Translator, inputs: list[Path], out: Path,
                    aligned: bool = False) -> TranslationSummary:
    """Writes `out/NAME.png` per input (NAME.tif beyond 4 channels), at the input file's bit depth. A file that
    fails is listed and skipped; no partial file is left.

    With `aligned`, each input is an A|B pair: the run's input half is translated, and both halves are written
    beside the output as NAME_input.png and NAME_target.png.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file, not a folder; choose another `out`")
    summary = TranslationSummary()
    used: set[str] = set()
    direction = translator.config.data.direction
    files = collect_inputs(inputs)
    if not files:
        raise DataError(f"{', '.join(map(str, inputs))}: no image files in it ({' '.join(IMAGE_EXTENSIONS)}); give "
                        "image files or folders holding them")
    for path in files:
        name = _unique_stem(path, used)
        try:
            if aligned:
                source, target = _aligned_halves(path, translator.config, direction)
            else:
                source, target = load_image_data(path, translator.config.channels[0]), None
            output = translator(image_to_tensor(source).unsqueeze(0))[0]
        except DataError as err:
            summary.failed.append(str(err))
            continue
        entry = TranslatedFile(name, path, out / f"{name}{output_suffix(output.shape[0])}")
        if target is not None:
            entry.input = out / f"{name}_input{output_suffix(source.channels)}"
            entry.target = out / f"{name}_target{output_suffix(target.channels)}"
        _write_outputs(entry, output, source, target)
        summary.done.append(entry)
    return summary


def _write_outputs(entry: TranslatedFile, output: torch.Tensor, source: ImageData, target: ImageData | None) -> None:
    """A folder that cannot be written (full, read-only) stops the whole job: every later file would fail too."""
    try:
        if target is not None:
            write_image(source, entry.input)
            write_image(target, entry.target)
        save_image(output, entry.output, source.bit_depth)
    except OSError as err:
        raise DataError(f"{entry.output.parent}: cannot write {entry.output.name} ({err.strerror or err}); "
                        "check the `out` folder and its free space") from err


def _aligned_halves(path: Path, config: RunConfig, direction: str) -> tuple[ImageData, ImageData]:
    input_nc, output_nc = config.channels
    if input_nc != output_nc:
        raise DataError(f"{path}: `aligned` needs equal input and output channels")
    a, b = split_aligned(load_image_data(path, input_nc), path)
    return (a, b) if direction == "AtoB" else (b, a)
