"""The settings of a training run, resolved once: defaults <- the run's own (on resume) <- file <- given <- data."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pix2pix.config import ConfigError, MachineConfig, RunConfig, expand_objective, flatten_settings, read_settings_file
from pix2pix.data.dataset import detect_channels, find_pairs, split_folder
from pix2pix.runs import RunDir


def resolve_config(settings: Mapping[str, Any] | None = None, file: Path | str | None = None,
                   resume: Path | str | None = None, source: str = "settings") -> RunConfig:
    """The complete, checked settings of a new run, or of the run folder `resume` continued.

    `settings` (flat names, as `RunConfig.updated` takes them, `objective` included) win over the TOML or JSON
    `file`, which wins over the defaults. A resumed run keeps its saved settings where none are given, except the
    machine's (device, workers, ...), which start from the defaults as for a new run; its model cannot change.
    Channel counts that are not set come from the training data.
    """
    saved = RunDir(resume).load_config() if resume is not None else None
    base = RunConfig() if saved is None else dataclasses.replace(saved, machine=MachineConfig())
    layers = {}
    if file is not None:
        layers.update(expand_objective(flatten_settings(read_settings_file(Path(file))), str(file)))
    layers.update(expand_objective(dict(settings or {}), source))
    config = base.updated(layers, source)
    if saved is not None and config.model != saved.model:
        raise ConfigError(f"{resume}: a resumed run keeps its model settings; start a new run with another `out` "
                          "instead")
    return with_channels_of_the_data(config)


def with_channels_of_the_data(config: RunConfig) -> RunConfig:
    """`input_nc` and `output_nc`, where not set, as the first training pair holds them (grayscale, RGBA, bands)."""
    if not config.data.data:
        raise ConfigError("no dataset: set `data` (a folder of aligned A|B images, or of A/ and B/ folders)")
    unset = [name for name in ("input_nc", "output_nc") if getattr(config.model, name) is None]
    if not unset:
        return config
    pairs = find_pairs(split_folder(Path(config.data.data), "train"), config.data.layout)
    found = dict(zip(("input_nc", "output_nc"), detect_channels(pairs, config.data.direction)))
    return config.updated({name: found[name] for name in unset}, f"channels of {pairs[0].a}")
