"""Generators of the canonical PyTorch repository (junyanz/pytorch-CycleGAN-and-pix2pix) as run folders.

Its `*_net_G.pth` files hold the state_dict of a nested U-Net. The outermost block's Sequential, `model.model.`,
holds [Conv, block 1, ReLU, ConvTranspose, Tanh]; every other block's holds [LeakyReLU, Conv, norm, the next block,
ReLU, ConvTranspose, norm, Dropout], the innermost's [LeakyReLU, Conv, ReLU, ConvTranspose, norm]; so block k >= 1
is `model.model.1.` + `model.3.` * (k - 1) + `model.`. `layer_names` maps them onto `UNetGenerator`, the one
place that does; what the networks do differently (no biases under batch norm or none, dropout in the blocks after
the innermost one) is set in the run's config. Files are read with `torch.load(weights_only=True)`: one that
would run code is refused unread.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from pix2pix.atomic import write_text_atomic
from pix2pix.config import RunConfig
from pix2pix.data.download import check_against_manifest, fetch, sha256_of
from pix2pix.data.images import DataError
from pix2pix.models import build_generator
from pix2pix.runs import RunDir, RunError, non_finite

PRETRAINED_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch"
PRETRAINED = {  # name: (the direction it was trained in, on the pix2pix datasets; what it does)
    "facades_label2photo": ("BtoA", "CMP Facades label maps -> building photos"),
    "sat2map": ("AtoB", "aerial photos -> Google Maps tiles"),
    "map2sat": ("BtoA", "Google Maps tiles -> aerial photos"),
    "edges2shoes": ("AtoB", "shoe edge maps -> photos"),
    "edges2handbags": ("AtoB", "handbag edge maps -> photos"),
    "day2night": ("BtoA", "daytime scenes -> night (night2day dataset)"),
}
MANIFEST = "pix2pix-models.json"
IMPORT_RECORD = "imported.json"
BLOCK_KEY = re.compile(r"model\.model\.(1\.model\.(?:3\.model\.)*)?\d+\.\w+")
NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class Architecture:
    """What a canonical U-Net checkpoint's tensor names and shapes say about its network."""

    input_nc: int
    output_nc: int
    ngf: int
    depth: int  # the canonical num_downs: 8 for unet_256, 7 for unet_128
    norm: str  # batch (syncbatch saves the same), instance or none
    bias: bool  # the canonical convolutions have biases only under instance norm

    def describe(self) -> str:
        norm = "no norm" if self.norm == "none" else f"{self.norm} norm"
        return (f"U-Net with {self.depth} downsamplings, ngf {self.ngf}, {norm}, "
                f"{self.input_nc} -> {self.output_nc} channels")


@dataclass(frozen=True)
class Imported:
    run: Path
    architecture: Architecture
    config: RunConfig
    sha256: str


def layer_names(depth: int) -> dict[str, str]:
    """Canonical module name -> `UNetGenerator`'s, for every convolution and norm of a `depth`-level U-Net: encoder
    block k is canonical block k's down path, decoder block depth - 1 - k its up path."""
    names = {}
    for k in range(depth):
        block, decoder = block_name(k), f"decoder.{depth - 1 - k}"
        if k == 0:
            names |= {block + "0": "encoder.0.0", block + "3": f"{decoder}.1"}
        elif k == depth - 1:
            names |= {block + "1": f"encoder.{k}.1", block + "3": f"{decoder}.1", block + "4": f"{decoder}.2"}
        else:
            names |= {block + "1": f"encoder.{k}.1", block + "2": f"encoder.{k}.2",
                      block + "5": f"{decoder}.1", block + "6": f"{decoder}.2"}
    return names


