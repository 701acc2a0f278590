"""The paper's datasets from their published address: resumable, size- and SHA-256-checked, safely extracted.

No checksums are published for these archives, so the first download records each archive's size and SHA-256
in ROOT/pix2pix-datasets.json; a later download, or an archive placed there by hand, is checked against it.
Standard library only (urllib), so no extra dependency and nothing runs unless asked.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from pix2pix.atomic import write_text_atomic
from pix2pix.data.images import DataError

BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
DATASETS = {
    "facades": "400 CMP Facades label maps <-> photos",
    "cityscapes": "2975 Cityscapes label maps <-> street photos",
    "maps": "1096 Google Maps aerial photos <-> maps",
    "edges2shoes": "50k UT Zappos50K shoe edges -> photos (about 2 GB)",
    "edges2handbags": "137k Amazon handbag edges -> photos (about 8 GB)",
    "night2day": "20k webcam night <-> day pairs",
}
MANIFEST = "pix2pix-datasets.json"
CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-\d+|\*)/(\d+|\*)")


@dataclass(frozen=True)
class DownloadResult:
    folder: Path  # ROOT/NAME, the extracted dataset
    size: int | None  # archive bytes; None when the folder was already there and nothing was fetched
    sha256: str | None
    verified: bool  # True: matched the manifest's record; False: recorded now, or nothing to check


def download_dataset(name: str, root: str | Path = "datasets", *, base_url: str = BASE_URL,
                     keep_archive: bool = False, progress: bool = True, timeout: float = 30.0) -> DownloadResult:
    """Fetches BASE_URL/NAME.tar.gz into ROOT (resuming a broken transfer), checks it and extracts ROOT/NAME.

    An existing ROOT/NAME is left alone; an existing ROOT/NAME.tar.gz (a finished or hand-placed download) is
    checked and extracted without the network.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: choose from {', '.join(DATASETS)}")
    root = Path(root)
    folder = root / name
    if folder.is_dir() and any(folder.iterdir()):
        return DownloadResult(folder, None, None, False)
    root.mkdir(parents=True, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{name}.tar.gz"
    archive = root / f"{name}.tar.gz"
    if not archive.exists():
        fetch(url, archive, timeout=timeout, progress=progress)
    size, digest = archive.stat().st_size, sha256_of(archive)
    verified = check_against_manifest(root / MANIFEST, name, url, archive, size, digest)
    extract_safely(archive, folder)
    if not keep_archive:
        archive.unlink()
    return DownloadResult(folder, size, digest, verified)


def manual_placement_hint(url: str, archive: Path) -> str:
    """What to do by hand when this machine cannot download."""
    folder = archive.parent / archive.name.removesuffix(".tar.gz")
    return (f"Without network: download {url} elsewhere and put it at {archive} (the same command then checks "
            f"and extracts it), or extract it yourself so that {folder}/train/ holds the images")


# ---------------------------------------------------------------------------------------------------------
# Transfer


def fetch(url: str, target: Path, *, timeout: float = 30.0, progress: bool = False, hint: str | None = None) -> None:
    """Downloads into TARGET.part, continuing (HTTP Range) from what a broken transfer left there; renames the
    part to TARGET only once its size equals the size the server announced. `hint` says what to do by hand when
    the server cannot be reached (default: a dataset archive's)."""
    hint = hint or manual_placement_hint(url, target)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "pix2pix", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and have:
            if _announced_total(err.headers.get("Content-Range")) == have:
                os.replace(part, target)  # the previous run had received everything
                return
            raise DataError(f"{part}: the server cannot continue this partial download ({err.code} {err.reason}); "
                            "delete it and run again") from err
        raise DataError(f"{url}: the server answered {err.code} {err.reason}. {hint}") from err
    except (URLError, OSError) as err:
        raise DataError(_unreachable_message(url, part, err, hint)) from err
    with response:
        start, total = _resume_point(response, have, url)
        if total is not None:
            _check_free_space(target.parent, 2 * total - start)
        _stream(response, part, start, total, url, progress)
    _check_complete(part, total, url)
    os.replace(part, target)


def _unreachable_message(url: str, part: Path, err: Exception, hint: str) -> str:
    reason = getattr(err, "reason", err)
    kept = f" The {part.stat().st_size} bytes in {part} are kept and resumed next time." if part.exists() else ""
    return f"cannot reach {url} ({reason}).{kept} {hint}"


def _announced_total(content_range: str | None) -> int | None:
    match = _CONTENT_RANGE.fullmatch((content_range or "").strip())
    return int(match[2]) if match and match[2] != "*" else None


def _resume_point(response: http.client.HTTPResponse, have: int, url: str) -> tuple[int, int | None]:
    """(offset the body starts at, total archive bytes or None): 206 continues the part, 200 starts over."""
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch((response.headers.get("Content-Range") or "").strip())
        if not match or match[1] is None or int(match[1]) != have:
            raise DataError(f"{url}: the server resumed at the wrong place "
                            f"({response.headers.get('Content-Range')!r} after {have} bytes); delete the .part "
                            "file and run again")
        return have, None if match[2] == "*" else int(match[2])
    length = response.headers.get("Content-Length")
    return 0, int(length) if length else None


def _stream(response: http.client.HTTPResponse, part: Path, start: int, total: int | None, url: str,
            progress: bool) -> None:
    done = start
    with open(part, "ab" if start else "wb") as file, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                                            desc=part.name, disable=not progress) as bar:
        try:
            while chunk := response.read(CHUNK):
                file.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as err:
            raise DataError(f"{url}: the transfer broke after {done} of {total or '?'} bytes ({err!r}); run the "
                            f"same command again to resume from {part}") from err


