"""Does `--precision bf16` cost quality? fp32 and bf16 trained for equal steps on the embedded data, compared.

    python benchmarks/bf16_quality.py                       # 64x64, 600 steps, seeds 0 and 1
    python benchmarks/bf16_quality.py --size 128 --steps 1500 --seeds 0 1 2
    python benchmarks/bf16_quality.py --fid-network inception-2015-12-05.pt   # also FID (docs/performance.md)

Each (seed, precision) is a whole `pix2pix train` run of the demo's configuration (the paper's defaults at half
width, `pix2pix.demo.demo_config`) on the embedded facades data, and is scored by its held-out L1 (the val split,
translated in paper mode, as every run records it). GAN training at equal steps differs from seed to seed, so the
table shows fp32's spread over seeds beside bf16's difference from fp32 at the same seed: a bf16 difference
inside that spread is not a cost of bf16. Then each fp32 run's val split is translated with `--precision bf16`,
with `--compile` (in fp32 and bf16) and plainly in fp32, in both test modes, and the 8-bit outputs compared.

With `--fid-network` (a TorchScript Inception; none ships with pix2pix), each run also translates a held-out test
split of `--fid-images` pairs (plain fp32, paper mode, seed 0, so that only the training precision differs) and is
scored by the FID of its outputs against the split's photos.

bf16 needs native support (AVX-512 bf16 or AMX) for its speed, not for its numbers. Where the CPU lacks it,
`pix2pix train` and `translate` refuse bf16 as too slow; this benchmark lifts that refusal to measure the numbers and
says so, and its bf16 timings there are not representative (nor bit-identical to a native run's: the kernels sum
in another order, as fp32's do from one CPU to another).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, print_table, write_json  # noqa: E402

from pix2pix.data.synthetic import generate_facades  # noqa: E402
from pix2pix.demo import TEST_IMAGES, TRAIN_IMAGES, VAL_IMAGES, demo_config  # noqa: E402
from pix2pix.evaluation.fid import FeatureNetwork, FIDError, frechet_distance  # noqa: E402
from pix2pix.inference import Translator, translate_files  # noqa: E402
from pix2pix.training.loop import train  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def native_bf16() -> bool:
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def bf16_allowed() -> contextlib.AbstractContextManager:
    """Lets bf16 train and translate on a CPU without native bf16 (slowly: only the speed differs, and the
    rounding of its kernels)."""
    if native_bf16():
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    for checked in ("pix2pix.training.loop.check_precision", "pix2pix.inference.check_precision"):
        stack.enter_context(mock.patch(checked, lambda device, precision: None))
    return stack


def one_run(data: Path, out: Path, size: int, steps: int, seed: int, precision: str) -> dict:
    config = demo_config(data, size, steps, seed).updated({"precision": precision, "save_every": 0})
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    with bf16_allowed() if precision == "bf16" else contextlib.nullcontext():
        result = train(config, out / f"{precision}_seed{seed}")
    wall = time.perf_counter() - start_wall
    return {"seed": seed, "precision": precision, "steps": result.step,
            "val L1 at 0": round(result.metrics["l1_step0"], 4), "val L1": round(result.metrics["l1_now"], 4),
            "s/it": round(wall / result.step, 3), "cpu/wall": round((time.process_time() - start_cpu) / wall, 2)}


TRANSLATION_VARIANTS = {"bf16": {"precision": "bf16"}, "fp32, compiled": {"compiled": True},
                        "bf16, compiled": {"precision": "bf16", "compiled": True}}
"""`pix2pix translate` settings whose images are compared with the plain fp32 ones."""


def translation_deviation(run: Path, val: Path, seed: int) -> list[dict]:
    """How far `pix2pix translate --precision bf16` (and `--compile`, with either precision) lands from plain fp32
    with the same trained weights: the val split translated in both test modes (paper mode with the same seed) and
    written as 8-bit PNGs, then compared."""
    rows = []
    for mode in ("eval", "paper"):
        reference = translated(run, val, mode, "fp32", {})
        for name, settings in TRANSLATION_VARIANTS.items():
            levels = np.abs(translated(run, val, mode, name, settings) - reference)
            rows.append({"seed": seed, "mode": mode, "variant": name, "images": len(levels),
                         "max levels": int(levels.max()), "mean levels": round(float(levels.mean()), 4),
                         "values differing": f"{(levels > 0).mean():.2%}",
                         "values off by > 1": f"{(levels > 1).mean():.3%}"})
    return rows


def translated(run: Path, val: Path, mode: str, name: str, settings: dict) -> np.ndarray:
    """The val split's 8-bit outputs, as `pix2pix translate --aligned` writes them."""
    with bf16_allowed():
        translator = Translator.load(run, mode=mode, seed=0, **settings)
    written = translate_files(translator, [val], run / f"translated_{mode}_{name.replace(', ', '_')}", aligned=True)
    return np.stack([np.asarray(Image.open(f.output), dtype=np.int16) for f in written.done])


