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
from starlette.types import Receive, Scope, Send

Handler = Callable[..., Awaitable[Response]]
_CONVERT: dict[str, Callable[[str], Any]] = {"int": int, "float": float}


class Router:
    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.routes: list[Route] = []

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(self.prefix + path, _Endpoint(handler, path), methods=[method]))
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


class _Endpoint:
    """The route's ASGI app: fills the handler's parameters, worked out once at registration, per request.

    An instance rather than a function, so that Starlette's ``Route`` calls it as it is instead of wrapping it in
    ``request_response``, whose exception handling the app's ``ExceptionMiddleware`` does once for all routes.
    """

    def __init__(self, handler: Handler, path: str) -> None:
        params = inspect.signature(handler).parameters
        self.handler = handler
        self.in_path = tuple(name for name in params if "{" + name + "}" in path)
        self.wants_request = "request" in params
        self.query = [
            (name, p.default, _CONVERT.get(str(p.annotation).split(" ")[0], str))
            for name, p in params.items()
            if name != "request" and name not in self.in_path
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        response = await self.respond(request)
        await response(scope, receive, send)

    async def respond(self, request: Request) -> Response:
        kwargs: dict[str, Any] = {name: request.path_params[name] for name in self.in_path}
        if self.wants_request:
            kwargs["request"] = request
        if self.query:  # the query string is parsed only for handlers that read it
            args = request.query_params
            for name, default, convert in self.query:
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
        return await self.handler(**kwargs)


def _invalid(name: str, message: str) -> Response:
    body = {"detail": [{"loc": ["query", name], "msg": message}]}
    return Response(orjson.dumps(body), 422, media_type="application/json")
