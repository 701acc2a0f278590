"""Dataset downloads against a local HTTP server: resume, checksums, safe extraction and the offline message."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
from collections import namedtuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data import download
from pix2pix.data.download import MANIFEST, download_dataset, extract_safely
from pix2pix.data.images import DataError

UNREACHABLE = "http://127.0.0.1:9/"


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


FACADES = _tar_gz({"facades/train/1.png": _png(1), "facades/val/2.png": _png(2),
                   "facades/noise.bin": np.random.default_rng(3).bytes(40_000)})


class Served:
    """What the test server sends (all of `payload`, or only up to `cut_at`) and the Range headers it saw."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.cut_at: int | None = None
        self.honour_range = True
        self.ranges: list[str | None] = []
        self.url = ""


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.endswith("/facades.tar.gz"):
                self.send_error(404)
                return
            requested = self.headers.get("Range")
            served.ranges.append(requested)
            total = len(served.payload)
            start = int(requested.removeprefix("bytes=").rstrip("-")) if requested and served.honour_range else 0
            if start >= total > 0 and requested:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
            self.send_header("Content-Length", str(total - start))
            self.end_headers()
            end = total if served.cut_at is None else served.cut_at
            self.wfile.write(served.payload[start:end])
            self.close_connection = True

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def server():
    served = Served(FACADES)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{httpd.server_port}/pix2pix/datasets"
    yield served
    httpd.shutdown()
    httpd.server_close()


def _get(root: Path, url: str, **options):
    return download_dataset("facades", root, base_url=url, progress=False, timeout=5, **options)


def test_download_extracts_records_the_checksum_and_then_needs_no_network(server, tmp_path):
    result = _get(tmp_path, server.url)
    assert result.folder == tmp_path / "facades" and not result.verified
    assert (tmp_path / "facades" / "train" / "1.png").read_bytes() == _png(1)
    record = json.loads((tmp_path / MANIFEST).read_text())["facades"]
    assert record == {"url": f"{server.url}/facades.tar.gz", "size": len(FACADES),
                      "sha256": hashlib.sha256(FACADES).hexdigest()}
    assert not (tmp_path / "facades.tar.gz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["facades", MANIFEST]
    again = _get(tmp_path, UNREACHABLE)
    assert again.folder == result.folder and again.size is None


def test_a_broken_transfer_resumes_with_a_range_request(server, tmp_path):
    server.cut_at = len(FACADES) // 3
    with pytest.raises(DataError, match="run the same command again to resume"):
        _get(tmp_path, server.url)
    part = tmp_path / "facades.tar.gz.part"
    assert part.read_bytes() == FACADES[:server.cut_at]
    server.cut_at = None
    result = _get(tmp_path, server.url, keep_archive=True)
    assert server.ranges == [None, f"bytes={len(FACADES) // 3}-"]
    assert (tmp_path / "facades.tar.gz").read_bytes() == FACADES and not part.exists()
    assert result.sha256 == hashlib.sha256(FACADES).hexdigest()


def test_a_server_that_ignores_range_restarts_the_file(server, tmp_path):
    (tmp_path / "facades.tar.gz.part").write_bytes(b"stale bytes")
    server.honour_range = False
    _get(tmp_path, server.url, keep_archive=True)
    assert (tmp_path / "facades.tar.gz").read_bytes() == FACADES


def test_a_complete_part_file_is_used_when_the_server_has_nothing_more(server, tmp_path):
    (tmp_path / "facades.tar.gz.part").write_bytes(FACADES)
    assert _get(tmp_path, server.url).size == len(FACADES)
    assert server.ranges == [f"bytes={len(FACADES)}-"]


def test_a_checksum_mismatch_stops_before_extracting(server, tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"facades": {"size": len(FACADES), "sha256": "0" * 64}}))
    with pytest.raises(DataError, match=r"facades.tar.gz: .* SHA-256 .* records .* Delete it and run again"):
        _get(tmp_path, server.url)
    assert (tmp_path / "facades.tar.gz").exists() and not (tmp_path / "facades").exists()


def test_a_matching_record_is_verified(server, tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"facades": {"size": len(FACADES),
                                                             "sha256": hashlib.sha256(FACADES).hexdigest()}}))
    assert _get(tmp_path, server.url).verified


def test_without_network_the_message_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DataError) as caught:
        _get(tmp_path, UNREACHABLE)
    message = str(caught.value)
    assert "cannot reach http://127.0.0.1:9/facades.tar.gz" in message
    assert f"put it at {tmp_path / 'facades.tar.gz'}" in message
    assert f"{tmp_path / 'facades'}/train/ holds the images" in message


def test_an_archive_placed_by_hand_is_extracted_offline(tmp_path):
    (tmp_path / "facades.tar.gz").write_bytes(FACADES)
    result = _get(tmp_path, UNREACHABLE)
    assert (result.folder / "val" / "2.png").read_bytes() == _png(2)


def test_missing_files_on_the_server_are_reported(server, tmp_path):
    with pytest.raises(DataError, match="404"):
        download_dataset("maps", tmp_path, base_url=server.url, progress=False, timeout=5)


def test_unknown_names_and_too_little_space_are_refused(server, tmp_path, monkeypatch):
    with pytest.raises(DataError, match="unknown dataset 'shoes': choose from facades"):
        download_dataset("shoes", tmp_path)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(download.shutil, "disk_usage", lambda _: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(DataError, match="needs about 0 MB free .* choose another `root`"):
        _get(tmp_path, server.url)


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil.txt", "facades/../../evil.txt"])
def test_members_escaping_the_folder_are_refused(tmp_path, member):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar_gz({"facades/ok.txt": b"ok", member: b"evil"}))
    with pytest.raises(DataError, match="outside the dataset folder"):
        extract_safely(archive, tmp_path / "root" / "facades")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "root" / "facades").exists()
    assert os.listdir(tmp_path / "root") == []


def test_links_in_the_archive_are_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo("facades/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    (tmp_path / "bad.tar.gz").write_bytes(buffer.getvalue())
    with pytest.raises(DataError, match="'facades/passwd' is a link"):
        extract_safely(tmp_path / "bad.tar.gz", tmp_path / "facades")


def test_a_damaged_archive_is_reported(tmp_path):
    (tmp_path / "facades.tar.gz").write_bytes(FACADES[: len(FACADES) // 2])
    with pytest.raises(DataError, match="cannot extract .* delete it and run again"):
        extract_safely(tmp_path / "facades.tar.gz", tmp_path / "facades")
