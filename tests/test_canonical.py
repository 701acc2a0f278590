"""Importing the canonical PyTorch repository's U-Net checkpoints: its layout, built here from the names and shapes its
code gives the tensors; the run it becomes and translates; one-line refusals; the published models from a local
server."""

from __future__ import annotations

import functools
import json
import math
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from pix2pix import Translator, canonical
from pix2pix.canonical import MANIFEST, import_checkpoint, import_pretrained
from pix2pix.cli import main
from pix2pix.data.images import DataError
from pix2pix.runs import RunError, load_generator

UNREACHABLE = "http://127.0.0.1:9/"


def block(k: int) -> str:
    """The Sequential of canonical block k (0 the outermost): the outermost nests block 1 as its layer 1, the
    others nest the next block as their layer 3."""
    return "model.model." + "".join("1.model." if level == 0 else "3.model." for level in range(k))


def canonical_shapes(depth: int = 6, ngf: int = 2, input_nc: int = 3, output_nc: int = 3, norm: str = "batch"
                     ) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the canonical UnetGenerator's state_dict. Block k's Sequential holds [LeakyReLU, Conv,
    norm, block k + 1, ReLU, ConvTranspose, norm, Dropout]; the outermost [Conv, block 1, ReLU, ConvTranspose,
    Tanh]; the innermost [LeakyReLU, Conv, ReLU, ConvTranspose, norm]. Widths ngf, 2 ngf, 4 ngf, then 8 ngf; biases
    only under instance norm, and in the output layer; batch norm with running statistics, instance norm without
    affine parameters or statistics."""
    bias = norm == "instance"
    width = [ngf * min(2**k, 8) for k in range(depth)]
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, shape: tuple[int, ...], out_channels: int, with_bias: bool = bias) -> None:
        shapes[f"{name}.weight"] = shape
        if with_bias:
            shapes[f"{name}.bias"] = (out_channels,)

    def normalization(name: str, channels: int) -> None:
        if norm == "batch":
            shapes.update({f"{name}.{kind}": (channels,) for kind in ("weight", "bias", "running_mean", "running_var")})
            shapes[f"{name}.num_batches_tracked"] = ()

    conv(block(0) + "0", (width[0], input_nc, 4, 4), width[0])
    conv(block(0) + "3", (2 * width[0], output_nc, 4, 4), output_nc, with_bias=True)
    for k in range(1, depth):
        conv(block(k) + "1", (width[k], width[k - 1], 4, 4), width[k])
        if k == depth - 1:
            conv(block(k) + "3", (width[k], width[k - 1], 4, 4), width[k - 1])
            normalization(block(k) + "4", width[k - 1])
        else:
            normalization(block(k) + "2", width[k])
            conv(block(k) + "5", (2 * width[k], width[k - 1], 4, 4), width[k - 1])
            normalization(block(k) + "6", width[k - 1])
    return shapes


def canonical_state(depth: int = 6, ngf: int = 2, input_nc: int = 3, output_nc: int = 3, norm: str = "batch",
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """A checkpoint in the canonical layout with random values (variances positive, counters as trained)."""
    rng = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in canonical_shapes(depth, ngf, input_nc, output_nc, norm).items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1000)
        elif name.endswith("running_var"):
            state[name] = 1 + torch.rand(shape, generator=rng)
        else:
            state[name] = torch.randn(shape, generator=rng) * 0.1
    return state


def test_the_layout_built_here_is_the_one_the_canonical_code_saves():
    """Figures of the canonical code's own save (commit 2a7afba; netG unet_256, norm batch, ngf 64)."""
    shapes = canonical_shapes(depth=8, ngf=64)
    assert len(shapes) == 82
    assert sum(math.prod(shape) for name, shape in shapes.items() if name.endswith(("weight", "bias"))) == 54_413_955
    innermost = "model.model.1." + "model.3." * 6 + "model."
    assert shapes[innermost + "1.weight"] == shapes[innermost + "3.weight"] == (512, 512, 4, 4)
    assert shapes[innermost + "4.running_mean"] == (512,)
    assert shapes["model.model.1.model.3.model.3.model.3.model.5.weight"] == (1024, 512, 4, 4)
    assert shapes["model.model.3.weight"] == (128, 3, 4, 4) and "model.model.0.bias" not in shapes


