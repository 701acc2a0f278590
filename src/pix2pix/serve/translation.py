"""Translations for the server: one at a time on one worker thread, off the event loop, with a bounded queue;
uploads decoded in memory under the server's limits; outputs encoded as PNG."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pix2pix.config import ConfigError
from pix2pix.data.images import DataError, convert_channels
from pix2pix.data.png import encode_png
from pix2pix.data.reading import ImageTooLarge, NotAnImage, decode_image_bytes
from pix2pix.data.tensors import image_to_tensor, tensor_to_data
from pix2pix.inference import Translator

UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP")
"""Pillow's decoders tried on an upload; no other decoder sees untrusted bytes."""
UPLOAD_NAME = "upload"


@dataclass(frozen=True)
class Limits:
    """What one request may ask: its body size, its image's pixels, and how many translations may wait."""

    max_upload_bytes: int = 10_000_000
    max_pixels: int = 2048 * 2048
    queue: int = 8

    def __post_init__(self) -> None:
        """A limit of zero would refuse every request."""
        for name in ("max_upload_bytes", "max_pixels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.queue < 0:
            raise ConfigError(f"`queue` must be >= 0, got {self.queue}")


@dataclass
class Refused(Exception):
    """A request the server answers with an error status and a one-line reason (JSON)."""

    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.detail


class TranslationService:
    """Owns the translator: every translation runs on its one worker thread (each already uses all the cores),
    so requests set its mode and seed without racing; at most `limits.queue` more wait, later ones are refused
    with 503 and a Retry-After from the recent translation time."""

    def __init__(self, translator: Translator, limits: Limits = Limits()) -> None:
        self.translator = translator
        self.limits = limits
        self.pending = 0
        self.translated = 0
        self.recent_seconds = 1.0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pix2pix-translate")
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return 1 + self.limits.queue

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Holds a place in the queue for one request, or refuses it at once when every place is taken."""
        with self._lock:
            if self.pending >= self.capacity:
                retry = max(1, math.ceil(self.recent_seconds * self.pending))
                raise Refused(503, f"busy: {self.pending} translation(s) running or waiting, the most this server "
                                   f"queues; retry in about {retry} s", {"Retry-After": str(retry)})
            self.pending += 1
        try:
            yield
        finally:
            with self._lock:
                self.pending -= 1

    async def translate(self, data: bytes, mode: str, seed: int | None) -> bytes:
        """The PNG of the upload's translation, computed on the worker thread while the event loop serves others."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.translate_now, data, mode, seed)

    def translate_now(self, data: bytes, mode: str, seed: int | None) -> bytes:
        """On the worker thread: decode, translate in `mode` (reproducible with `seed`), encode."""
        start = time.perf_counter()
        source = self.decoded(data)
        self.translator.mode, self.translator.seed = mode, seed
        output = self.translator(image_to_tensor(source).unsqueeze(0))[0]
        png = encode_png(tensor_to_data(output, source.bit_depth).pixels)
        self.recent_seconds = 0.8 * self.recent_seconds + 0.2 * (time.perf_counter() - start)
        self.translated += 1
        return png

    def decoded(self, data: bytes):
        """The upload as the run's input channels; each way it can be unusable is its own status."""
        try:
            image = decode_image_bytes(data, UPLOAD_NAME, None, self.limits.max_pixels, UPLOAD_FORMATS)
        except ImageTooLarge as err:
            raise Refused(413, str(err)) from err
        except NotAnImage as err:
            raise Refused(415, f"{UPLOAD_NAME}: not a PNG, JPEG or WebP image; send one of those") from err
        except DataError as err:
            raise Refused(400, str(err)) from err
        try:
            return convert_channels(image, self.translator.config.channels[0], Path(UPLOAD_NAME))
        except DataError as err:
            raise Refused(422, str(err)) from err

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
