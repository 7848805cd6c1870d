"""The access log: one INFO line per HTTP request, in place of uvicorn's.

Why our own: uvicorn's line carries the full query string (values included: a subject's name, an ID number) and
not who asked. Ours has the method, the path, the query's parameter *names* only, the status, the duration and
the API key's *name* (never the key), as an operator event (``access``) that ``LOG_FORMAT=json`` makes fields.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import logs

log = logging.getLogger("gateway.access")
KEY_NAME = "key_name"  # set in the request state by the authentication dependency


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()  # a duration for the log, not a time of day
        state = scope.setdefault("state", {})
        status = 500  # what the client sees if the app fails before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            names = sorted({name for name, _ in parse_qsl(query, keep_blank_values=True)})
            logs.event(
                log,
                logging.INFO,
                "access",
                method=scope["method"],
                path=_full_path(scope),
                query=",".join(names) or None,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                key=state.get(KEY_NAME),
            )


def _full_path(scope: Scope) -> str:
    """The path as the client sent it. Starlette keeps the mount prefix in a mounted app's ``path`` (and also in
    ``root_path``): adding the two would log ``/sandbox/sandbox/...``; servers behind a proxy prefix give it in
    ``root_path`` only."""
    root: str = scope.get("root_path", "")
    path: str = scope["path"]
    return path if not root or path.startswith(root) else root + path
