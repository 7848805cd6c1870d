"""Checks on the URL before any routing or key check: its length (``414 uri-too-long``) and repeated query
parameters (``422``: every parameter takes one value, and FastAPI would silently keep the last).

No route takes anything long in its path or query; a URL of megabytes is either a mistake or an attack, and
uvicorn's own parser answers very long ones with plain text (see ``gateway.server``).
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.problems import PARAMS_TITLE, Problem, invalid
from schemas.errors import FieldError

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
            query = scope.get("query_string", b"").decode("latin-1")
            names = Counter(name for name, _ in parse_qsl(query, keep_blank_values=True))
            repeated = sorted(name for name, count in names.items() if count > 1)
            if repeated:
                errors = [
                    FieldError(name, "repeated", "takes one value; it was given more than once") for name in repeated
                ]
                problem = invalid(errors, f"repeated parameter(s): {', '.join(repeated)}", title=PARAMS_TITLE)
                await problem.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
