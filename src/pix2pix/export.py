"""The generator as an ONNX graph or a TorchScript module (`pix2pix export`), and running the ONNX graph with ONNX
Runtime (`--backend onnx`).

One file per test-time mode. Eval mode, in both formats: batch norm folded into the convolutions, dropout gone
(`models/fold.py`); deterministic. Paper mode, in both formats, is `PaperGenerator` (`models/modes.py`), the torch
backend's own paper mode: batch norm normalizes with the statistics of the batch it is given (never the running
ones) and dropout stays on. Where its dropout masks come from differs:

- ONNX: each dropout multiplies by a mask that is an input of the graph (`mask_0`, ...; shapes in the metadata
  `pix2pix.dropout`). Masks are inputs rather than Dropout nodes because ONNX Runtime runs a Dropout node as the
  identity unless its training_mode input is set, and then draws the masks from its own generator, seeded by an
  attribute fixed in the file (every new session repeats the same masks): `--seed` could not reach it.
  `OnnxGenerator` draws the masks with `draw_masks`, from torch's generator exactly as `nn.Dropout` does, so a
  seeded translation gives the same images on both backends.
- TorchScript: the module draws its masks itself from torch's global generator, as `nn.Dropout` does:
  `torch.manual_seed(N)` before a call gives the images of `pix2pix translate --seed N` (on the CPU).

Inputs are B x C x H x W float32 tensors in [-1, 1]; batch, height and width are dynamic, height and width any
multiples of the U-Net's multiple (2 ** depth: 256 for the paper's 256 crops, 32 for 32 crops), which the files
record (ONNX metadata `pix2pix.multiple`; TorchScript extra file `pix2pix.json`); `run_padded` handles other sizes.
ONNX: the wide transposed convolutions become four 2x2 convolutions (`SubPixelTransposedConv`), which ONNX Runtime
runs faster; needs `pip install "pix2pix[onnx]"` (onnx, onnxscript for torch's exporter, onnxruntime).
TorchScript: a trace of PyTorch's own layers, loaded by `torch.jit.load` without pix2pix (also from C++ with
libtorch); PyTorch deprecates torch.jit in favour of torch.export, but 2.13 still saves and loads it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import io
import json
import logging
import warnings
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from pix2pix.atomic import write_bytes_atomic
from pix2pix.models import UNetGenerator
from pix2pix.models.fold import fold_batch_norm
from pix2pix.models.generator import run_padded
from pix2pix.models.modes import PaperGenerator, check_mode, draw_masks, mask_specs
from pix2pix.runs import RunDir

EXPORT_VERSION = 1
"""Part of every export's fingerprint: raise it when the graphs change, so cached exports are redone."""

OPSET = 18
META_PREFIX = "pix2pix."
INSTALL_HINT = 'pip install "pix2pix[onnx]"'


class ExportError(RuntimeError):
    """An export or the ONNX backend cannot run as asked; the message says what to do."""


def require(module: str) -> ModuleType:
    """Imports an optional dependency of the ONNX backend, or says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ExportError(f"the ONNX backend needs the {module} package, which is not installed: "
                          f"{INSTALL_HINT} (or use `backend` torch)") from err


FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
"""Export formats and the extension of their files."""
TORCHSCRIPT_META = "pix2pix.json"
"""The TorchScript file's extra file: mode, multiple, channels and source, as the ONNX metadata has them."""


def export_path(run_dir: Path | str, mode: str, format: str = "onnx") -> Path:
    """Where a run's export is written unless another file is asked for."""
    return Path(run_dir) / f"generator-{mode}{FORMATS[format]}"


def onnx_path(run_dir: Path | str, mode: str) -> Path:
    return export_path(run_dir, mode, "onnx")


def fingerprint(run: RunDir) -> str:
    """Identifies the weights and config an export was made from: a newer save of the run makes it stale."""
    weights = run.generator_path.stat()
    config = hashlib.sha256(run.config_path.read_bytes()).hexdigest()[:16]
    return f"v{EXPORT_VERSION}:{config}:{weights.st_size}:{weights.st_mtime_ns}"


