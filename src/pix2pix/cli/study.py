"""`pix2pix study ...`: the paper's real-vs-fake perceptual study. `create` prepares a study folder, `serve` runs
the page that raters answer, `results` prints and writes the share of fakes taken for real. The library raises
StudyError, which `pix2pix.cli.main` reports on one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pix2pix.cli.common import HelpFormatter, number_in, positive_int
from pix2pix.config import NOT_NEGATIVE
from pix2pix.evaluation.metrics import MissingDependency
from pix2pix.study.settings import StudyError, StudySettings

INSTALL_HINT = 'pip install "pix2pix[study]"'
DEFAULTS = StudySettings()
non_negative_int = number_in(int, NOT_NEGATIVE)


def add_commands(commands: argparse._SubParsersAction) -> None:
    study = commands.add_parser("study", help="the paper's real-vs-fake perceptual study, in the browser",
                                formatter_class=HelpFormatter,
                                description="Raters see a real and a fake image side by side for a moment, then say "
                                            "which was fake.\nEach rater tests one model (condition); `results` "
                                            "reports how often the fake was taken for real (50% = cannot tell).\n"
                                            f"`serve` and `results` need {INSTALL_HINT}.")
    tools = study.add_subparsers(dest="tool", required=True, metavar="TOOL")
    for add in (_add_create, _add_serve, _add_results):
        add(tools)


def _add_create(tools: argparse._SubParsersAction) -> None:
    create = tools.add_parser("create", formatter_class=HelpFormatter, help="prepare a study folder",
                              description="Copies the real images and each model's outputs into the folder NAME at "
                                          "the display size (PNG, centre-cropped to a square), and stores the "
                                          "settings in NAME/study.json. Images pair by file name without extension; "
                                          "a folder written by `pix2pix evaluate` or `translate --aligned` gives "
                                          "its outputs as fakes and its NAME_target files as reals.")
    create.add_argument("name", type=Path, metavar="NAME", help="the study folder to make")
    create.add_argument("--real", type=Path, required=True, metavar="DIR", help="folder of real images")
    create.add_argument("--fake", action="append", required=True, metavar="LABEL=DIR",
                        help="a model's outputs and the condition's label; repeat for each model")
    create.add_argument("--paired", action="store_true",
                        help="real and fake of a trial from the same input (colorization style); by default from "
                             "different inputs (maps style, harder)")
    create.add_argument("--practice", type=non_negative_int, default=DEFAULTS.practice,
                        help="practice trials first, with feedback")
    create.add_argument("--test", type=positive_int, default=DEFAULTS.test, help="test trials, without feedback")
    create.add_argument("--exposure", dest="exposure_s", metavar="SECONDS", default=DEFAULTS.exposure_s,
                        type=number_in(float, ("in (0, 60]", lambda s: 0 < s <= 60)),
                        help="seconds the two images are shown")
    create.add_argument("--size", type=positive_int, default=DEFAULTS.size, help="display size in pixels (square)")
    create.add_argument("--catch", type=non_negative_int, default=DEFAULTS.catch,
                        help="test trials whose fake is an obviously broken image (attention check, not counted)")
    create.add_argument("--catch-pass", type=number_in(float, ("in [0, 1]", lambda s: 0 <= s <= 1)),
                        default=DEFAULTS.catch_pass,
                        help="share of catch trials a rater must get right to be counted")
    create.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seeds the conditions' order and schedules")
    create.set_defaults(handler=cmd_create)


def cmd_create(args: argparse.Namespace) -> int:
    from pix2pix.study.create import create_study, parse_fake

    fakes = dict(parse_fake(text) for text in args.fake)
    if len(fakes) < len(args.fake):
        raise StudyError("`fake`: each LABEL once")
    settings = StudySettings(args.practice, args.test, args.exposure_s, args.size, args.paired, args.catch,
                             args.catch_pass, args.seed)
    created = create_study(args.name, args.real, fakes, settings, progress=_progress)
    study = created.study
    print(f"Made the study {args.name}: {len(study.conditions)} condition(s) ({', '.join(study.conditions)}), "
          f"{len(study.real)} real image(s), {len(next(iter(study.fakes.values())))} fake image(s) per condition.")
    if created.left_out:
        print(f"{created.left_out} image(s) left out: their input is not in every --fake folder"
              f"{' and --real' if settings.paired else ''}.")
    print(f"Serve it with: pix2pix study serve {args.name}")
    return 0


def _progress(done: int, total: int) -> None:
    if sys.stdout.isatty():
        print(f"\rCopying images: {done}/{total}", end="\n" if done == total else "", flush=True)


def _add_serve(tools: argparse._SubParsersAction) -> None:
    serve = tools.add_parser("serve", formatter_class=HelpFormatter, help="serve the study page to raters",
                             description="Serves the study page and records every answer in NAME/answers.sqlite as "
                                         "it comes. Raters open http://HOST:PORT/ (add ?rater=ID to name a rater; "
                                         "otherwise each browser gets its own id) and continue where they left "
                                         "off after closing the page. Stop with Ctrl-C.")
    serve.add_argument("name", type=Path, metavar="NAME", help="the study folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for other machines)")
    serve.add_argument("--port", type=number_in(int, ("in [1, 65535]", lambda n: 1 <= n <= 65535)), default=8000,
                       help="port to listen on")
    serve.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from pix2pix.study.settings import load_study

    study = load_study(args.name)
    try:
        from pix2pix.study.app import serve
    except ImportError as err:
        raise MissingDependency(f"`study serve` needs FastAPI and uvicorn ({err.name} is missing): "
                                f"{INSTALL_HINT}") from err
    print(f"Serving the study {args.name} on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    serve(study, args.host, args.port)
    return 0


def _add_results(tools: argparse._SubParsersAction) -> None:
    results = tools.add_parser("results", formatter_class=HelpFormatter, help="the share of fakes taken for real",
                               description="Prints, per condition, the share of test trials in which the fake was "
                                           "taken for real: mean ± standard error over raters and a 95% confidence "
                                           "interval (Student's t over raters). Counts raters who finished and "
                                           "passed the attention rule; the others are shown apart. Writes "
                                           "NAME/results/summary.csv, raters.csv, answers.csv and index.html.")
    results.add_argument("name", type=Path, metavar="NAME", help="the study folder")
    results.set_defaults(handler=cmd_results)


def cmd_results(args: argparse.Namespace) -> int:
    from pix2pix.study.results import format_report, study_results, write_results
    from pix2pix.study.settings import load_study

    try:
        import scipy.stats  # noqa: F401  (the confidence intervals)
    except ImportError as err:
        raise MissingDependency(f"`study results` needs scipy: {INSTALL_HINT}") from err
    results = study_results(load_study(args.name))
    print(format_report(results))
    page = write_results(results)
    print(f"Wrote {page.parent}/summary.csv, raters.csv, answers.csv and {page.name}.")
    return 0
