"""The web port's plain HTTP: the chat page's files, and the answers to everything else.

The files are the package's `static/` folder, read once at start and served from memory with a
strict Content-Security-Policy (scripts, styles and connections from this origin only, no inline
code, no framing), so that even a message that slipped past the page's text-only rendering
could run nothing.  Every answer is small and complete: the connection may then carry the
browser's next request (keep-alive) or end.
"""

from __future__ import annotations

import gzip
import hashlib
import http
import importlib.resources
import mimetypes
from dataclasses import dataclass

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

# Everything from this origin only; nothing inline; never inside another site's frame.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file of the page: its bytes, its type, and a tag that changes when they do."""

    body: bytes
    content_type: str
    etag: str
    gzipped: bytes | None = None  # for browsers that take it (text files, compressed once)


def load_static() -> dict[str, StaticFile]:
    """The page's files by URL path (`/` is index.html), read from the package."""
    folder = importlib.resources.files("tcpchat.server.web") / "static"
    files: dict[str, StaticFile] = {}
    if not folder.is_dir():
        return files
    for entry in folder.iterdir():
        if not entry.is_file() or entry.name.startswith("."):
            continue
        body = entry.read_bytes()
        suffix = "." + entry.name.rpartition(".")[2]
        content_type = TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0]
        tag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        content_type = content_type or "application/octet-stream"
        packed = gzip.compress(body, mtime=0) if _is_text(content_type) else None
        files["/" + entry.name] = StaticFile(body, content_type, tag, packed)
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


def _is_text(content_type: str) -> bool:
    return content_type.startswith(("text/", "image/svg", "application/json", "application/man"))


def respond(
    status: http.HTTPStatus,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    *,
    keep_alive: bool = False,
    extra: tuple[tuple[str, str], ...] = (),
) -> Response:
    """A complete HTTP response with the security headers."""
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("Connection", "keep-alive" if keep_alive else "close"),
            *SECURITY_HEADERS,
            *extra,
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def page_response(request: Request, files: dict[str, StaticFile]) -> Response:
    """The answer to a plain GET: a file of the page (or 304 if the browser has it), else 404."""
    path = request.path.partition("?")[0]
    found = files.get(path)
    if found is None:
        return respond(http.HTTPStatus.NOT_FOUND, b"Not found.\n", keep_alive=True)
    if request.headers.get("If-None-Match") == found.etag:
        return respond(http.HTTPStatus.NOT_MODIFIED, keep_alive=True, extra=(("ETag", found.etag),))
    accepted = request.headers.get("Accept-Encoding", "")
    if found.gzipped is not None and "gzip" in accepted:
        return respond(
            http.HTTPStatus.OK,
            found.gzipped,
            found.content_type,
            keep_alive=True,
            extra=(("ETag", found.etag), ("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")),
        )
    return respond(
        http.HTTPStatus.OK,
        found.body,
        found.content_type,
        keep_alive=True,
        extra=(("ETag", found.etag), ("Vary", "Accept-Encoding")),
    )


def refused_response(sentence: str) -> Response:
    """The door's refusal (too many connections, a ban), said as HTTP 503."""
    return respond(http.HTTPStatus.SERVICE_UNAVAILABLE, sentence.encode() + b"\n")