def saved(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save(state, path)
    return path


def test_a_canonical_checkpoint_imports_and_translates(tmp_path, capsys):
    file = saved(tmp_path / "latest_net_G.pth", canonical_state(depth=6, ngf=4))
    assert main(["import", str(file), "--out", str(tmp_path / "run"), "--direction", "BtoA"]) == 0
    assert "U-Net with 6 downsamplings, ngf 4, batch norm, 3 -> 3 channels" in capsys.readouterr().out
    model = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert {k: model[k] for k in ("num_downs", "ngf", "norm", "generator_bias", "dropout_start", "dropout_blocks")} \
        == {"num_downs": 6, "ngf": 4, "norm": "batch", "generator_bias": False, "dropout_start": 1,
            "dropout_blocks": 1}
    Image.new("RGB", (40, 30), (200, 40, 90)).save(tmp_path / "in.png")
    for mode in ("eval", "paper"):
        out = tmp_path / mode
        assert main(["translate", str(tmp_path / "run"), str(tmp_path / "in.png"), "--out", str(out),
                     "--mode", mode, "--seed", "0"]) == 0
        assert Image.open(out / "in.png").size == (40, 30)


def test_every_tensor_lands_where_the_canonical_network_uses_it(tmp_path):
    depth = 6
    state = canonical_state(depth=depth, ngf=2)
    import_checkpoint(saved(tmp_path / "g.pth", state), tmp_path / "run")
    g, _ = load_generator(tmp_path / "run")
    ours = g.state_dict()
    inner = block(depth - 1)
    assert torch.equal(ours["encoder.0.0.weight"], state["model.model.0.weight"])  # the input layer, no bias
    assert g.encoder[0][0].bias is None
    assert torch.equal(ours[f"decoder.{depth - 1}.1.bias"], state["model.model.3.bias"])  # the output layer
    assert torch.equal(ours["encoder.1.2.running_var"], state["model.model.1.model.2.running_var"])
    assert torch.equal(ours[f"decoder.{depth - 2}.1.weight"], state["model.model.1.model.5.weight"])
    assert torch.equal(ours[f"encoder.{depth - 1}.1.weight"], state[inner + "1.weight"])  # the bottleneck
    assert torch.equal(ours["decoder.0.2.weight"], state[inner + "4.weight"])
    tensors = sorted(t.flatten().sum().item() for t in state.values() if t.is_floating_point())
    assert sorted(t.flatten().sum().item() for t in ours.values() if t.is_floating_point()) == tensors


@pytest.mark.parametrize(("depth", "dropout", "blocks"), [(8, True, [1, 2, 3]), (7, True, [1, 2]),
                                                          (8, False, [])])
def test_dropout_sits_in_the_blocks_after_the_innermost_as_the_canonical_unet_has_it(tmp_path, depth, dropout,
                                                                                     blocks):
    imported = import_checkpoint(saved(tmp_path / "g.pth", canonical_state(depth=depth, ngf=1)), tmp_path / "run",
                                 dropout=dropout)
    g, config = load_generator(imported.run)
    assert [j for j, b in enumerate(g.decoder) if any(isinstance(m, nn.Dropout) for m in b)] == blocks
    assert config.generator_depth == depth and config.data.crop_size == 2**depth


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_other_norms_are_read_from_the_names(tmp_path, norm):
    imported = import_checkpoint(saved(tmp_path / "g.pth", canonical_state(norm=norm)), tmp_path / "run")
    assert (imported.architecture.norm, imported.architecture.bias) == (norm, norm == "instance")
    g, _ = load_generator(imported.run)
    assert (g.encoder[0][0].bias is not None) == (norm == "instance")


def test_older_and_data_parallel_saves_are_accepted(tmp_path):
    """PyTorch before 0.4 saved no batch norm counters and gave instance norms running statistics, which the
    canonical loader drops; DataParallel prefixes every name with `module.`."""
    batch = {f"module.{k}": v for k, v in canonical_state(input_nc=1).items() if "num_batches" not in k}
    assert import_checkpoint(saved(tmp_path / "a.pth", batch), tmp_path / "a").architecture.input_nc == 1
    instance = canonical_state(norm="instance")
    instance[block(1) + "2.running_mean"] = torch.zeros(4)
    assert import_checkpoint(saved(tmp_path / "b.pth", instance), tmp_path / "b").architecture.norm == "instance"


class Code:
    def __reduce__(self):
        return (print, ("this ran",))


def _truncated(path: Path) -> None:
    data = saved(path, canonical_state()).read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _missing(path: Path) -> None:
    state = canonical_state()
    del state[block(2) + "6.running_var"]
    saved(path, state)


def _reshaped(path: Path) -> None:
    state = canonical_state()
    state[block(3) + "5.weight"] = torch.zeros(3, 3, 4, 4)
    saved(path, state)


@pytest.mark.parametrize(("make", "says"), [
    (_truncated, "incomplete or damaged checkpoint"),
    (lambda path: path.write_text("<html>Not Found</html>"), "not a PyTorch checkpoint"),
    (lambda path: saved(path, {"weights": Code()}), "holds Python objects besides tensors"),
    (lambda path: saved(path, {"model.1.weight": torch.zeros(64, 3, 7, 7)}), "ResNet generators"),
    (lambda path: saved(path, {"G": canonical_state()}), "not a state_dict (names -> tensors): 'G' holds a dict"),
    (_missing, f"missing {block(2)}6.running_var"),
    (_reshaped, f"{block(3)}5.weight has shape (3, 3, 4, 4), expected (32, 8, 4, 4)"),
])
def test_a_wrong_or_truncated_file_gets_one_clear_line(tmp_path, capsys, make, says):
    file = tmp_path / "latest_net_G.pth"
    make(file)
    assert main(["import", str(file), "--out", str(tmp_path / "run")]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"pix2pix: error: {file}: ")
    assert says in captured.err and "this ran" not in captured.out
    assert not (tmp_path / "run").exists()


def test_an_existing_run_is_never_overwritten(tmp_path):
    file = saved(tmp_path / "g.pth", canonical_state())
    import_checkpoint(file, tmp_path / "run")
    before = (tmp_path / "run" / "generator.safetensors").read_bytes()
    with pytest.raises(RunError, match="already a run folder"):
        import_checkpoint(saved(tmp_path / "h.pth", canonical_state(seed=1)), tmp_path / "run")
    assert (tmp_path / "run" / "generator.safetensors").read_bytes() == before


@pytest.mark.parametrize("resume", [False, True], ids=["new run", "resume"])
def test_training_into_an_imported_run_is_refused_and_keeps_its_weights(tmp_path, facades, capsys, resume):
    import_checkpoint(saved(tmp_path / "g.pth", canonical_state(depth=5, ngf=4)), tmp_path / "run")
    before = (tmp_path / "run" / "generator.safetensors").read_bytes()
    flags = ["--resume", "--force"] if resume else ["--crop-size", "32", "--load-size", "36"]
    assert main(["train", "--out", str(tmp_path / "run"), "--data", str(facades), *flags]) == 2
    assert "holds generator weights but no training state" in capsys.readouterr().err
    assert (tmp_path / "run" / "generator.safetensors").read_bytes() == before


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/served/ over HTTP, as the canonical models' address serves NAME.pth."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *args: None}),
                                directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()


def _pretrained(name: str, out: Path, cache: Path, base_url: str):
    return import_pretrained(name, out, cache, base_url=base_url, timeout=5, progress=False)


def test_a_published_model_is_downloaded_recorded_and_later_checked(server, tmp_path):
    folder, url = server
    data = saved(folder / "facades_label2photo.pth", canonical_state()).read_bytes()
    imported, verified = _pretrained("facades_label2photo", tmp_path / "a", tmp_path / "cache", url)
    assert not verified and imported.config.data.direction == "BtoA"  # as the canonical README tests it
    record = json.loads((tmp_path / "cache" / MANIFEST).read_text())["facades_label2photo"]
    assert record["size"] == len(data) and record["sha256"] == imported.sha256
    again, verified = _pretrained("facades_label2photo", tmp_path / "b", tmp_path / "cache", UNREACHABLE)
    assert verified and again.sha256 == imported.sha256
    (tmp_path / "cache" / "facades_label2photo.pth").write_bytes(saved(tmp_path / "x.pth", canonical_state(seed=1))
                                                                  .read_bytes())
    with pytest.raises(DataError, match="facades_label2photo.pth: .* SHA-256 .* Delete it and run again"):
        _pretrained("facades_label2photo", tmp_path / "c", tmp_path / "cache", UNREACHABLE)


def test_a_download_that_is_no_checkpoint_is_not_recorded(server, tmp_path):
    folder, url = server
    (folder / "sat2map.pth").write_text("<html>moved</html>")
    with pytest.raises(RunError, match=r"not a PyTorch checkpoint.*Delete .*sat2map.pth and run again"):
        _pretrained("sat2map", tmp_path / "run", tmp_path / "cache", url)
    assert not (tmp_path / "cache" / MANIFEST).exists() and not (tmp_path / "run").exists()


def test_offline_the_message_says_where_to_put_the_file_by_hand(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(canonical, "PRETRAINED_URL", UNREACHABLE)
    cache = tmp_path / "cache"
    assert main(["import", "--pretrained", "map2sat", "--out", str(tmp_path / "run"), "--cache", str(cache)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach http://127.0.0.1:9/map2sat.pth" in err
    assert f"put it at {cache / 'map2sat.pth'}" in err
    assert "pix2pix import map2sat.pth --out RUN --direction BtoA" in err
    saved(cache / "map2sat.pth", canonical_state())  # placed by hand: imported without the network
    assert main(["import", "--pretrained", "map2sat", "--out", str(tmp_path / "run"), "--cache", str(cache)]) == 0
    assert Translator.load(tmp_path / "run", mode="eval").config.data.direction == "BtoA"
