"""`pix2pix study serve`: the study page and its two calls (a rater's session, an answer) over FastAPI.

The page (static/: HTML, JS and CSS, no external resources) times each exposure by the browser's animation frames
and sends the exposure it measured with each answer. The server never tells the page which side is fake in a test
trial, neither by its answers nor by the images' addresses: it says whether an answer was right only for practice
trials, after storing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from pix2pix.study.schedule import LEFT, PRACTICE, Trial
from pix2pix.study.settings import Study
from pix2pix.study.store import AnswerRefused, Session, Store

STATIC = Path(__file__).parent / "static"
RATER = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_MS = 3_600_000.0


class SessionRequest(BaseModel):
    rater: str = Field(pattern=RATER)


class AnswerRequest(BaseModel):
    rater: str = Field(pattern=RATER)
    trial: int = Field(ge=0)
    answer: Literal["left", "right"]
    """The side the rater took for the fake."""
    exposure_ms: float = Field(ge=0, le=MAX_MS)
    reaction_ms: float = Field(ge=0, le=MAX_MS)


def create_app(study: Study) -> FastAPI:
    """The study's web app; every answer is in the study's database before the page hears it was recorded."""
    store = Store(study)
    app = FastAPI(title="pix2pix perceptual study", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/study")
    def study_id() -> dict:
        return {"study": study.id}

    @app.post("/api/session")
    def session(request: SessionRequest, http: Request) -> dict:
        return _session_json(store.session(request.rater, http.headers.get("user-agent", "")), study)

    @app.post("/api/answer")
    def answer(request: AnswerRequest) -> dict:
        try:
            recorded = store.record(request.rater, request.trial, request.answer, request.exposure_ms,
                                    request.reaction_ms)
        except AnswerRefused as err:
            raise HTTPException(status_code=409, detail=str(err)) from err
        reply = {"recorded": True, "new": recorded.new, "next": request.trial + 1}
        if recorded.trial.phase == PRACTICE:
            reply["correct"] = recorded.correct
            reply["fake_side"] = recorded.trial.fake_side
        return reply

    @app.get("/api/image/{rater}/{trial}/{side}")
    def image(rater: str, trial: int, side: Literal["left", "right"]) -> FileResponse:
        shown = store.trial(rater, trial)
        if shown is None:
            raise HTTPException(status_code=404, detail=f"rater {rater!r} has no trial {trial}")
        path = shown.fake if (side == LEFT) == (shown.fake_side == LEFT) else shown.real
        return FileResponse(study.folder / path, media_type="image/png", headers={"Cache-Control": "private"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(study: Study, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serves the study until interrupted (uvicorn's own Ctrl-C and SIGTERM handling)."""
    import uvicorn

    uvicorn.run(create_app(study), host=host, port=port, log_level="warning")


def _session_json(session: Session, study: Study) -> dict:
    """What the page needs to run the session: each trial's images by side, under addresses that do not tell which
    one is fake."""
    settings = study.settings
    return {"study": study.id, "rater": session.rater, "answered": session.answered, "done": session.done,
            "exposure_ms": 1000 * settings.exposure_s, "size": settings.size, "practice": settings.practice,
            "test": settings.test, "trials": [_trial_json(session.rater, trial) for trial in session.trials]}


def _trial_json(rater: str, trial: Trial) -> dict:
    address = f"api/image/{rater}/{trial.trial}"
    return {"trial": trial.trial, "phase": trial.phase, "left": f"{address}/left", "right": f"{address}/right"}