def _check_complete(part: Path, total: int | None, url: str) -> None:
    size = part.stat().st_size
    if total is None or size == total:
        return
    if size < total:
        raise DataError(f"{url}: the transfer ended after {size} of {total} bytes; run the same command again to "
                        f"resume from {part}")
    raise DataError(f"{part}: {size} bytes, more than the {total} the server announced; delete it and run again")


def _check_free_space(folder: Path, needed: int) -> None:
    """The archive and its extracted files (JPEGs, which barely compress) need about twice its size."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DataError(f"{folder}: needs about {needed / 1e6:.0f} MB free for the archive and its extracted "
                        f"files, only {free / 1e6:.0f} MB are; free some space or choose another `root`")


# ---------------------------------------------------------------------------------------------------------
# Checks and extraction


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_against_manifest(manifest: Path, name: str, url: str, archive: Path, size: int, digest: str) -> bool:
    """True when the archive matches the manifest's record; with no record yet, records it (trust on first use)."""
    records = _read_manifest(manifest)
    known = records.get(name)
    if known is None:
        records[name] = {"url": url, "size": size, "sha256": digest}
        write_text_atomic(manifest, json.dumps(records, indent=2, sort_keys=True) + "\n")
        return False
    if (known.get("size"), known.get("sha256")) != (size, digest):
        raise DataError(f"{archive}: {size} bytes with SHA-256 {digest}, but {manifest} records "
                        f"{known.get('size')} bytes with SHA-256 {known.get('sha256')} for {name}: the file is damaged "
                        f"or different. Delete it and run again to download it afresh (if the published file changed "
                        f"on purpose, also delete the {name!r} entry of {manifest})")
    return True


def _read_manifest(manifest: Path) -> dict:
    if not manifest.exists():
        return {}
    try:
        records = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{manifest}: cannot read the download records ({err}); fix or delete the file") from err
    if not isinstance(records, dict):
        raise DataError(f"{manifest}: expected a JSON object of name -> record; fix or delete the file")
    return records


def extract_safely(archive: Path, folder: Path) -> None:
    """Extracts into a hidden staging folder beside FOLDER and renames it at the end, so an interrupted run never
    looks like a finished dataset. Only plain files and folders that stay inside are accepted."""
    staging = folder.with_name(f".{folder.name}.extracting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _checked_members(tar, archive, staging)
            tar.extractall(staging, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        entries = list(staging.iterdir())
        top = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        os.replace(top, folder)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{archive}: cannot extract ({err}); delete it and run again to download it afresh") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _checked_members(tar: tarfile.TarFile, archive: Path, staging: Path) -> list[tarfile.TarInfo]:
    """Refuses the whole archive before writing anything if one member could land outside or is not plain."""
    base = staging.resolve()
    members = tar.getmembers()
    for member in members:
        if not (member.isfile() or member.isdir()):
            raise DataError(f"{archive}: {member.name!r} is a link or special file, which these datasets never hold; "
                            "refusing the archive: delete it")
        if not (base / member.name).resolve().is_relative_to(base):
            raise DataError(f"{archive}: {member.name!r} would be written outside the dataset folder; refusing the "
                            "archive: delete it")
    return members
