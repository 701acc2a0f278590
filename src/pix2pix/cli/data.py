"""`pix2pix data ...`: build, split, download, generate and check paired datasets. Parses flags, calls
`pix2pix.data` and prints what happened; the library raises DataError, which `pix2pix.cli.main` reports."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pix2pix.cli.common import HelpFormatter, positive_int
from pix2pix.config import LAYOUTS
from pix2pix.data.images import DataError
from pix2pix.data.tools import SIZE_MISMATCH

SHOWN_FILES = 20


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`pix2pix data` and its tools."""
    data = commands.add_parser("data", help="build, split, download, generate and check paired datasets",
                               formatter_class=HelpFormatter,
                               description="Dataset tools. Each writes aligned A|B PNGs (A left, B right) or A/ "
                                           "and B/ folders, the layouts `pix2pix train --data` reads.")
    tools = data.add_subparsers(dest="tool", required=True, metavar="TOOL")
    for add in (_add_combine, _add_split, _add_edges, _add_grayscale, _add_download, _add_synth, _add_validate):
        add(tools, HelpFormatter)


# ---------------------------------------------------------------------------------------------------------
# combine


def _add_combine(tools: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    combine = tools.add_parser("combine", formatter_class=formatter, help="pair two folders by file name",
                               description="Pairs the files of A_DIR and B_DIR by name (the extension may differ) "
                                           "into OUT/NAME.png holding A|B, or with --folders into OUT/A and OUT/B.\n"
                                           "Files without a partner are printed and listed in OUT/unpaired.txt.")
    combine.add_argument("a_dir", type=Path, metavar="A_DIR", help="folder of A images (inputs)")
    combine.add_argument("b_dir", type=Path, metavar="B_DIR", help="folder of B images (targets)")
    combine.add_argument("out", type=Path, metavar="OUT", help="output folder")
    combine.add_argument("--folders", action="store_true",
                         help="copy into OUT/A and OUT/B instead of writing aligned A|B images")
    combine.add_argument("--size-mismatch", choices=SIZE_MISMATCH, default="fail",
                         help="when A and B differ in size: stop and list the pairs; resize B to A's size or A to "
                              "B's (bicubic); or leave the pair out")
    combine.set_defaults(handler=cmd_combine)


def cmd_combine(args: argparse.Namespace) -> int:
    from pix2pix.data.tools import combine_folders

    result = combine_folders(args.a_dir, args.b_dir, args.out, folders=args.folders,
                             size_mismatch=args.size_mismatch)
    layout = "pairs into A/ and B/" if args.folders else "aligned A|B images"
    print(f"Wrote {result.written} {layout} in {args.out}.")
    if result.mismatched:
        action = "left out" if args.size_mismatch == "skip" else f"resized ({args.size_mismatch})"
        print(f"{len(result.mismatched)} pair(s) of different sizes {action}:")
        _print_some(result.mismatched)
    if result.unpaired:
        print(f"{len(result.unpaired)} file(s) without a partner, listed in {result.unpaired_list}:")
        _print_some([str(path) for path in result.unpaired])
    return 0


def _print_some(lines: list[str]) -> None:
    for line in lines[:SHOWN_FILES]:
        print(f"  {line}")
    if len(lines) > SHOWN_FILES:
        print(f"  ... and {len(lines) - SHOWN_FILES} more")


# ---------------------------------------------------------------------------------------------------------
# split


def _add_split(tools: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    split = tools.add_parser("split", formatter_class=formatter, help="split a folder into train/val/test",
                             description="Moves the aligned A|B files of DIR (or the pairs of DIR/A and DIR/B) "
                                         "into DIR/train, DIR/val and DIR/test.\nThe same files and seed always "
                                         "give the same split. Refuses a folder that already has splits.")
    split.add_argument("dir", type=Path, metavar="DIR", help="flat folder of aligned files, or with A/ and B/")
    split.add_argument("--val", type=float, default=0.1, help="fraction for validation")
    split.add_argument("--test", type=float, default=0.1, help="fraction for testing")
    split.add_argument("--seed", type=int, default=0, help="seed of the shuffle")
    split.add_argument("--copy", action="store_true", help="copy instead of moving the files")
    split.set_defaults(handler=cmd_split)


def cmd_split(args: argparse.Namespace) -> int:
    from pix2pix.data.tools import split_dataset

    result = split_dataset(args.dir, val=args.val, test=args.test, seed=args.seed, copy=args.copy)
    counts = ", ".join(f"{split} {count}" for split, count in result.counts.items())
    print(f"{'Copied' if args.copy else 'Moved'} {sum(result.counts.values())} {result.layout} pair(s) of "
          f"{args.dir}: {counts}.")
    return 0


# ---------------------------------------------------------------------------------------------------------
# edges and grayscale


def _add_edges(tools: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    edges = tools.add_parser("edges", formatter_class=formatter, help="edges -> photo pairs from photos",
                             description="Like the paper's edges2shoes: OUT/NAME.png = edge map | photo, both "
                                         "resized to --size.\nEdges: Canny (scikit-image, else OpenCV; "
                                         'pip install "pix2pix[edges]"), then 8-connected fragments smaller than '
                                         "--min-edge-pixels are removed;\nblack edges on white.")
    edges.add_argument("src", type=Path, metavar="SRC", help="folder of photos")
    edges.add_argument("out", type=Path, metavar="OUT", help="output folder")
    edges.add_argument("--size", type=positive_int, default=256, help="side of each square half, in pixels")
    edges.add_argument("--sigma", type=float, default=2.0, help="Canny's Gaussian smoothing (larger: fewer edges)")
    edges.add_argument("--min-edge-pixels", type=int, default=10,
                       help="remove edge fragments with fewer pixels than this (0: keep all)")
    edges.set_defaults(handler=cmd_edges)


def cmd_edges(args: argparse.Namespace) -> int:
    from pix2pix.data.tools import make_edges_dataset

    result = make_edges_dataset(args.src, args.out, size=args.size, sigma=args.sigma,
                                min_edge_pixels=args.min_edge_pixels)
    return _report_built(result, args.out, "edges | photo")


def _add_grayscale(tools: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    gray = tools.add_parser("grayscale", formatter_class=formatter, help="grayscale -> colour pairs from photos",
                            description="Colorization pairs: A is the photo in grayscale, B the colour photo, both "
                                        "resized to --size.\n--channels 3 writes aligned OUT/NAME.png; --channels 1 "
                                        "writes OUT/A (one channel) and OUT/B (train with --input-nc 1).")
    gray.add_argument("src", type=Path, metavar="SRC", help="folder of colour photos")
    gray.add_argument("out", type=Path, metavar="OUT", help="output folder")
    gray.add_argument("--size", type=positive_int, default=256, help="side of each square image, in pixels")
    gray.add_argument("--channels", type=int, choices=[1, 3], default=3,
                      help="channels of A: 3 identical ones (aligned files) or 1 (A/ and B/ folders)")
    gray.set_defaults(handler=cmd_grayscale)


def cmd_grayscale(args: argparse.Namespace) -> int:
    from pix2pix.data.tools import make_grayscale_dataset

    result = make_grayscale_dataset(args.src, args.out, size=args.size, channels=args.channels)
    return _report_built(result, args.out, "grayscale | colour")


def _report_built(result, out: Path, what: str) -> int:
    """Exit status 1 when some photos could not be read, like `pix2pix translate`."""
    print(f"Wrote {result.written} {what} pair(s) in {out}.")
    for failure in result.failed:
        print(f"failed: {failure}", file=sys.stderr)
    if result.failed:
        print(f"pix2pix: {len(result.failed)} photo(s) could not be read and were skipped", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------------------
# download, synth, validate


def _add_download(tools: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    from pix2pix.data.download import BASE_URL, DATASETS, MANIFEST

    listing = "\n".join(f"  {name:15} {about}" for name, about in DATASETS.items())
    download = tools.add_parser("download", formatter_class=formatter, help="download one of the paper's datasets",
                                description=f"Downloads BASE_URL/NAME.tar.gz into ROOT, resuming a broken transfer, "
                                            f"and extracts ROOT/NAME.\nNo checksums are published: the first download "
                                            f"records size and SHA-256 in ROOT/{MANIFEST},\nlater ones (and archives "
                                            f"placed in ROOT by hand) are checked against it.\n\n{listing}")
    download.add_argument("name", choices=list(DATASETS), metavar="NAME", help="dataset name (listed above)")
    download.add_argument("--root", type=Path, default=Path("datasets"), help="folder for the archive and dataset")
    download.add_argument("--base-url", default=BASE_URL, help="where the archives are published (or a mirror)")
    download.add_argument("--keep-archive", action="store_true", help="keep NAME.tar.gz after extracting it")
    download.set_defaults(handler=cmd_download)


def cmd_download(args: argparse.Namespace) -> int:
    from pix2pix.data.download import MANIFEST, download_dataset

    result = download_dataset(args.name, args.root, base_url=args.base_url, keep_archive=args.keep_archive)
    if result.size is None:
        print(f"{result.folder} is already there; delete it to download again.")
        return 0
    check = "matches the recorded" if result.verified else f"recorded in {args.root / MANIFEST}:"
    print(f"Extracted {result.folder}. Archive {result.size} bytes, SHA-256 {check} {result.sha256}.")
    return 0


def _add_synth(tools: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    synth = tools.add_parser("synth", formatter_class=formatter, help="generate the embedded facades dataset",
                             description="Procedural labels -> photo facades (no download), as aligned A|B PNGs in "
                                         "OUT/train, val and test, plus OUT/palette.json. Deterministic by seed.")
    synth.add_argument("out", type=Path, metavar="OUT", help="output folder")
    synth.add_argument("--train", type=int, default=400, help="training pairs")
    synth.add_argument("--val", type=int, default=50, help="validation pairs")
    synth.add_argument("--test", type=int, default=50, help="test pairs")
    synth.add_argument("--size", type=int, default=256, help="image side in pixels (at least 32)")
    synth.add_argument("--seed", type=int, default=0, help="seed of every image")
    synth.set_defaults(handler=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> int:
    from pix2pix.data.synthetic import generate_facades

    try:
        generate_facades(args.out, train=args.train, val=args.val, test=args.test, size=args.size, seed=args.seed)
    except ValueError as err:
        raise DataError(f"{args.out}: {err}") from err
    print(f"Wrote {args.train} train, {args.val} val and {args.test} test pairs of {args.size} px in {args.out}.")
    return 0


def _add_validate(tools: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    validate = tools.add_parser("validate", formatter_class=formatter, help="check a dataset before training",
                                description="Checks DIR as `pix2pix train --data DIR` would read it, prints a "
                                            "summary and writes it as JSON. Exit status 1 when problems are found.")
    validate.add_argument("dir", type=Path, metavar="DIR", help="dataset folder")
    validate.add_argument("--json", type=Path, default=None, help="report file; None: NAME-validation.json here")
    validate.add_argument("--crop-size", type=positive_int, default=None,
                          help="the training crop size, to check the images against")
    validate.add_argument("--layout", choices=LAYOUTS, default="auto",
                          help="aligned A|B files, or A/ and B/ folders")
    validate.set_defaults(handler=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    from pix2pix.atomic import write_text_atomic
    from pix2pix.data.validate import validate_dataset

    report = validate_dataset(args.dir, layout=args.layout, crop_size=args.crop_size)
    print(report.summary())
    target = args.json or Path(f"{args.dir.resolve().name}-validation.json")
    write_text_atomic(target, json.dumps(report.to_json(), indent=2) + "\n")
    print(f"Report written to {target}.")
    return 0 if report.ok else 1
