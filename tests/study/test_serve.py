"""`pix2pix study serve` in its own process on 127.0.0.1: answers survive a killed server, raters answering at once
keep their own answers, and the page is never told which image is fake."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pix2pix.study.create import create_study
from pix2pix.study.settings import StudySettings
from tests.study.conftest import Server, free_port, serve

RATERS = 6


@pytest.fixture
def study_dir(model_folders, tmp_path):
    real, fakes = model_folders
    return create_study(tmp_path / "study", real, fakes, StudySettings(practice=1, test=4, size=32)).study.folder


def answer(client: httpx.Client, url: str, rater: str, trial: int, side: str, reaction_ms: float) -> dict:
    body = {"rater": rater, "trial": trial, "answer": side, "exposure_ms": 1000.0, "reaction_ms": reaction_ms}
    reply = client.post(url + "api/answer", json=body)
    reply.raise_for_status()
    return reply.json()


def stored(study_dir) -> list[tuple]:
    with sqlite3.connect(study_dir / "answers.sqlite") as db:
        return db.execute("SELECT rater, trial, answer, reaction_ms FROM answers ORDER BY rater, trial").fetchall()


def test_answers_survive_the_server_being_killed_between_two_answers(study_dir):
    server = Server(study_dir, free_port()).start()
    try:
        with httpx.Client(timeout=10) as client:
            client.post(server.url + "api/session", json={"rater": "ann"}).raise_for_status()
            assert answer(client, server.url, "ann", 0, "left", 321.0)["new"]
            server.kill()
            server.start()
            session = client.post(server.url + "api/session", json={"rater": "ann"}).json()
            assert session["answered"] == 1 and not session["done"]
            assert not answer(client, server.url, "ann", 0, "right", 1.0)["new"]  # resent: the first one stands
            answer(client, server.url, "ann", 1, "right", 654.0)
    finally:
        server.stop()
    assert stored(study_dir) == [("ann", 0, "left", 321.0), ("ann", 1, "right", 654.0)]


def test_raters_answering_at_once_neither_lose_nor_mix_answers(study_dir):
    def session_of(index: int) -> str:
        rater = f"rater{index}"
        with httpx.Client(timeout=30) as client:
            trials = client.post(url + "api/session", json={"rater": rater}).json()["trials"]
            side = "left" if index % 2 else "right"
            for trial in trials:
                answer(client, url, rater, trial["trial"], side, 1000 * index + trial["trial"])
        return rater

    for server in serve(study_dir):
        url = server.url
        with ThreadPoolExecutor(RATERS) as pool:
            raters = list(pool.map(session_of, range(RATERS)))
        with httpx.Client() as client:  # a finished rater cannot start again
            assert client.post(url + "api/session", json={"rater": "rater0"}).json()["done"]
    expected = [(f"rater{i}", trial, "left" if i % 2 else "right", 1000.0 * i + trial)
                for i in range(RATERS) for trial in range(5)]
    assert stored(study_dir) == sorted(expected) and len(raters) == RATERS
    with sqlite3.connect(study_dir / "answers.sqlite") as db:
        arrivals = sorted(row[0] for row in db.execute("SELECT arrival FROM raters"))
        conditions = dict(db.execute("SELECT condition, COUNT(*) FROM raters GROUP BY condition").fetchall())
    assert arrivals == list(range(RATERS)) and conditions == {"L1": 3, "L1+cGAN": 3}


def test_the_page_is_not_told_which_image_is_fake(study_dir):
    for server in serve(study_dir):
        with httpx.Client(timeout=10) as client:
            session = client.post(server.url + "api/session", json={"rater": "ann"}).json()
            page = client.get(server.url).text
            test_trial = session["trials"][1]
            images = {side: client.get(server.url + test_trial[side]).content for side in ("left", "right")}
            refused = client.post(server.url + "api/answer", json={
                "rater": "ann", "trial": 3, "answer": "left", "exposure_ms": 1000, "reaction_ms": 1})
            bad_rater = client.post(server.url + "api/session", json={"rater": "../x"})
            test_reply = None
            for trial in session["trials"][:2]:
                test_reply = answer(client, server.url, "ann", trial["trial"], "left", 100.0)
    assert "Real or fake?" in page and "http" not in page.replace('lang="en"', "")
    assert "fake" not in str(session["trials"]) and "real" not in str(session["trials"])
    assert "correct" not in test_reply and "fake_side" not in test_reply
    with sqlite3.connect(study_dir / "answers.sqlite") as db:
        real, fake, side = db.execute("SELECT real, fake, fake_side FROM trials WHERE trial = 1").fetchone()
    assert images[side] == (study_dir / fake).read_bytes()
    assert images["left" if side == "right" else "right"] == (study_dir / real).read_bytes()
    assert refused.status_code == 409 and "trial 0 next" in refused.json()["detail"]
    assert bad_rater.status_code == 422
