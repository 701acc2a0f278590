"""Typed settings for a run, saved with every checkpoint so a run folder alone rebuilds its models.

Four sections, each a dataclass: what the networks are (`ModelConfig`), what they see (`DataConfig`), how they
are trained (`TrainConfig`), and what the machine that trains them offers (`MachineConfig`: saved for the record,
never carried to a resume on another machine). Field names are unique across sections so that each one is also a
flat setting (`lambda_l1`; the CLI's `--lambda-l1`). Defaults reproduce the paper. Messages name a setting in
backticks (`` `crop_size` ``), which the CLI shows as its flag.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pix2pix.atomic import write_text_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A setting that cannot work, with the reason and the fix in the message."""


Range = tuple[str, Callable[[Any], bool]]
AT_LEAST_ONE: Range = (">= 1", lambda value: value >= 1)
NOT_NEGATIVE: Range = (">= 0", lambda value: value >= 0)
POSITIVE: Range = ("> 0", lambda value: value > 0)
UNIT_INTERVAL: Range = ("in [0, 1)", lambda value: 0 <= value < 1)


def _setting(default: Any, help: str, choices: tuple | None = None, valid: Range | None = None) -> Any:
    """A field with its help text and, where not every value of its type works, its choices or its range (checked
    when a config is built, so that a bad value is a ConfigError naming it, not a failure deep in training)."""
    metadata: dict[str, Any] = {"help": help}
    if choices is not None:
        metadata["choices"] = choices
    if valid is not None:
        metadata["valid"] = valid
    return field(default=default, metadata=metadata)


