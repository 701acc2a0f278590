"""`pix2pix import`: a generator trained with the canonical PyTorch repository, or one it publishes, as a run
folder that `translate` and `export` use."""

from __future__ import annotations

import argparse
from pathlib import Path

from pix2pix.canonical import PRETRAINED, default_cache, import_checkpoint, import_pretrained
from pix2pix.cli.common import HelpFormatter
from pix2pix.config import DIRECTIONS


def add_commands(commands: argparse._SubParsersAction) -> None:
    published = "\n".join(f"  {name:20} {direction}  {what}" for name, (direction, what) in PRETRAINED.items())
    parser = commands.add_parser(
        "import", help="a U-Net generator of the canonical PyTorch repository (junyanz/pytorch-CycleGAN-and-pix2pix) "
                       "as a run folder", formatter_class=HelpFormatter,
        description="Reads a *_net_G.pth U-Net checkpoint of the canonical repository (its depth, ngf, norm and "
                    "channels from the tensor names and shapes; loaded with weights_only, never running code) and "
                    "writes a run folder. `pix2pix translate RUN --mode eval` gives the canonical test.py --eval; "
                    "the default paper mode is its test.py without --eval.\n\nPublished models (--pretrained, "
                    f"downloaded from the canonical repository's address; name, direction, what):\n{published}")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("file", type=Path, nargs="?", metavar="FILE.pth", help="the canonical checkpoint to import")
    source.add_argument("--pretrained", metavar="NAME", choices=list(PRETRAINED),
                        help="download a published model instead (opt-in; checked, kept in --cache)")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write (must not be a run yet)")
    parser.add_argument("--direction", choices=DIRECTIONS, default=None,
                        help="which half of aligned A|B files is the input, as the canonical --direction; None: "
                             "AtoB, or the published model's own")
    parser.add_argument("--dropout", action=argparse.BooleanOptionalAction, default=True,
                        help="dropout in paper mode, as the checkpoint was trained (--no-dropout: the canonical "
                             "--no_dropout)")
    parser.add_argument("--cache", type=Path, default=default_cache(), help="folder for downloaded models")
    parser.set_defaults(handler=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    if args.pretrained:
        imported, verified = import_pretrained(args.pretrained, args.out, args.cache, args.direction, args.dropout)
        check = "matches the SHA-256 recorded at its first download" if verified else \
            f"SHA-256 {imported.sha256} recorded for later downloads (none is published)"
        print(f"{args.pretrained}: {check}")
    else:
        imported = import_checkpoint(args.file, args.out, args.direction or "AtoB", args.dropout)
    print(f"Imported a {imported.architecture.describe()} into {imported.run}.\n"
          f"Translate: pix2pix translate {imported.run} INPUT... --out DIR "
          "(--mode eval as the canonical test.py --eval; the default paper mode as its test.py without --eval)")
    return 0
