"""A request's image, read into memory only: the body up to the size limit, then the raw bytes or the first file
of a multipart form. Starlette's own form parsing spools files over 1 MB to a temporary file, so it is not used."""

from __future__ import annotations

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from pix2pix.serve.translation import Refused

NO_FILE = "the form has no file; send the image as a file field (curl -F image=@photo.png) or as the raw body"


def too_large(size: int, limit: int) -> Refused:
    return Refused(413, f"upload of {size:,} bytes or more, over the limit of {limit:,} bytes; send a smaller image")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused as soon as it says or proves to be over `limit` bytes (nothing more is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(len(body), limit)
    return bytes(body)


def image_bytes(body: bytes, content_type: str) -> bytes:
    """The image of a raw body, or of a multipart/form-data body's first file (its field name does not matter)."""
    kind, options = parse_options_header(content_type)
    if kind == b"application/x-www-form-urlencoded":
        raise Refused(400, NO_FILE)
    if kind != b"multipart/form-data":
        return body
    boundary = options.get(b"boundary")
    if not boundary:
        raise Refused(400, "multipart/form-data without a boundary; let the client library write the header")
    image = first_file(body, boundary)
    if image is None:
        raise Refused(400, NO_FILE)
    return image


def first_file(body: bytes, boundary: bytes) -> bytes | None:
    """The data of the first part that has a filename, parsed in memory."""
    parts: list[tuple[bytes, bytearray]] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray(), "disposition": bytearray()}

    def on_header_end() -> None:
        if bytes(header["field"]).lower() == b"content-disposition":
            header["disposition"] = bytearray(header["value"])
        header["field"].clear()
        header["value"].clear()

    callbacks = {
        "on_part_begin": lambda: header["disposition"].clear(),
        "on_header_field": lambda data, start, end: header["field"].extend(data[start:end]),
        "on_header_value": lambda data, start, end: header["value"].extend(data[start:end]),
        "on_header_end": on_header_end,
        "on_headers_finished": lambda: parts.append((bytes(header["disposition"]), bytearray())),
        "on_part_data": lambda data, start, end: parts[-1][1].extend(data[start:end]),
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError as err:
        raise Refused(400, f"malformed multipart/form-data ({err})") from err
    for disposition, data in parts:
        if b"filename" in parse_options_header(disposition)[1]:
            return bytes(data)
    return None
