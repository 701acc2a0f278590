"""Writing files so that a reader, or a process killed mid-write, never sees half of one."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

TEMPORARY_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")
"""The hidden name `atomic_path` writes under: what a process killed while writing leaves behind."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
"""What `open` gives a new file; some writers (safetensors) create theirs private (0600)."""


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a hidden temporary path beside `path` for the caller to write; once the block succeeds the file is
    flushed to disk and renamed over `path`, on failure it is removed. An OSError names `path`, not the
    temporary file, so that a full disk reads 'PATH: No space left on device'."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb+") as written:
            os.fchmod(written.fileno(), FILE_MODE)
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except OSError as err:
        named = naming(err, path)
        if named is err:
            raise
        raise named from err
    finally:
        tmp.unlink(missing_ok=True)


def naming(err: OSError, path: Path) -> OSError:
    """`err` with `path` as its file, unless it names one already that is not a temporary file."""
    named = err.filename is not None and not TEMPORARY_NAME.match(Path(str(err.filename)).name)
    if named or err.errno is None:
        return err
    return OSError(err.errno, err.strerror, str(path))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())
