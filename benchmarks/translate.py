"""Seconds per translated image at the paper's defaults, against a naive baseline, and cost against image size.

    python benchmarks/translate.py                        # 256x256 file -> file, eval and paper modes
    python benchmarks/translate.py --sizes 256 512 1024 2048 4096

Per image means the whole job of `pix2pix translate` with the model loaded once: read the PNG, translate, write
the PNG. The baseline does it the straightforward way: PyTorch's own layers, `torch.no_grad`, Pillow in and out.
Variants run interleaved in one process. `--sizes` runs each size in a fresh process, so that its peak memory
(max RSS) is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import interleave, machine, matmul_peak, peak_rss_mib, print_table, starved, write_json  # noqa: E402
from train_step import as_plain_pytorch  # noqa: E402

from pix2pix.config import RunConfig  # noqa: E402
from pix2pix.data.images import image_to_tensor, tensor_to_image  # noqa: E402
from pix2pix.inference import Translator, translate_files  # noqa: E402
from pix2pix.models import build_generator, translation_mode  # noqa: E402


def test_image(folder: Path, size: int) -> Path:
    rng = np.random.default_rng(0)
    path = folder / f"input_{size}.png"
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def naive_translate(generator: torch.nn.Module, mode: str, source: Path, target: Path) -> None:
    with translation_mode(generator, mode):
        output = generator(image_to_tensor(Image.open(source).convert("RGB")).unsqueeze(0))[0]
    tensor_to_image(output).save(target)


def compare(size: int, repeats: int) -> list[dict]:
    config = RunConfig().updated({"crop_size": 256, "load_size": 256})
    torch.manual_seed(0)
    naive = build_generator(config)
    as_plain_pytorch(naive)
    folder = Path(tempfile.mkdtemp())
    source = test_image(folder, size)
    variants = {}
    for mode in ("eval", "paper"):
        translator = Translator(build_generator(config), config, mode=mode, seed=0)
        translator.generator.load_state_dict(naive.state_dict())
        variants[f"naive {mode}"] = lambda m=mode: naive_translate(naive, m, source, folder / "naive.png")
        variants[f"pix2pix {mode}"] = lambda t=translator: translate_files(t, [source], folder / "out")
    peak = matmul_peak()
    timings = interleave(variants, repeats)
    rows = []
    for name, timing in timings.items():
        base = timings[f"naive {name.split()[-1]}"].median
        low, high = timing.spread
        rows.append({"variant": name, "size": size, "s/image": f"{timing.median:.3f}",
                     "spread": f"{low:.3f}-{high:.3f}", "speedup": f"{base / timing.median:.2f}x",
                     "cpu/wall": f"{sorted(timing.cpu_ratios)[len(timing.cpu_ratios) // 2]:.2f}",
                     "walls": timing.walls, "matmul_peak_gflops": peak})
    if starved(timings, torch.get_num_threads()):
        print("WARNING: starved host: CPU time per wall second is far below the thread count; these timings are "
              "not representative.", file=sys.stderr)
    return rows


def one_size(size: int) -> dict:
    """Translates one image of `size` x `size` (tiled when over the memory budget), in this process."""
    config = RunConfig()
    torch.manual_seed(0)
    translator = Translator(build_generator(config), config, mode="eval")
    folder = Path(tempfile.mkdtemp())
    source = test_image(folder, size)
    tile = translator.tile_size(torch.zeros(1, 3, size, size))
    start = time.perf_counter()
    translate_files(translator, [source], folder / "out")
    seconds = time.perf_counter() - start
    return {"size": size, "seconds": round(seconds, 2), "tile": tile or "whole",
            "us/pixel": round(seconds / size**2 * 1e6, 2), "max_rss_mib": round(peak_rss_mib())}


def size_table(sizes: list[int]) -> list[dict]:
    rows = []
    for size in sizes:
        child = subprocess.run([sys.executable, __file__, "--one-size", str(size)], capture_output=True, text=True,
                               check=True)
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_size:
        print(json.dumps(one_size(args.one_size)))
        return
    rows = compare(args.size, args.repeats)
    print_table(rows, ["variant", "size", "s/image", "spread", "speedup", "cpu/wall"])
    sizes = size_table(args.sizes) if args.sizes else []
    if sizes:
        print()
        print_table(sizes, ["size", "seconds", "tile", "us/pixel", "max_rss_mib"])
    path = write_json(f"translate_{args.size}", {"machine": machine(), "rows": rows, "sizes": sizes})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