NORMS = ("batch", "syncbatch", "instance", "none")
PATCH_SIZES = (1, 16, 70, 286)
GAN_MODES = ("vanilla", "lsgan", "none")
PREPROCESS = ("resize_and_crop", "scale_width_and_crop", "resize", "none")
DIRECTIONS = ("AtoB", "BtoA")
LAYOUTS = ("auto", "aligned", "folders")
PRECISIONS = ("fp32", "bf16", "fp16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


@dataclass
class ModelConfig:
    input_nc: int | None = _setting(None, "channels of the input image; None: those of the training data",
                                    valid=AT_LEAST_ONE)
    output_nc: int | None = _setting(None, "channels of the output image; None: those of the training data",
                                     valid=AT_LEAST_ONE)
    ngf: int = _setting(64, "generator filters in the first layer", valid=AT_LEAST_ONE)
    num_downs: int | None = _setting(None, "U-Net downsamplings; default follows the crop size (8 at 256)")
    skip_connections: bool = _setting(True, "U-Net skips; off gives the paper's encoder-decoder ablation")
    norm: str = _setting("batch", "normalization layer in both nets; syncbatch: batch statistics over all "
                                   "processes of a distributed run (CUDA)", NORMS)
    dropout: float = _setting(0.5, "dropout rate of the decoder blocks with dropout (the only noise in G)",
                              valid=UNIT_INTERVAL)
    dropout_start: int = _setting(0, "first decoder block with dropout, counted from the innermost (0); the "
                                  "canonical PyTorch repository's U-Net starts at 1", valid=NOT_NEGATIVE)
    dropout_blocks: int = _setting(3, "how many decoder blocks have dropout; the canonical PyTorch repository's "
                                   "U-Net has num_downs - 5", valid=NOT_NEGATIVE)
    generator_bias: bool | None = _setting(None, "biases in G's convolutions but the output layer: None: all but "
                                           "those before batch norm; false: none, as in the canonical PyTorch "
                                           "repository's U-Net under batch norm")
    ndf: int = _setting(64, "discriminator filters in the first layer", valid=AT_LEAST_ONE)
    patch: int = _setting(70, "PatchGAN receptive field in pixels", PATCH_SIZES)
    conditional: bool = _setting(True, "D sees the input beside the output (cGAN); off: unconditional GAN")
    init_gain: float = _setting(0.02, "std of the N(0, std) weight init", valid=POSITIVE)


@dataclass
class DataConfig:
    data: str = _setting("", "dataset folder: aligned A|B images or A/ and B/ folders, optionally in train/")
    layout: str = _setting("auto", "aligned A|B files, or A/ and B/ folders matched by name", LAYOUTS)
    direction: str = _setting("AtoB", "which half is the input", DIRECTIONS)
    preprocess: str = _setting("resize_and_crop", "training jitter", PREPROCESS)
    load_size: int = _setting(286, "resize to this before the random crop", valid=AT_LEAST_ONE)
    crop_size: int = _setting(256, "training crop size")
    flip: bool = _setting(True, "random horizontal mirroring")
    on_bad_file: str = _setting("fail", "a file that cannot be used: stop before training, or skip its pair",
                                ("fail", "skip"))


@dataclass
class TrainConfig:
    gan_mode: str = _setting("vanilla", "GAN objective", GAN_MODES)
    lambda_l1: float = _setting(100.0, "weight of the L1 term (0 turns it off)", valid=NOT_NEGATIVE)
    lr: float = _setting(2e-4, "Adam learning rate for both nets", valid=POSITIVE)
    beta1: float = _setting(0.5, "Adam beta1", valid=UNIT_INTERVAL)
    beta2: float = _setting(0.999, "Adam beta2", valid=UNIT_INTERVAL)
    batch_size: int = _setting(1, "images per iteration and process (1: batch norm acts as instance norm)",
                               valid=AT_LEAST_ONE)
    n_epochs: int = _setting(100, "epochs at the initial learning rate", valid=NOT_NEGATIVE)
    n_epochs_decay: int = _setting(100, "epochs of linear decay to zero after that", valid=NOT_NEGATIVE)
    max_steps: int | None = _setting(None, "stop after this many iterations in all (for short runs)",
                                     valid=NOT_NEGATIVE)
    seed: int = _setting(0, "seed of weights, data order, jitter and dropout", valid=NOT_NEGATIVE)
    precision: str = _setting("fp32", "fp32 (the paper's numerics); bf16 autocast (GPUs, CPUs with native bf16); "
                              "fp16 autocast with a gradient scaler (CUDA)", PRECISIONS)
    save_every: int = _setting(1000, "also checkpoint every N iterations (0: only at epoch ends)", valid=NOT_NEGATIVE)
    keep_checkpoints: int = _setting(2, "how many full checkpoints to keep", valid=AT_LEAST_ONE)
    log_every: int = _setting(10, "average and log the losses every N iterations", valid=AT_LEAST_ONE)
    num_samples: int = _setting(4, "images in the per-epoch sample grid", valid=AT_LEAST_ONE)
    val_images: int = _setting(50, "held-out images whose L1 is logged at each epoch end", valid=NOT_NEGATIVE)
    tensorboard: bool = _setting(False, "also write the losses, held-out L1 and sample grids as TensorBoard event "
                                 'files in RUN/tensorboard/ (pip install "pix2pix[tensorboard]")')


@dataclass
class MachineConfig:
    """Settings of the machine, not of the run: a resume or a translation elsewhere takes its own."""

    device: str = _setting("auto", "auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps; with several processes "
                           "each process takes the GPU of its local rank")
    num_workers: int = _setting(2, "data-loading worker processes", valid=NOT_NEGATIVE)
    memory_format: str = _setting("auto", "tensor layout of the nets: auto (channels_last on CUDA, which cuDNN's "
                                  "mixed-precision convolutions prefer; on CPU, channels_last for D's activations "
                                  "and NCHW for G's, the fastest there), channels_last or contiguous; on CPU the "
                                  "weights stay NCHW", MEMORY_FORMATS)
    dist_timeout: float = _setting(1800.0, "seconds a process of a distributed run waits for the others before "
                                   "stopping with an error (a peer that died or hangs)", valid=POSITIVE)


OBJECTIVES: dict[str, dict[str, Any]] = {
    "l1": {"gan_mode": "none", "lambda_l1": 100.0, "conditional": True},
    "gan": {"gan_mode": "vanilla", "lambda_l1": 0.0, "conditional": False},
    "cgan": {"gan_mode": "vanilla", "lambda_l1": 0.0, "conditional": True},
    "l1+gan": {"gan_mode": "vanilla", "lambda_l1": 100.0, "conditional": False},
    "l1+cgan": {"gan_mode": "vanilla", "lambda_l1": 100.0, "conditional": True},
}
"""The paper's loss ablations (Table 1) as presets of the three underlying settings."""


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    machine: MachineConfig = field(default_factory=MachineConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> RunConfig:
        config = cls()
        return config.updated(flatten_settings(values), source)

    def updated(self, flat: dict[str, Any], source: str = "settings") -> RunConfig:
        """A copy with flat `name: value` settings applied, each checked against its field's type and choices; an
        `objective` preset sets its settings first, so explicit ones beside it win."""
        sections = {name: dataclasses.replace(getattr(self, name)) for name in SECTIONS}
        for name, value in expand_objective(flat, source).items():
            section = SECTION_OF.get(name)
            if section is None:
                raise ConfigError(f"{source}: unknown setting `{name}`")
            spec = FIELDS[name]
            setattr(sections[section], name, _coerce(value, spec, source))
        config = RunConfig(**sections)
        config.validate()
        return config

    def validate(self) -> None:
        m, d, t = self.model, self.data, self.train
        if d.crop_size < 8 or d.crop_size & (d.crop_size - 1):
            raise ConfigError(f"`crop_size` {d.crop_size} must be a power of two >= 8 (the U-Net halves it)")
        if d.preprocess in ("resize_and_crop", "scale_width_and_crop") and d.load_size < d.crop_size:
            raise ConfigError(f"`load_size` {d.load_size} is smaller than `crop_size` {d.crop_size}")
        if m.num_downs is not None and not 1 <= m.num_downs <= d.crop_size.bit_length() - 1:
            raise ConfigError(f"`num_downs` {m.num_downs} must be >= 1 and 2**num_downs <= `crop_size` "
                              f"{d.crop_size}")
        if t.gan_mode == "none" and t.lambda_l1 <= 0:
            raise ConfigError("`gan_mode` none with `lambda_l1` 0 leaves nothing to train; set `lambda_l1` > 0")
        if t.n_epochs + t.n_epochs_decay < 1:
            raise ConfigError("`n_epochs` + `n_epochs_decay` must be >= 1")

    @property
    def channels(self) -> tuple[int, int]:
        """(input, output) channels: as set, or as found in the data (`resolve_config`); RGB's 3 for networks
        built without data."""
        return self.model.input_nc or 3, self.model.output_nc or 3

    @property
    def generator_depth(self) -> int:
        """The U-Net depth: the paper's 8 downsamplings at 256, one fewer per halving of the crop."""
        return self.model.num_downs or self.data.crop_size.bit_length() - 1

    @property
    def objective(self) -> str:
        """The paper's name for the current loss settings, or 'custom'."""
        current = {"gan_mode": self.train.gan_mode, "lambda_l1": self.train.lambda_l1,
                   "conditional": self.model.conditional}
        for name, preset in OBJECTIVES.items():
            if current == preset:
                return name
        return "custom"

    def save(self, path: Path) -> None:
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        return cls.from_dict(read_settings_file(path), str(path))


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "machine": MachineConfig}
FIELDS: dict[str, dataclasses.Field] = {
    f.name: f for section in SECTIONS.values() for f in dataclasses.fields(section)
}
SECTION_OF: dict[str, str] = {
    f.name: name for name, section in SECTIONS.items() for f in dataclasses.fields(section)
}


def read_settings_file(path: Path) -> dict[str, Any]:
    """Reads a TOML or JSON settings file (by extension), nested in sections or flat."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file ({err.strerror})") from err
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {err}") from err


def flatten_settings(values: dict[str, Any]) -> dict[str, Any]:
    """Settings in sections (`[model]`, `[data]`, `[train]`) or flat, as one flat dict (`data` may be either the
    section or the dataset folder setting)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def expand_objective(flat: dict[str, Any], source: str) -> dict[str, Any]:
    """Expands an `objective` preset into its settings, placed first so that explicit settings beside it win."""
    if "objective" not in flat:
        return flat
    settings = dict(flat)
    name = settings.pop("objective")
    if name not in OBJECTIVES:
        raise ConfigError(f"{source}: unknown `objective` {name!r}; choose from {', '.join(OBJECTIVES)}")
    return {**OBJECTIVES[name], **settings}


def field_type(spec: dataclasses.Field) -> tuple[type, bool]:
    """The field's scalar type and whether it accepts None (from `int | None` style annotations)."""
    hint = typing.get_type_hints(SECTIONS[SECTION_OF[spec.name]])[spec.name]
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        scalar = next(a for a in args if a is not type(None))
        return scalar, type(None) in args
    return hint, False


def _coerce(value: Any, spec: dataclasses.Field, source: str) -> Any:
    kind, optional = field_type(spec)
    if value is None and optional:
        return None
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(f"{source}: `{spec.name}` must be {kind.__name__}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{source}: `{spec.name}` must be finite, got {value!r}")
    choices = spec.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{source}: `{spec.name}` must be one of {', '.join(map(str, choices))}, got {value!r}")
    rule, holds = spec.metadata.get("valid", ("", None))
    if holds is not None and value is not None and not holds(value):
        raise ConfigError(f"{source}: `{spec.name}` must be {rule}, got {value!r}")
    return value