SUBPIXEL_MIN_CHANNELS = 16
"""Narrower transposed convolutions (the output layer) stay ConvTranspose: ONNX Runtime pads the channels of its
blocked convolutions to 8, which made the 3-channel output layer slower as four convolutions."""


class SubPixelTransposedConv(nn.Module):
    """A 4x4, stride-2, padding-1 transposed convolution as four 2x2 convolutions, one per phase of the output
    pixels, interleaved by pixel_shuffle: the same sums, but ONNX Runtime runs convolutions in its blocked layout,
    faster than its ConvTranspose on the U-Net's wide decoder layers (docs/performance.md)."""

    def __init__(self, conv: nn.ConvTranspose2d) -> None:
        super().__init__()
        # output row 2m + a sums input rows m - 1 + a and m + a, through kernel rows 3 - a and 1 - a
        phases = [conv.weight[:, :, [3 - a, 1 - a]][:, :, :, [3 - b, 1 - b]].transpose(0, 1)
                  for a in (0, 1) for b in (0, 1)]
        self.weight = nn.Parameter(torch.stack(phases), requires_grad=False)  # phase x out x in x 2 x 2
        self.bias = conv.bias

    @staticmethod
    def applies_to(conv: nn.Module) -> bool:
        return (type(conv) is nn.ConvTranspose2d and conv.kernel_size == (4, 4) and conv.stride == (2, 2)
                and conv.padding == (1, 1) and conv.output_padding == (0, 0) and conv.dilation == (1, 1)
                and conv.groups == 1 and conv.out_channels >= SUBPIXEL_MIN_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phases = [F.conv2d(F.pad(x, (1 - b, b, 1 - a, a)), self.weight[2 * a + b], self.bias)
                  for a in (0, 1) for b in (0, 1)]
        batch, channels, height, width = phases[0].shape
        return F.pixel_shuffle(torch.stack(phases, 2).reshape(batch, 4 * channels, height, width), 2)


def for_onnx_runtime(net: nn.Module) -> nn.Module:
    """The transposed convolutions of `net` in the form ONNX Runtime runs fastest. Changes `net`, so pass a copy."""
    for block in list(net.modules()):
        for name, layer in block.named_children():
            if SubPixelTransposedConv.applies_to(layer):
                setattr(block, name, SubPixelTransposedConv(layer))
    return net


def export_graph(generator: UNetGenerator, mode: str, source: str = "") -> bytes:
    """The ONNX model (a protobuf) of `generator` in `mode`, with what running it needs in its metadata."""
    check_mode(mode)
    require("onnx")
    require("onnxscript")
    multiple = generator.multiple
    sample = torch.zeros(2, generator.encoder[0][0].in_channels, 2 * multiple, 2 * multiple)
    dynamic = {0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    masks = mask_specs(generator) if mode == "paper" else []
    if mode == "paper":
        net = for_onnx_runtime(PaperGenerator(generator))
        args = (sample, draw_masks(masks, *sample.shape[:1], *sample.shape[2:]))
        shapes = {"x": dynamic, "masks": [dynamic] * len(masks)}
        names = ["input"] + [f"mask_{i}" for i in range(len(masks))]
    else:
        net = for_onnx_runtime(fold_batch_norm(generator))
        args, shapes, names = (sample,), {"x": dynamic}, ["input"]
    program = _quietly_export(net, args, shapes, names)
    model = program.model_proto
    meta = {"mode": mode, "multiple": multiple, "dropout": json.dumps(masks), "source": source}
    for key, value in meta.items():
        model.metadata_props.add(key=META_PREFIX + key, value=str(value))
    return model.SerializeToString()


def _quietly_export(net: nn.Module, args: tuple, shapes: dict, names: list[str]):
    """torch.onnx.export without its progress lines, warnings and log messages (about optional packages this
    graph does not use), which say nothing a user can act on."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return torch.onnx.export(net.eval(), args, dynamo=True, dynamic_shapes=shapes, input_names=names,
                                     output_names=["output"], opset_version=OPSET, external_data=False)
    finally:
        logger.setLevel(level)


def export_torchscript(generator: UNetGenerator, mode: str, source: str = "") -> bytes:
    """A TorchScript trace of `generator` in `mode` (a copy: `generator` is left as it is), with what running it
    needs in its extra file `pix2pix.json`. The trace holds no size: every op works on any batch, height and width."""
    check_mode(mode)
    if mode == "paper":
        net = PaperGenerator(copy.deepcopy(generator)).requires_grad_(False)
    else:
        net = fold_batch_norm(generator)
    multiple = generator.multiple
    input_nc = generator.encoder[0][0].in_channels
    sample = torch.zeros(2, input_nc, 2 * multiple, 2 * multiple, device=next(generator.parameters()).device)
    meta = {"mode": mode, "multiple": multiple, "input_nc": input_nc,
            "output_nc": generator.decoder[-1][1].out_channels, "source": source}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation, and batch norm's size check, which holds anyway
        traced = torch.jit.trace(net.eval(), sample, check_trace=False)  # paper mode's dropout differs per call
        torch.jit.save(traced.cpu(), buffer, _extra_files={TORCHSCRIPT_META: json.dumps(meta)})
    return buffer.getvalue()


EXPORTERS = {"onnx": export_graph, "torchscript": export_torchscript}


def export_run(run: RunDir, generator: UNetGenerator, mode: str, format: str = "onnx",
               out: Path | None = None) -> Path:
    """Writes RUN/generator-MODE.onnx (or .pt), or `out`, atomically, stamped with the run's fingerprint."""
    if format not in EXPORTERS:
        raise ExportError(f"unknown `format` {format!r}: use {' or '.join(EXPORTERS)}")
    path = Path(out) if out is not None else export_path(run.path, mode, format)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, EXPORTERS[format](generator, mode, fingerprint(run)))
    return path


OPTIMIZATION_LEVELS = {
    "basic": lambda ort: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": lambda ort: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": lambda ort: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(threads: int | None = None, spinning: bool = True, level: str = "all"):
    """ONNX Runtime settings measured fastest here (docs/performance.md): torch's thread count (which follows
    OMP_NUM_THREADS), every graph optimization, and threads that spin briefly between operators rather than sleep."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = OPTIMIZATION_LEVELS[level](ort)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


class OnnxGenerator:
    """An exported generator in ONNX Runtime, called like the torch one: B x C x H x W tensors in and out."""

    def __init__(self, model: bytes | Path, options=None) -> None:
        ort = require("onnxruntime")
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options or session_options(), providers=["CPUExecutionProvider"])
        self.metadata = {key.removeprefix(META_PREFIX): value
                         for key, value in self.session.get_modelmeta().custom_metadata_map.items()}
        self.multiple = int(self.metadata["multiple"])
        self.masks = json.loads(self.metadata["dropout"])

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.detach().to("cpu", torch.float32).contiguous()
        feeds = {"input": batch.numpy()}
        for i, mask in enumerate(draw_masks(self.masks, batch.shape[0], *batch.shape[2:])):
            feeds[f"mask_{i}"] = mask.numpy()
        return torch.from_numpy(self.session.run(None, feeds)[0])

    def forward_any_size(self, batch: torch.Tensor) -> torch.Tensor:
        return run_padded(self, batch, self.multiple)


def onnx_generator(generator: UNetGenerator, mode: str, run: RunDir | None = None) -> OnnxGenerator:
    """`generator` in ONNX Runtime: the run's export when it is up to date, else a new export, saved into the
    run folder when there is one (and it is writable)."""
    require("onnxruntime")
    if run is None:
        return OnnxGenerator(export_graph(generator, mode))
    path, stamp = onnx_path(run.path, mode), fingerprint(run)
    if path.is_file():
        cached = OnnxGenerator(path)
        if cached.metadata.get("source") == stamp and cached.metadata.get("mode") == mode:
            return cached
    model = export_graph(generator, mode, stamp)
    try:
        write_bytes_atomic(path, model)
    except OSError as err:
        warnings.warn(f"{path}: cannot save the ONNX export ({err}); it is redone by every process until the "
                      f"run folder is writable or `pix2pix export {run.path}` is run by someone who can write it",
                      stacklevel=2)
    return OnnxGenerator(model)
