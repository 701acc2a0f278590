"""`pix2pix serve`: a trained run behind an HTTP API and a page to draw on (the `serve` extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pix2pix.cli.common import HelpFormatter, add_translator_flags, number_in, positive_int, translator_options
from pix2pix.config import NOT_NEGATIVE, POSITIVE
from pix2pix.models import MODES

INSTALL_HINT = 'serving needs FastAPI and uvicorn: pip install "pix2pix[serve]"'


def add_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve", help="serve a run: an HTTP API and a page to draw on and see the translation",
        formatter_class=HelpFormatter,
        description="Open http://HOST:PORT/ to upload or draw an image and see its translation.\nThe API: POST "
                    "/api/translate (PNG, JPEG or WebP in, PNG out), GET /api/info, GET /api/health;\nOpenAPI docs "
                    'at /docs. Needs pip install "pix2pix[serve]".')
    serve.add_argument("run", type=Path, help="run folder written by `pix2pix train`")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on; 0.0.0.0 makes the server reachable from other machines")
    serve.add_argument("--port", type=number_in(int, ("in 0..65535", lambda p: 0 <= p <= 65535)), default=8000,
                       help="port to listen on")
    serve.add_argument("--mode", choices=MODES, default="paper",
                       help="test mode of requests that do not choose one (?mode=): paper (dropout on and batch "
                            "statistics, as in the paper) or eval (deterministic)")
    serve.add_argument("--palette", type=Path, default=None, metavar="FILE",
                       help="palette.json of label-map inputs, for the page's colours; without it, the run's "
                            "dataset folder's is used when the run translates its A side")
    serve.add_argument("--max-upload-mb", type=number_in(float, POSITIVE), default=10.0,
                       help="largest request body, in MB (10^6 bytes); larger ones get 413")
    serve.add_argument("--max-pixels", type=positive_int, default=2048 * 2048,
                       help="largest image, in pixels; larger ones get 413 before they are decoded")
    serve.add_argument("--queue", type=number_in(int, NOT_NEGATIVE), default=8,
                       help="translations that may wait while one runs; more get 503 with Retry-After")
    add_translator_flags(serve)
    serve.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from pix2pix.evaluation.metrics import MissingDependency
    from pix2pix.inference import Translator

    try:
        from pix2pix.serve.app import create_app, serve
    except ImportError as err:
        raise MissingDependency(f"{INSTALL_HINT} ({err})") from err
    from pix2pix.serve.examples import dataset_examples
    from pix2pix.serve.palette import run_palette
    from pix2pix.serve.translation import Limits

    translator = Translator.load(args.run, mode=args.mode, **translator_options(args))
    palette, palette_file = run_palette(translator.config, args.palette)
    limits = Limits(max_upload_bytes=round(args.max_upload_mb * 1e6), max_pixels=args.max_pixels, queue=args.queue)
    examples = dataset_examples(translator.config, label_maps=palette is not None)
    app = create_app(translator, limits, palette, palette_file, examples)
    drawing = (f"label maps in the {len(palette)} colours of {palette_file}" if palette
               else "pen and eraser on white (no palette: give --palette FILE for label maps)")
    print(f"Serving {args.run} at http://{args.host}:{args.port}/ (draw: {drawing}; API docs at /docs). "
          "Ctrl-C stops it.", flush=True)
    serve(app, args.host, args.port)
    return 0