def block_name(k: int) -> str:
    """The Sequential of canonical block k (0 the outermost), which nests the next block as its layer 1 (the
    outermost) or 3 (after LeakyReLU, Conv and norm)."""
    return "model.model." if k == 0 else "model.model.1." + "model.3." * (k - 1) + "model."


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a `.pth` file, without the `module.` prefix a DataParallel-wrapped save leaves."""
    if not path.is_file():
        raise RunError(f"{path}: no such file")
    with open(path, "rb") as file:
        head = file.read(4)
    if head[:2] != b"PK" and head[:1] != b"\x80":
        raise RunError(f"{path}: not a PyTorch checkpoint (neither a zip nor a pickle file); give a *_net_G.pth "
                       "file of the canonical repository")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise RunError(f"{path}: incomplete or damaged checkpoint ({_reason(err)}); copy it again") from err
        raise RunError(f"{path}: holds Python objects besides tensors, which could run code when unpickled; "
                       "refused (a generator's state_dict holds only tensors)") from err
    except Exception as err:  # noqa: BLE001 - a truncated or damaged file fails in many ways, all this one problem
        raise RunError(f"{path}: incomplete or damaged checkpoint ({_reason(err)}); copy it again") from err
    if not isinstance(state, dict):
        raise RunError(f"{path}: holds a {type(state).__name__}, not a state_dict (names -> tensors)")
    other = next((key for key, value in state.items() if not isinstance(value, torch.Tensor)), None)
    if other is not None:
        raise RunError(f"{path}: not a state_dict (names -> tensors): {other!r} holds a {type(state[other]).__name__}; "
                       "give the *_net_G.pth file itself")
    if state and all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): tensor for key, tensor in state.items()}
    return state


def _reason(err: Exception) -> str:
    """The first sentence of an error from torch.load, whose messages run over several lines."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
    first = text[0].split(". ")[0].strip() if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def read_architecture(state: dict[str, torch.Tensor], path: Path) -> Architecture:
    """The network from names and shapes: depth from the nesting, ngf and the channels from the outer
    convolutions, the norm from block 1's (weights: batch; none, with biases: instance; neither: none)."""
    levels = [0 if m[1] is None else 1 + m[1].count("3.model.") for key in state if (m := BLOCK_KEY.fullmatch(key))]
    first, last = state.get("model.model.0.weight"), state.get("model.model.3.weight")
    if not levels or first is None or last is None or first.dim() != 4 or last.dim() != 4:
        raise RunError(f"{path}: not a U-Net generator of the canonical PyTorch repository (no 4-D model.model.0 "
                       "and model.model.3 weights); ResNet generators (its --netG resnet_*) are not supported")
    if "model.model.1.model.2.weight" in state:
        norm = "batch"
    else:
        norm = "instance" if "model.model.1.model.1.bias" in state else "none"
    return Architecture(input_nc=first.shape[1], output_nc=last.shape[1], ngf=first.shape[0], depth=max(levels) + 1,
                        norm=norm, bias="model.model.0.bias" in state)


def imported_config(architecture: Architecture, direction: str = "AtoB", dropout: bool = True) -> RunConfig:
    """The run config that rebuilds the canonical network: its biases and its dropout blocks (depth - 5 of them,
    after the innermost; none if it was trained with --no_dropout), and the crop its depth was made for."""
    a = architecture
    crop = 2**a.depth
    return RunConfig().updated({
        "input_nc": a.input_nc, "output_nc": a.output_nc, "ngf": a.ngf, "num_downs": a.depth, "norm": a.norm,
        "generator_bias": a.bias, "dropout": 0.5 if dropout else 0.0, "dropout_start": 1,
        "dropout_blocks": max(a.depth - 5, 0), "crop_size": crop, "load_size": 286 * crop // 256,
        "direction": direction}, "imported checkpoint")


def generator_weights(state: dict[str, torch.Tensor], config: RunConfig, path: Path) -> dict[str, torch.Tensor]:
    """The canonical tensors under `UNetGenerator`'s names, checked name by name and shape by shape against the
    network `config` builds. Older PyTorch saved no batch norm counters (filled with zeros, unused by our batch
    norms) and gave instance norms running statistics (dropped, as the canonical loader drops them)."""
    ours = layer_names(config.generator_depth)
    expected = build_generator(config).state_dict()
    weights, unexpected = {}, []
    for key, tensor in state.items():
        module, _, name = key.rpartition(".")
        target = f"{ours.get(module)}.{name}"
        if target in expected:
            weights[target] = tensor.float() if tensor.is_floating_point() else tensor
        elif not (name in NORM_BUFFERS and config.model.norm != "batch"):
            unexpected.append(key)
    for key, tensor in expected.items():
        if key.endswith(".num_batches_tracked"):
            weights.setdefault(key, torch.zeros_like(tensor))
    missing = [key for key in expected if key not in weights]
    wrong = [key for key in weights if weights[key].shape != expected[key].shape]
    canonical = {value: key for key, value in ours.items()}
    if missing or unexpected or wrong:
        if missing:
            problem = f"missing {_renamed(missing[0], canonical)}"
        elif unexpected:
            problem = f"unexpected {unexpected[0]}"
        else:
            problem = (f"{_renamed(wrong[0], canonical)} has shape {tuple(weights[wrong[0]].shape)}, expected "
                       f"{tuple(expected[wrong[0]].shape)}")
        raise RunError(f"{path}: not the canonical U-Net its outer layers describe ({problem}; {len(missing)} "
                       f"missing, {len(unexpected)} unexpected, {len(wrong)} of another shape)")
    bad = non_finite(weights)
    if bad:
        raise RunError(f"{path}: {len(bad)} tensor(s) hold NaN or infinite values (first: "
                       f"{_renamed(bad[0], canonical)})")
    return weights


