"""The page paints label maps in the palette of the run's dataset, or of a file given."""

from __future__ import annotations

import json

import pytest

from pix2pix.config import ConfigError
from pix2pix.data.images import DataError
from pix2pix.serve.palette import LabelClass, load_palette, run_palette


def test_the_palette_beside_the_runs_data_is_found_when_the_inputs_are_its_label_maps(tiny_config, facades):
    palette, found = run_palette(tiny_config)
    assert found == facades / "palette.json" and len(palette) == 9
    assert palette[0] == LabelClass("background", tuple(json.loads(found.read_text())["classes"][0]["color"]))
    assert run_palette(tiny_config.updated({"direction": "BtoA"})) == (None, None)  # photos in, labels out
    assert run_palette(tiny_config.updated({"data": str(facades / "train")})) == (None, None)


def test_a_palette_given_is_used_and_a_bad_one_is_refused_naming_the_file(tiny_config, tmp_path):
    given = tmp_path / "mine.json"
    given.write_text(json.dumps({"classes": [{"name": "sky", "color": [0, 0, 255]}]}))
    assert run_palette(tiny_config.updated({"direction": "BtoA"}), given) == ([LabelClass("sky", (0, 0, 255))], given)
    for text in ("not json", '{"colours": []}', '{"classes": []}', '{"classes": [{"name": "x", "color": [1, 2]}]}',
                 '{"classes": [{"name": "x", "color": [0, 0, 256]}]}'):
        given.write_text(text)
        with pytest.raises(DataError, match=r"mine\.json: .*palette"):
            load_palette(given)
    with pytest.raises(DataError, match=r"missing\.json: cannot read the palette"):
        load_palette(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="RGB label maps; this run's inputs have 1 channel"):
        run_palette(tiny_config.updated({"input_nc": 1}), given)
