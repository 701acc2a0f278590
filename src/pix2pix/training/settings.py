"""The settings of a training run, resolved once: defaults <- the run's own (on resume) <- file <- given <- data."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pix2pix.config import ConfigError, MachineConfig, RunConfig, expand_objective, flatten_settings, read_settings_file
from pix2pix.data.dataset import Pair, PairFacts, detect_channels, find_pairs, split_folder, survey_pairs
from pix2pix.data.images import DataError
from pix2pix.models import input_problem
from pix2pix.models.discriminator import smallest_input
from pix2pix.runs import RunDir

SHOWN_FILES = 5
"""Files named in a message before '... and N more'."""

RESUME_MAY_CHANGE: dict[str, bool] = {
    **dict.fromkeys(("max_steps", "n_epochs", "n_epochs_decay", "save_every", "keep_checkpoints", "log_every",
                     "num_samples", "val_images", "tensorboard", "on_bad_file", "precision", "batch_size",
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
    return fitted_to_the_data(config)


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
    found = detect_channels(survey_pairs(pairs), config.data.direction)
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


def fitted_to_the_data(config: RunConfig) -> RunConfig:
    """`input_nc` and `output_nc`, where not set, as most files of the train and val splits hold them (grayscale,
    RGBA, bands); then the networks checked against the sizes they will train on (the crop, or with `preprocess`
    none every training file), so that a setting that cannot work is refused before anything is written."""
    if not config.data.data:
        raise ConfigError("no dataset: set `data` (a folder of aligned A|B images, or of A/ and B/ folders)")
    if config.data.preprocess != "none":
        check_crop(config)
    unset = [name for name in ("input_nc", "output_nc") if getattr(config.model, name) is None]
    if not unset and config.data.preprocess != "none":
        return config
    train_pairs = find_pairs(split_folder(Path(config.data.data), "train"), config.data.layout)
    facts = survey_pairs(train_pairs)
    held_out = survey_pairs(val_pairs(config))
    if unset:
        found = dict(zip(("input_nc", "output_nc"), detect_channels(facts + held_out, config.data.direction)))
        config = config.updated({name: found[name] for name in unset}, f"channels of {config.data.data}")
    if config.data.preprocess == "none":
        check_file_sizes(config, facts, held_out)
    return config


def val_pairs(config: RunConfig) -> list[Pair]:
    """The val split's pairs, if it has any that can be found; its problems are the screening's to list."""
    folder = split_folder(Path(config.data.data), "val")
    try:
        return find_pairs(folder, config.data.layout) if folder is not None else []
    except DataError:
        return []


def check_crop(config: RunConfig) -> None:
    """The crop is what the networks train on (and see at the epoch ends) unless `preprocess` is none."""
    crop = config.data.crop_size
    problem = input_problem(config, crop, crop)
    if problem is not None:
        patch = config.model.patch
        smallest = max(8, 1 << (smallest_input(patch) - 1).bit_length())
        raise ConfigError(f"`patch` {patch} needs `crop_size` >= {smallest}: at {crop}, {problem}; raise "
                          "`crop_size` (and `load_size`) or choose a smaller `patch`")


def check_file_sizes(config: RunConfig, facts: list[PairFacts], held_out: list[PairFacts]) -> None:
    """With `preprocess` none every image is used at its own size: G and D train on the training images, G
    translates the val images, and a batch of more than one needs them all of one size."""
    train_problems = [(f.pair, input_problem(config, f.size[1], f.size[0])) for f in facts]
    val_only = config.updated({"gan_mode": "none", "lambda_l1": 1.0}, "val")
    problems = [(pair, problem) for pair, problem in train_problems
                + [(f.pair, input_problem(val_only, f.size[1], f.size[0])) for f in held_out] if problem]
    if problems:
        listed = "; ".join(f"{pair.a}: {problem}" for pair, problem in problems[:SHOWN_FILES])
        more = f"; and {len(problems) - SHOWN_FILES} more" if len(problems) > SHOWN_FILES else ""
        raise ConfigError(f"`preprocess` none trains on each image at its own size, and {len(problems)} of "
                          f"{len(facts) + len(held_out)} pair(s) do not fit the networks: {listed}{more}; resize "
                          "them, set another `preprocess`, or fewer downsamplings (`crop_size`, `num_downs`)")
    sizes = Counter(f"{f.size[0]}x{f.size[1]}" for f in facts)
    if config.train.batch_size > 1 and len(sizes) > 1:
        found = ", ".join(f"{size} ({count} file(s))" for size, count in sorted(sizes.items()))
        raise ConfigError(f"`preprocess` none with `batch_size` {config.train.batch_size} needs the training images "
                          f"to be of one size, but they are {found}; set `batch_size` 1 or another `preprocess`")