def _renamed(key: str, names: dict[str, str]) -> str:
    """A tensor name with its module renamed by `names` (to show users the names their file uses)."""
    module, _, name = key.rpartition(".")
    return f"{names.get(module, module)}.{name}"


def import_checkpoint(path: Path | str, out: Path | str, direction: str = "AtoB", dropout: bool = True) -> Imported:
    """Writes the run folder OUT (config.json, generator.safetensors, imported.json) from a canonical
    `*_net_G.pth`; refuses an OUT that already is a run, so nothing is overwritten."""
    path, run = Path(path), new_run(out)
    architecture, config, weights = converted(read_state_dict(path), path, direction, dropout)
    return write_run(run, path, sha256_of(path), architecture, config, weights)


def new_run(out: Path | str) -> RunDir:
    """Checked before any work: an import never writes over a run."""
    run = RunDir(out)
    if run.config_path.exists():
        raise RunError(f"{run.path}: already a run folder; choose another `out`")
    return run


def converted(state: dict[str, torch.Tensor], path: Path, direction: str, dropout: bool
              ) -> tuple[Architecture, RunConfig, dict[str, torch.Tensor]]:
    """What the file holds, the run config that rebuilds it, and its weights under our names."""
    architecture = read_architecture(state, path)
    config = imported_config(architecture, direction, dropout)
    return architecture, config, generator_weights(state, config, path)


def write_run(run: RunDir, source: Path, digest: str, architecture: Architecture, config: RunConfig,
              weights: dict[str, torch.Tensor]) -> Imported:
    """The weights, a record of where they came from, and the config last: a folder without it is no run yet,
    and a new import may write it again."""
    run.path.mkdir(parents=True, exist_ok=True)
    run.save_generator(weights, step=0)
    record = {"source": str(source.resolve()), "sha256": digest, "architecture": asdict(architecture)}
    write_text_atomic(run.path / IMPORT_RECORD, json.dumps(record, indent=2) + "\n")
    run.save_config(config)
    return Imported(run.path, architecture, config, digest)


def default_cache() -> Path:
    """Where downloaded models are kept: the user's cache folder, as other model hubs do."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pix2pix" / "pretrained"


def pretrained_url(name: str, base_url: str | None = None) -> str:
    """The canonical download script's address of a published model (BASE/NAME.pth)."""
    return f"{(base_url or PRETRAINED_URL).rstrip('/')}/{name}.pth"


def download_pretrained(name: str, cache: Path | str | None = None, *, base_url: str | None = None,
                        timeout: float = 30.0, progress: bool = True) -> Path:
    """CACHE/NAME.pth, fetched from the canonical repository's address unless already there (a finished or
    hand-placed download); the server's announced size is checked by `fetch`."""
    if name not in PRETRAINED:
        raise DataError(f"unknown pretrained model {name!r}: choose from {', '.join(PRETRAINED)}")
    cache = Path(cache) if cache is not None else default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    url, target = pretrained_url(name, base_url), cache / f"{name}.pth"
    if not target.exists():
        hint = (f"Without network: download {url} elsewhere and put it at {target} (the same command then checks "
                f"and imports it), or import it from any place with `pix2pix import {name}.pth --out RUN --direction "
                f"{PRETRAINED[name][0]}`")
        fetch(url, target, timeout=timeout, progress=progress, hint=hint)
    return target


def import_pretrained(name: str, out: Path | str, cache: Path | str | None = None, direction: str | None = None,
                      dropout: bool = True, *, base_url: str | None = None, timeout: float = 30.0,
                      progress: bool = True) -> tuple[Imported, bool]:
    """A published model as a run folder, and whether its SHA-256 matched the one recorded at its first download.

    No checksums are published for these files: the first download that loads as a canonical U-Net records its
    size and SHA-256 in CACHE/pix2pix-models.json (trust on first use), later ones are checked against it."""
    run = new_run(out)
    direction = direction or PRETRAINED.get(name, ("AtoB",))[0]
    path = download_pretrained(name, cache, base_url=base_url, timeout=timeout, progress=progress)
    try:
        architecture, config, weights = converted(read_state_dict(path), path, direction, dropout)
    except RunError as err:
        raise RunError(f"{err}. Delete {path} and run again to download it afresh") from err
    digest = sha256_of(path)
    verified = check_against_manifest(path.parent / MANIFEST, name, pretrained_url(name, base_url), path,
                                      path.stat().st_size, digest)
    return write_run(run, path, digest, architecture, config, weights), verified
