"""The colours of a run's input label maps, so the page can paint with them: `palette.json` as the embedded facades
write it (`{"classes": [{"name": "wall", "color": [r, g, b]}, ...]}`), given or found beside the run's data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pix2pix.config import ConfigError, RunConfig
from pix2pix.data.images import DataError

PALETTE_FILE = "palette.json"
PALETTE_FIX = 'give a JSON file like {"classes": [{"name": "wall", "color": [r, g, b]}, ...]}'


@dataclass(frozen=True)
class LabelClass:
    name: str
    color: tuple[int, int, int]


def load_palette(path: Path) -> list[LabelClass]:
    """The classes of a palette file, each a name and an RGB colour; anything else is refused naming the file."""
    try:
        classes = json.loads(Path(path).read_text())["classes"]
        found = [LabelClass(str(entry["name"]), tuple(int(v) for v in entry["color"])) for entry in classes]
    except OSError as err:
        raise DataError.about(path, f"cannot read the palette ({err.strerror or err})", "check `palette`") from err
    except (ValueError, KeyError, TypeError) as err:
        raise DataError.about(path, f"not a palette ({type(err).__name__}: {err})", PALETTE_FIX) from err
    if not found or any(len(c.color) != 3 or not all(0 <= v <= 255 for v in c.color) for c in found):
        raise DataError.about(path, "a palette needs at least one class, each with 3 values in 0..255", PALETTE_FIX)
    return found


def run_palette(config: RunConfig, given: Path | None = None) -> tuple[list[LabelClass] | None, Path | None]:
    """(the classes, their file): `given`, else the palette.json of the run's dataset when the run's inputs are that
    dataset's A side (the label maps); (None, None) when the inputs are not label maps as far as is known."""
    if given is not None:
        if config.channels[0] != 3:
            raise ConfigError(f"`palette` colours RGB label maps; this run's inputs have {config.channels[0]} "
                              "channel(s)")
        return load_palette(given), Path(given)
    found = Path(config.data.data) / PALETTE_FILE
    if not config.data.data or config.data.direction != "AtoB" or config.channels[0] != 3 or not found.is_file():
        return None, None
    return load_palette(found), found
