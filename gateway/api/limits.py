"""A limit on URL length, answered ``414 uri-too-long`` as a problem document before any routing or key check.

No route takes anything long in its path or query; a URL of megabytes is either a mistake or an attack, and
uvicorn's own parser answers very long ones with plain text (see ``gateway.server``).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.problems import Problem

MAX_URL_BYTES = 8 * 1024


class UrlLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
            if size > MAX_URL_BYTES:
                problem = Problem(
                    414,
                    "uri-too-long",
                    "The URL is too long",
                    f"the URL has {size} bytes; at most {MAX_URL_BYTES} are accepted",
                )
                await problem.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
