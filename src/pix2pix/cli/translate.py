"""`pix2pix translate` and `pix2pix export`: a trained run applied to images, or written out for other runtimes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pix2pix.cli.common import HelpFormatter, add_translator_flags, translator_options
from pix2pix.config import ConfigError
from pix2pix.export import FORMATS
from pix2pix.models import MODES


def add_commands(commands: argparse._SubParsersAction) -> None:
    translate = commands.add_parser("translate", help="translate images of any size with a trained run",
                                    formatter_class=HelpFormatter)
    translate.add_argument("run", type=Path, help="run folder written by `pix2pix train`")
    translate.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="image files or folders")
    translate.add_argument("--out", type=Path, required=True, help="folder for outputs and report.html")
    translate.add_argument("--mode", choices=MODES, default="paper",
                           help="paper: dropout on and batch statistics, as in the paper; eval: deterministic")
    translate.add_argument("--seed", type=int, default=None, help="makes paper-mode outputs reproducible")
    translate.add_argument("--aligned", action="store_true",
                           help="inputs are A|B pairs: translate the input half, also write the target")
    add_translator_flags(translate)
    translate.set_defaults(handler=cmd_translate)

    export = commands.add_parser("export", help="write a run's generator as ONNX or TorchScript, for other runtimes",
                                 formatter_class=HelpFormatter,
                                 description="Writes RUN/generator-MODE.onnx or .pt (dynamic batch, height and width: "
                                             "multiples of the U-Net's multiple). Paper mode's ONNX graph takes its "
                                             "dropout masks as inputs mask_0, mask_1, ...; its TorchScript draws them "
                                             "from torch's generator (torch.manual_seed). See pix2pix/export.py. ONNX "
                                             "needs pip install \"pix2pix[onnx]\".")
    export.add_argument("run", type=Path, help="run folder written by `pix2pix train`")
    export.add_argument("--format", choices=list(FORMATS), default="onnx",
                        help="onnx (ONNX Runtime and others) or torchscript (torch.jit.load, libtorch)")
    export.add_argument("--mode", choices=MODES, nargs="+", default=list(MODES),
                        help="test-time modes to export, one file each")
    export.add_argument("--out", type=Path, default=argparse.SUPPRESS, metavar="FILE",
                        help="the file to write, for one --mode (default: RUN/generator-MODE.onnx or .pt)")
    export.set_defaults(handler=cmd_export)


def cmd_translate(args: argparse.Namespace) -> int:
    from pix2pix.evaluation.report import ReportRow, write_translation_report
    from pix2pix.inference import Translator, translate_files

    translator = Translator.load(args.run, mode=args.mode, seed=args.seed, **translator_options(args))
    summary = translate_files(translator, args.inputs, args.out, aligned=args.aligned)
    rows = [ReportRow(f.name, f.input, f.output, f.target) for f in summary.done]
    if rows:
        report = write_translation_report(args.out, rows, f"pix2pix translations ({args.mode} mode)", args.run)
        print(f"Translated {len(rows)} image(s) into {args.out}. Report: {report}")
    for failure in summary.failed:
        print(f"failed: {failure}", file=sys.stderr)
    if summary.failed or not rows:
        print(f"pix2pix: {len(summary.failed)} of {len(summary.failed) + len(rows)} input(s) failed",
              file=sys.stderr)
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pix2pix.export import export_run
    from pix2pix.runs import RunDir, load_generator

    modes, out = list(dict.fromkeys(args.mode)), getattr(args, "out", None)
    if out is not None and len(modes) > 1:
        raise ConfigError(f"`out` names one file, and {len(modes)} modes were asked for; choose one `mode` "
                          f"({' or '.join(modes)})")
    run = RunDir(args.run)
    generator, _ = load_generator(run)
    for mode in modes:
        path = export_run(run, generator, mode, args.format, out)
        print(f"Wrote {path} ({mode} mode, {args.format})")
    return 0
