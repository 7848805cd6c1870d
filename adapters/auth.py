"""How each target knows it is us: request signing, OAuth2 client credentials, a static bearer token.

``apply`` returns the request ready to send; ``should_retry`` tells, after a reply, whether to send once more
(OAuth2: a 401 ``invalid_token`` means our token died early, so fetch a new one and try again, once). A token
endpoint that throttles us (429) or is down (5xx) fails the exchange with its Retry-After, which the delivery and
the target's gate then honour like a Retry-After on the data endpoint.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import replace
from typing import Protocol

from adapters.base import Reply, ReplyError, Request
from adapters.national import National
from adapters.replies import json_body, retry_after
from adapters.transport import Transport, TransportError


class Auth(Protocol):
    def apply(self, request: Request, now: dt.datetime) -> Request: ...

    def should_retry(self, reply: Reply) -> bool: ...


class NoAuth:
    def apply(self, request: Request, now: dt.datetime) -> Request:
        return request

    def should_retry(self, reply: Reply) -> bool:
        return False


class NationalSigning:
    """Signs at send time: each attempt needs a fresh timestamp and a fresh nonce."""

    def __init__(self, adapter: National) -> None:
        self.adapter = adapter

    def apply(self, request: Request, now: dt.datetime) -> Request:
        return self.adapter.signed(request.method, request.path, request.body, now)

    def should_retry(self, reply: Reply) -> bool:
        return False


class StaticBearer:
    def __init__(self, token: str) -> None:
        self.token = token

    def apply(self, request: Request, now: dt.datetime) -> Request:
        return replace(request, headers={**request.headers, "Authorization": f"Bearer {self.token}"})

    def should_retry(self, reply: Reply) -> bool:
        return False


class ClientCredentials:
    """OAuth2 client credentials: a token fetched once, refreshed ``margin`` before it expires or on 401."""

    def __init__(self, transport: Transport, token_request: Request, margin: dt.timedelta = dt.timedelta(seconds=60)):
        self.transport = transport
        self.token_request = token_request
        self.margin = margin
        self._token: str | None = None
        self._expires: dt.datetime | None = None
        self._lock = threading.Lock()

    def apply(self, request: Request, now: dt.datetime) -> Request:
        with self._lock:
            if self._token is None or self._expires is None or now >= self._expires - self.margin:
                self._fetch(now)
            token = self._token
        return replace(request, headers={**request.headers, "Authorization": f"Bearer {token}"})

    def should_retry(self, reply: Reply) -> bool:
        if reply.status != 401:
            return False
        with self._lock:
            self._token = None  # the next apply fetches a new one
        return True

    def _fetch(self, now: dt.datetime) -> None:
        reply = self.transport.send(self.token_request)
        if reply.status == 429 or reply.status >= 500:  # throttled or down: wait as long as it asks, if it says
            wait = retry_after(reply)
            code = "429" if reply.status == 429 else "token"  # a 429 is an answer, not an outage (gateway.gate)
            raise TransportError(code, f"token endpoint answered HTTP {reply.status}", wait)
        try:
            body = json_body(reply)
        except ReplyError as exc:
            raise TransportError("token", f"token endpoint answered HTTP {reply.status}: {exc.message}") from None
        if reply.status != 200 or not isinstance(body, dict) or not body.get("access_token"):
            raise TransportError("token", f"token endpoint refused us: HTTP {reply.status} {body}")
        self._token = str(body["access_token"])
        self._expires = now + dt.timedelta(seconds=float(body.get("expires_in") or 600))
