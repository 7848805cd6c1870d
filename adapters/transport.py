"""The thin transport: one injected ``httpx.Client`` sends an adapter's ``Request`` and returns a ``Reply``.

It owns nothing but the wire: explicit timeouts and limits come with the client, bodies are streamed with a size
cap (a 50 MB reply is cut off, not buffered), replies are stamped with the injected clock's time, and httpx's
exceptions become ``TransportError`` with a stable code. Whether a reply is good news is the adapter's call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx

from adapters.base import Reply, Request
from adapters.replies import MAX_REPLY_BYTES


class TransportError(Exception):
    """The request did not get a complete reply (timeout, refused connection, reset, oversized body)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def make_client(*, timeout_seconds: float, connections: int = 4) -> httpx.Client:
    """A client with explicit timeouts and limits, as every target gets (one per target: no shared pool)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
        trust_env=False,
    )


class Transport:
    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        now: Callable[[], dt.datetime],
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.now = now
        self.max_reply_bytes = max_reply_bytes

    def send(self, request: Request) -> Reply:
        try:
            with self.client.stream(
                request.method,
                self.base_url + request.path,
                headers=dict(request.headers),
                content=request.body or None,
            ) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self.max_reply_bytes:
                        raise TransportError(
                            "reply_too_large", f"reply exceeds {self.max_reply_bytes} bytes; cut off unread"
                        )
                return Reply(response.status_code, dict(response.headers), bytes(body), self.now())
        except httpx.TimeoutException as exc:
            raise TransportError("timeout", f"{type(exc).__name__}: no reply within the timeout") from None
        except httpx.TransportError as exc:
            raise TransportError("connection", f"{type(exc).__name__}: {exc}") from None
