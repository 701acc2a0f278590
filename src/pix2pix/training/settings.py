"""The settings of a training run, resolved once: defaults <- the run's own (on resume) <- file <- given <- data."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pix2pix.config import ConfigError, MachineConfig, RunConfig, expand_objective, flatten_settings, read_settings_file
from pix2pix.data.dataset import detect_channels, find_pairs, split_folder
from pix2pix.runs import RunDir

RESUME_MAY_CHANGE: dict[str, bool] = {
    **dict.fromkeys(("max_steps", "n_epochs", "n_epochs_decay", "save_every", "keep_checkpoints", "log_every",
                     "num_samples", "val_images", "on_bad_file", "precision", "batch_size",
                     *(spec.name for spec in dataclasses.fields(MachineConfig))), False),
    **dict.fromkeys(("seed", "data"), True),
}
"""The settings a resumed run may change (True: only with `force`). It keeps every other one: the networks, their
optimizers and the data order in the checkpoint were made with them (a new `lr` or `beta1` would be overwritten by
the saved optimizer, a new crop or `direction` would change what G learns). Positions count images, so another
`batch_size` continues the data order, as another number of processes does."""


def resolve_config(settings: Mapping[str, Any] | None = None, file: Path | str | None = None,
                   resume: Path | str | None = None, source: str = "settings", force: bool = False) -> RunConfig:
    """The complete, checked settings of a new run, or of the run folder `resume` continued.

    `settings` (flat names, as `RunConfig.updated` takes them, `objective` included) win over the TOML or JSON
    `file`, which wins over the defaults. A resumed run keeps its saved settings where none are given, except the
    machine's (device, workers, ...), which start from the defaults as for a new run; it refuses a change that
    `RESUME_MAY_CHANGE` does not allow (`force` allows another seed or dataset of the same channels), before
    anything is written. Channel counts that are not set come from the training data.
    """
    saved = RunDir(resume).load_config() if resume is not None else None
    base = RunConfig() if saved is None else dataclasses.replace(saved, machine=MachineConfig())
    layers = {}
    if file is not None:
        layers.update(expand_objective(flatten_settings(read_settings_file(Path(file))), str(file)))
    layers.update(expand_objective(dict(settings or {}), source))
    config = base.updated(layers, source)
    if saved is not None:
        refuse_resume_changes(saved, config, resume, force)
    return with_channels_of_the_data(config)


def refuse_resume_changes(saved: RunConfig, config: RunConfig, resume: Path | str, force: bool) -> None:
    """Every change the resume policy refuses, named in one line with the saved and the given value."""
    old, new = _flat(saved), _flat(config)
    kept = [name for name in old if _changed(name, old[name], new[name])
            and not (name in RESUME_MAY_CHANGE and (force or not RESUME_MAY_CHANGE[name]))]
    if kept:
        forceable = all(RESUME_MAY_CHANGE.get(name) for name in kept)
        fix = ("`force` lets a resume change them" if forceable else
               "start a new run with another `out` instead")
        changes = ", ".join(f"`{name}` {old[name]} (given: {new[name]})" for name in kept)
        raise ConfigError(f"{resume}: a resumed run keeps {changes}; {fix}")
    if _changed("data", old["data"], new["data"]):
        refuse_other_channels(config, resume)


def refuse_other_channels(config: RunConfig, resume: Path | str) -> None:
    """Another dataset for a resumed run must have the channels its networks were built with."""
    pairs = find_pairs(split_folder(Path(config.data.data), "train"), config.data.layout)
    found = detect_channels(pairs, config.data.direction)
    if tuple(found) != config.channels:
        raise ConfigError(f"{resume}: its networks take {config.channels[0]} and give {config.channels[1]} "
                          f"channels; `data` {config.data.data} holds {found[0]} and {found[1]} (`direction` "
                          f"{config.data.direction}); train a new run with another `out` on it")


def _flat(config: RunConfig) -> dict[str, Any]:
    return {name: value for section in config.to_dict().values() for name, value in section.items()}


def _changed(name: str, old: Any, new: Any) -> bool:
    """Whether a setting differs; `data` by the folder it names, however spelled."""
    if name == "data":
        return Path(old).resolve() != Path(new).resolve()
    return old != new


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
