"""How ``serve`` runs uvicorn: requests it cannot parse are answered with a problem document too.

uvicorn answers a request its parser refuses (a 120 KB query string, a broken request line) with a plain-text
``400 Invalid HTTP request received.`` before the app sees it. These protocol classes keep uvicorn's parsing and
only change that answer into ``application/problem+json`` (slug ``bad-request``), as the README promises for
every error. Requests the parser takes but whose URL is over ``MAX_URL_BYTES`` are answered 414 by the app
(``gateway.api.limits``).
"""

from __future__ import annotations

from typing import Any

import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def problem_400(default_headers: list[tuple[bytes, bytes]], msg: str) -> bytes:
    """A complete HTTP/1.1 400 response carrying a problem document; the connection closes after it."""
    body = orjson.dumps(
        {
            "type": "urn:credit-gateway:problem:bad-request",
            "title": "The request could not be parsed",
            "status": 400,
            "detail": f"{msg} (request line or headers malformed or too long; URLs are limited to a few KB)",
        }
    )
    head = [b"HTTP/1.1 400 Bad Request\r\n"]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head += [
        b"content-type: application/problem+json\r\n",
        b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        self.transport.write(problem_400(self.server_state.default_headers, msg))
        self.transport.close()


class ProblemH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        self.transport.write(problem_400(self.server_state.default_headers, msg))
        self.transport.close()


def protocol() -> type[Any]:
    """uvicorn's own choice ("auto": httptools when installed), with the problem-document 400."""
    try:
        import httptools  # noqa: F401
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return ProblemH11Protocol
    return ProblemHttpToolsProtocol
