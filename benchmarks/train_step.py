"""Seconds per training iteration at the paper's defaults: the project's paths against a naive baseline.

    python benchmarks/train_step.py                  # 256x256, batch 1 and 4
    python benchmarks/train_step.py --size 128 --batch 1 --repeats 5

The baseline is what a straightforward implementation does: the same models and losses in fp32, eager, NCHW,
built from PyTorch's own layers, with PyTorch's default (unfused, per-parameter) Adam. Every variant runs in this
one process, interleaved, so a noisy host slows them alike; the table gives ratios to the baseline measured in the
same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from common import interleave, machine, matmul_peak, peak_rss_mib, print_table, starved, write_json  # noqa: E402

from pix2pix.config import RunConfig  # noqa: E402
from pix2pix.models.layers import UpConv  # noqa: E402
from pix2pix.training.step import Pix2PixTrainer  # noqa: E402


def as_plain_pytorch(net: torch.nn.Module) -> None:
    """The project's transposed convolutions back to PyTorch's own (same parameters, PyTorch's kernels)."""
    for module in net.modules():
        if isinstance(module, UpConv):
            module.__class__ = torch.nn.ConvTranspose2d


def naive_trainer(config: RunConfig) -> Pix2PixTrainer:
    """The project's models in plain PyTorch layers, with PyTorch's default Adam."""
    trainer = Pix2PixTrainer(config, torch.device("cpu"))
    as_plain_pytorch(trainer.generator)
    t = config.train
    for name, net in (("generator", trainer.generator), ("discriminator", trainer.discriminator)):
        trainer.optimizers[name] = torch.optim.Adam(net.parameters(), lr=t.lr, betas=(t.beta1, t.beta2),
                                                    foreach=False)
    return trainer


def project_trainer(config: RunConfig) -> Pix2PixTrainer:
    return Pix2PixTrainer(config, torch.device("cpu"))


VARIANTS = {"naive fp32 baseline": naive_trainer, "pix2pix fp32 (default)": project_trainer}


def flops_per_step(trainer: Pix2PixTrainer, batch: dict) -> int:
    with FlopCounterMode(display=False) as counter:
        trainer.step(batch)
    return counter.get_total_flops()


def measure(size: int, batch_size: int, repeats: int) -> list[dict]:
    config = RunConfig().updated({"crop_size": size, "load_size": size, "batch_size": batch_size})
    torch.manual_seed(0)
    batch = {"input": torch.rand(batch_size, 3, size, size) * 2 - 1,
             "target": torch.rand(batch_size, 3, size, size) * 2 - 1}
    trainers = {name: build(config) for name, build in VARIANTS.items()}
    flops = flops_per_step(next(iter(trainers.values())), batch)
    peak = matmul_peak()
    timings = interleave({name: (lambda t=t: t.step(batch)) for name, t in trainers.items()}, repeats)
    base = timings["naive fp32 baseline"].median
    rows = []
    for name, timing in timings.items():
        low, high = timing.spread
        rows.append({"variant": name, "size": size, "batch": batch_size,
                     "s/it": f"{timing.median:.3f}", "spread": f"{low:.3f}-{high:.3f}",
                     "s/image": f"{timing.median / batch_size:.3f}", "speedup": f"{base / timing.median:.2f}x",
                     "GFLOP/s": f"{flops / timing.median / 1e9:.0f}",
                     "of peak": f"{flops / timing.median / 1e9 / peak:.0%}",
                     "cpu/wall": f"{sorted(timing.cpu_ratios)[len(timing.cpu_ratios) // 2]:.2f}",
                     "walls": timing.walls, "gflop_per_step": flops / 1e9, "matmul_peak_gflops": peak})
    if starved(timings, torch.get_num_threads()):
        print(f"WARNING: starved host at size {size} batch {batch_size}: CPU time per wall second is far below "
              f"{torch.get_num_threads()} threads; these timings are not representative.", file=sys.stderr)
        for row in rows:
            row["starved"] = True
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = [row for batch in args.batch for row in measure(args.size, batch, args.repeats)]
    print_table(rows, ["variant", "size", "batch", "s/it", "spread", "s/image", "speedup", "GFLOP/s", "of peak",
                       "cpu/wall"])
    path = write_json(f"train_step_{args.size}", {"machine": machine(), "peak_rss_mib": peak_rss_mib(), "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