def test_outputs(run: Path, test: Path) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The run's outputs for the test split (plain fp32, paper mode, seed 0), and the split's own photos."""
    translator = Translator.load(run, mode="paper", seed=0)
    written = translate_files(translator, [test], run / "translated_test", aligned=True).done
    return [pixels(f.output) for f in written], [pixels(f.target) for f in written]


def add_test_fid(rows: list[dict], scratch: Path, test: Path, network: FeatureNetwork) -> None:
    """Each run's FID against the test photos, whose features are computed once."""
    reference = None
    for row in rows:
        outputs, photos = test_outputs(scratch / f"{row['precision']}_seed{row['seed']}", test)
        if reference is None:
            reference = network.features(photos)
        row["test FID"] = round(frechet_distance(network.features(outputs), reference), 2)


def pixels(path: Path) -> torch.Tensor:
    """An 8-bit RGB file as 3 x H x W in [-1, 1]."""
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)


def summary(rows: list[dict], metric: str) -> dict:
    """bf16 against fp32 at each seed, and fp32's own spread over seeds, as fractions of fp32's mean `metric`."""
    value = {(r["precision"], r["seed"]): r[metric] for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    fp32 = [value["fp32", s] for s in seeds]
    mean = statistics.mean(fp32)
    return {f"fp32 mean {metric}": round(mean, 4),
            f"bf16 mean {metric}": round(statistics.mean(value["bf16", s] for s in seeds), 4),
            "bf16 - fp32 per seed (of fp32 mean)": [round((value["bf16", s] - value["fp32", s]) / mean, 4)
                                                    for s in seeds],
            "fp32 spread over seeds (max - min, of mean)": round((max(fp32) - min(fp32)) / mean, 4)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--fid-network", type=Path, help="TorchScript Inception file: also score each run by FID")
    parser.add_argument("--fid-images", type=int, default=200, help="held-out pairs FID is computed on")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        network = FeatureNetwork.load(args.fid_network) if args.fid_network else None
    except FIDError as err:
        sys.exit(f"bf16_quality.py: {err}")
    if not native_bf16():
        print("note: this CPU has no native bf16; bf16 runs with the same rounding but slowly, so its s/it is not "
              "representative", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bf16_quality_") as scratch:
        data = Path(scratch) / "data"
        generate_facades(data, train=TRAIN_IMAGES, val=VAL_IMAGES, test=args.fid_images if network else TEST_IMAGES,
                         size=args.size, seed=0)
        rows = [one_run(data, Path(scratch), args.size, args.steps, seed, precision)
                for seed in args.seeds for precision in PRECISIONS]
        if network:
            add_test_fid(rows, Path(scratch), data / "test", network)
        deviation = [row for seed in args.seeds
                     for row in translation_deviation(Path(scratch) / f"fp32_seed{seed}", data / "val", seed)]
    print_table(rows, ["seed", "precision", "steps", "val L1 at 0", "val L1", *(["test FID"] if network else []),
                       "s/it", "cpu/wall"])
    result = {"val L1": summary(rows, "val L1"), **({"test FID": summary(rows, "test FID")} if network else {})}
    print(json.dumps(result, indent=2))
    print("\nTranslating each fp32 run's val split with --precision bf16 and --compile against fp32 (8-bit levels):")
    print_table(deviation, list(deviation[0]))
    payload = {"machine": machine(), "native_bf16": native_bf16(), "size": args.size,
               "fid_network": str(args.fid_network) if network else None, "rows": rows,
               "summary": result, "translation_deviation": deviation}
    print(f"\nwrote {write_json(f'bf16_quality_{args.size}', payload)}")


if __name__ == "__main__":
    main()
