"""The HTTP API in-process (FastAPI's TestClient) and over a loopback socket: every endpoint, every refusal."""

from __future__ import annotations

import io
import json
import tempfile
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pix2pix.inference import Translator
from pix2pix.serve.app import create_app
from pix2pix.serve.translation import Limits
from tests.data.conftest import bomb_png
from tests.serve.conftest import noise_png, png_bytes


@pytest.fixture(scope="module")
def translator(served_run) -> Translator:
    return Translator.load(served_run, mode="paper", device="cpu")


def client_for(translator: Translator, **limits) -> TestClient:
    return TestClient(create_app(translator, Limits(**limits)))


@pytest.fixture(scope="module")
def client(translator):
    with client_for(translator) as client:
        yield client


def decoded(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_info_gives_the_models_config_channels_direction_and_its_label_palette(client, facades, served_run):
    from pix2pix.serve.palette import run_palette

    palette, found = run_palette(Translator.load(served_run).config)
    app = create_app(Translator.load(served_run), palette=palette, palette_file=found)
    info = TestClient(app).get("/api/info").json()
    assert (info["direction"], info["input_nc"], info["output_nc"], info["crop_size"]) == ("AtoB", 3, 3, 32)
    assert info["config"]["data"]["data"] == str(facades) and info["config"]["model"]["ngf"] == 8
    classes = json.loads((facades / "palette.json").read_text())["classes"]
    assert info["palette"] == classes and info["palette_file"] == str(facades / "palette.json")
    assert info["limits"] == {"max_upload_bytes": 10_000_000, "max_pixels": 2048 * 2048, "queue": 8}
    assert client.get("/api/info").json()["palette"] is None  # none given


def test_health_and_openapi_docs(client):
    assert client.get("/api/health").json() == {"status": "ok", "pending": 0, "capacity": 9,
                                                "translated": client.get("/api/health").json()["translated"]}
    schema = client.get("/openapi.json").json()
    assert {"/api/translate", "/api/info", "/api/health"} <= set(schema["paths"])
    body = schema["paths"]["/api/translate"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/png", "image/jpeg", "image/webp"} <= set(body)
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_an_upload_or_a_raw_body_gives_a_png_of_the_same_size(client, fmt):
    data = png_bytes(40, 24, fmt=fmt)
    uploaded = decoded(client.post("/api/translate", files={"image": (f"x.{fmt.lower()}", data)}))
    raw = decoded(client.post("/api/translate", content=data, headers={"content-type": f"image/{fmt.lower()}"}))
    assert uploaded.size == raw.size == (40, 24) and uploaded.mode == "RGB"
    assert np.asarray(uploaded).std() > 0  # not a blank image


def test_grayscale_and_alpha_uploads_become_the_runs_rgb_input(client):
    for mode in ("L", "RGBA"):
        assert decoded(client.post("/api/translate", content=png_bytes(33, 17, mode))).size == (33, 17)


def test_eval_mode_is_deterministic_and_a_seed_makes_paper_mode_reproducible(client):
    data = png_bytes(32, 32)

    def translate(**params) -> bytes:
        return client.post("/api/translate", params=params, content=data).content

    assert translate(mode="eval") == translate(mode="eval")
    assert translate(mode="paper", seed=3) == translate(mode="paper", seed=3) != translate(mode="paper", seed=4)
    assert translate(mode="paper", seed=3) != translate(mode="eval")


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return json.dumps(response.json()["detail"])


def test_an_upload_over_the_size_limit_gets_413_declared_or_streamed(translator):
    with client_for(translator, max_upload_bytes=2000) as client:
        big = noise_png(40, 40)
        assert len(big) > 2000
        assert "over the limit of 2,000 bytes" in error(client.post("/api/translate", content=big), 413)
        chunks = (big[i:i + 500] for i in range(0, len(big), 500))  # no Content-Length: counted as it comes
        assert "over the limit" in error(client.post("/api/translate", content=chunks), 413)
        assert client.post("/api/translate", content=png_bytes(8, 8)).status_code == 200


def test_an_image_over_the_pixel_limit_gets_413_before_it_is_decoded(translator):
    with client_for(translator, max_pixels=1000) as client:
        assert "image bomb: 100000x100000" in error(client.post("/api/translate", content=bomb_png()), 413)
        assert "over the limit of 1,000" in error(client.post("/api/translate", content=png_bytes(40, 40)), 413)
        assert client.post("/api/translate", content=png_bytes(40, 24)).status_code == 200


@pytest.mark.parametrize(("body", "status", "says"), [
    (b"%PDF-1.4 not an image", 415, "not a PNG, JPEG or WebP"),
    (png_bytes(fmt="BMP"), 415, "not a PNG, JPEG or WebP"),  # a format Pillow reads, but not one served
    (png_bytes(64, 64)[:-60], 400, "cannot decode"),
    (b"", 400, "empty"),
])
def test_what_is_not_a_decodable_image_gets_415_or_400(client, body, status, says):
    assert says in error(client.post("/api/translate", content=body), status)
    assert says in error(client.post("/api/translate", files={"image": ("x.png", body)}), status)


def test_a_form_without_a_file_and_bad_query_options_are_refused(client):
    assert "no file" in error(client.post("/api/translate", data={"name": "x"}), 400)
    assert "no file" in error(client.post("/api/translate", files={"name": (None, "x")}), 400)
    for content_type, says in (("multipart/form-data; boundary=b", "malformed"), ("multipart/form-data", "boundary")):
        assert says in error(client.post("/api/translate", content=b"x", headers={"content-type": content_type}), 400)
    assert "mode" in error(client.post("/api/translate", params={"mode": "train"}, content=png_bytes()), 422)
    assert "seed" in error(client.post("/api/translate", params={"seed": -1}, content=png_bytes()), 422)


def test_uploads_never_touch_the_disk(client, monkeypatch):
    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was written to a temporary file")

    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, no_disk)
    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", no_disk)
    big = noise_png(900, 700)  # over Starlette's 1 MB spooling threshold for form files
    assert len(big) > 1_100_000
    assert decoded(client.post("/api/translate", files={"image": ("big.png", big)})).size == (900, 700)


def test_health_answers_during_a_translation_and_a_full_queue_gets_503_with_retry_after(translator):
    started, release = threading.Event(), threading.Event()
    with client_for(translator, queue=1) as client:
        service = client.app.state.service
        translate_now = service.translate_now

        def held(*args):
            started.set()
            release.wait(30)
            return translate_now(*args)

        service.translate_now = held
        results = []
        senders = [threading.Thread(target=lambda: results.append(client.post("/api/translate", content=png_bytes())))
                   for _ in range(2)]
        for sender in senders:
            sender.start()
        assert started.wait(30)
        deadline = time.monotonic() + 30
        while client.get("/api/health").json()["pending"] < 2:  # the health check answers while one translates
            assert time.monotonic() < deadline
        refused = client.post("/api/translate", content=png_bytes())
        assert "busy" in error(refused, 503) and int(refused.headers["retry-after"]) >= 1
        release.set()
        for sender in senders:
            sender.join(30)
        assert [r.status_code for r in results] == [200, 200]
        assert client.get("/api/health").json()["pending"] == 0


def test_the_real_server_answers_over_a_loopback_socket(live_server):
    with httpx.Client(base_url=live_server, timeout=30) as http:
        assert http.get("/api/health").json()["status"] == "ok"
        info = http.get("/api/info").json()
        assert info["palette"] and info["palette"][0]["name"] == "background"
        image = decoded(http.post("/api/translate", params={"mode": "eval"},
                                  files={"image": ("x.jpg", png_bytes(48, 40, fmt="JPEG"), "image/jpeg")}))
        assert image.size == (48, 40)
        assert "not a PNG" in error(http.post("/api/translate", content=b"hello"), 415)
        page = http.get("/")
        assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]


def test_examples_are_the_datasets_inputs_at_the_crop_size_in_exact_palette_colours(served_run, facades):
    from pix2pix.serve.examples import dataset_examples
    from pix2pix.serve.palette import run_palette

    translator = Translator.load(served_run)
    palette, _ = run_palette(translator.config)
    examples = dataset_examples(translator.config, label_maps=True)
    with TestClient(create_app(translator, palette=palette, examples=examples)) as client:
        assert client.get("/api/info").json()["examples"] == len(examples) == 4  # the test split's
        first = decoded(client.get("/api/examples/0"))
        assert first.size == (32, 32)
        colours = {tuple(c.color) for c in palette}
        assert {tuple(p) for p in np.asarray(first.convert("RGB")).reshape(-1, 3)} <= colours
        assert "no example 4" in error(client.get("/api/examples/4"), 404)
