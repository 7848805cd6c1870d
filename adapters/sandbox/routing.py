"""A small router for the sandbox: FastAPI's decorator style on plain Starlette routes.

The sandbox stands in for four platforms in benchmarks, where FastAPI's per-request work (matching through every
route, solving dependencies) cost more CPU than the platforms' own checks on the same two cores as the gateway.
Handlers keep their signatures: ``request`` is passed when asked for, path parameters by name, and query
parameters by name converted to the annotated ``str``, ``int`` or ``float`` (a bad number is a 422, as before).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[..., Awaitable[Response]]
_CONVERT: dict[str, Callable[[str], Any]] = {"int": int, "float": float}


class Router:
    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.routes: list[Route] = []

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(self.prefix + path, _endpoint(handler, path), methods=[method]))
            return handler

        return register

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("GET", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("POST", path)

    def put(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("PUT", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path)


def _endpoint(handler: Handler, path: str) -> Callable[[Request], Awaitable[Response]]:
    """Work out once, at registration, how each parameter is filled; per request only dictionary lookups."""
    params = inspect.signature(handler).parameters
    in_path = {name for name in params if "{" + name + "}" in path}
    wants_request = "request" in params
    query = [
        (name, p.default, _CONVERT.get(str(p.annotation).split(" ")[0], str))
        for name, p in params.items()
        if name != "request" and name not in in_path
    ]

    async def endpoint(request: Request) -> Response:
        kwargs: dict[str, Any] = {name: request.path_params[name] for name in in_path}
        if wants_request:
            kwargs["request"] = request
        args = request.query_params
        for name, default, convert in query:
            raw = args.get(name)
            if raw is None:
                if default is inspect.Parameter.empty:
                    return _invalid(name, "required")
                kwargs[name] = default
                continue
            try:
                kwargs[name] = convert(raw)
            except ValueError:
                return _invalid(name, f"{raw!r} is not a number")
        return await handler(**kwargs)

    return endpoint


def _invalid(name: str, message: str) -> Response:
    body = {"detail": [{"loc": ["query", name], "msg": message}]}
    return Response(orjson.dumps(body), 422, media_type="application/json")
