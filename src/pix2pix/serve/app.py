"""The HTTP API and the page: `create_app(translator)` for tests and embedding, `serve(...)` to run it in uvicorn."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from pix2pix.config import ConfigError
from pix2pix.inference import Translator
from pix2pix.serve.palette import LabelClass
from pix2pix.serve.translation import Limits, Refused, TranslationService
from pix2pix.serve.upload import image_bytes, read_body

STATIC = Path(__file__).parent / "static"
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'")
"""The page loads nothing from elsewhere (it works offline), and the browser is told to refuse it if it tried."""

Mode = Literal["paper", "eval"]
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "image": {"type": "string", "format": "binary", "description": "any file field; the first one is used"}}}},
    **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in IMAGE_TYPES}}}}
ERRORS = {400: "a damaged image, an empty body or a form without a file", 413: "over the upload or pixel limit",
          415: "not a PNG, JPEG or WebP image", 422: "channels the run cannot take, or a bad query option",
          503: "the translation queue is full: retry after Retry-After seconds"}


def model_info(translator: Translator, palette: list[LabelClass] | None, palette_file: Path | None,
               limits: Limits, examples: int) -> dict[str, Any]:
    """What the page and API clients need to know about the model behind the server."""
    config = translator.config
    input_nc, output_nc = config.channels
    run = translator.run
    return {
        "run": str(run.path) if run else None, "step": run.generator_step() if run else None,
        "direction": config.data.direction, "input_nc": input_nc, "output_nc": output_nc,
        "crop_size": config.data.crop_size, "multiple": translator.generator.multiple,
        "mode": translator.mode, "device": str(translator.device), "backend": translator.backend,
        "dtype": str(translator.dtype).removeprefix("torch."), "compiled": translator.compiled,
        "palette": [{"name": c.name, "color": list(c.color)} for c in palette] if palette else None,
        "palette_file": str(palette_file) if palette_file else None, "examples": examples,
        "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels,
                   "queue": limits.queue},
        "config": config.to_dict(),
    }


def check_servable(translator: Translator) -> None:
    """Uploads are PNG, JPEG or WebP and outputs PNG: 1 to 4 channels each way."""
    for side, channels in zip(("input", "output"), translator.config.channels):
        if not 1 <= channels <= 4:
            raise ConfigError(f"the run's {side} has {channels} channels; serving takes and gives PNG-like images "
                              "of 1 to 4 channels: use `pix2pix translate` for it")


def create_app(translator: Translator, limits: Limits | None = None, palette: list[LabelClass] | None = None,
               palette_file: Path | None = None, examples: list[bytes] | None = None) -> FastAPI:
    """The app serving `translator`, with the page's label colours and starting examples (PNGs); its worker thread
    stops when the app shuts down."""
    check_servable(translator)
    limits = limits or Limits()
    service = TranslationService(translator, limits)
    examples = examples or []
    info = model_info(translator, palette, palette_file, limits, len(examples))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.close()

    app = FastAPI(title="pix2pix", lifespan=lifespan,
                  description="Image-to-image translation with a trained pix2pix run. `POST /api/translate` takes "
                              "an image (PNG, JPEG or WebP; multipart upload or raw body) and gives a PNG.")
    app.state.service = service
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(Refused)
    async def refused(request: Request, err: Refused) -> JSONResponse:
        return JSONResponse({"detail": err.detail}, err.status, headers=err.headers)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY,
                                                             "Cache-Control": "no-cache"})

    @app.get("/api/health", summary="Answers while translations run")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "pending": service.pending, "capacity": service.capacity,
                "translated": service.translated}

    @app.get("/api/info", summary="The model: config, direction, channels, palette of label-map inputs, limits")
    async def model() -> dict[str, Any]:
        return info

    @app.get("/api/examples/{index}", summary="An input of the run's dataset (PNG), for the page to start from",
             response_class=Response, responses={200: {"content": {"image/png": {}}}, 404: {"description": "none"}})
    async def example(index: int) -> Response:
        if not 0 <= index < len(examples):
            raise Refused(404, f"no example {index}: this server has {len(examples)} (GET /api/info)")
        return Response(examples[index], media_type="image/png")

    @app.post("/api/translate", summary="Translate one image; PNG out", response_class=Response,
              responses={200: {"content": {"image/png": {}}},
                         **{code: {"description": text} for code, text in ERRORS.items()}},
              openapi_extra=UPLOAD_BODY)
    async def translate(request: Request, mode: Annotated[Mode | None, Query(
                            description="paper: dropout on and batch statistics, as in the paper; eval: "
                                        "deterministic; default: the server's --mode")] = None,
                        seed: Annotated[int | None, Query(ge=0, le=2**63 - 1,
                                                          description="makes paper mode reproducible")] = None
                        ) -> Response:
        with service.admitted():
            body = await read_body(request, limits.max_upload_bytes)
            data = image_bytes(body, request.headers.get("content-type", ""))
            png = await service.translate(data, mode or translator.mode, seed)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    return app


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Runs the app in uvicorn until Ctrl-C or SIGTERM."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
