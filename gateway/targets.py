"""The configured targets as ``TargetClient``s: settings in, adapter + authentication + transport out."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx

from adapters.auth import Auth, ClientCredentials, NationalSigning, NoAuth, StaticBearer
from adapters.base import Adapter
from adapters.client import TargetClient
from adapters.municipal import Municipal, MunicipalConfig
from adapters.national import National, NationalConfig
from adapters.pace import Pace
from adapters.portal import Portal, PortalConfig
from adapters.provincial import Provincial, ProvincialConfig
from adapters.transport import Transport, make_client
from gateway.clock import Clock
from gateway.settings import Settings, TargetSettings


def build_clients(
    settings: Settings, clock: Clock, *, http: Callable[[float], httpx.Client] | None = None
) -> dict[str, TargetClient]:
    """One client per enabled target, each with its own connection pool (one target's trouble stays its own)."""
    make = http or (lambda timeout: make_client(timeout_seconds=timeout))
    t = settings.targets
    clients: dict[str, TargetClient] = {}
    if t.national.enabled:
        national = National(
            NationalConfig(
                t.national.app_key, t.national.app_secret.get_secret_value(), max_items=t.national.batch_size
            )
        )
        clients["national"] = _client(
            national, t.national, make(t.national.timeout_seconds), clock, lambda _: NationalSigning(national)
        )
    if t.provincial.enabled:
        provincial = Provincial(
            ProvincialConfig(
                t.provincial.sender, t.provincial.sm3_key.get_secret_value(), max_items=t.provincial.batch_size
            )
        )
        clients["provincial"] = _client(
            provincial, t.provincial, make(t.provincial.timeout_seconds), clock, lambda _: NoAuth()
        )
    if t.municipal.enabled:
        municipal = Municipal(
            MunicipalConfig(
                t.municipal.client_id, t.municipal.client_secret.get_secret_value(), max_items=t.municipal.batch_size
            )
        )
        clients["municipal"] = _client(
            municipal,
            t.municipal,
            make(t.municipal.timeout_seconds),
            clock,
            lambda transport: ClientCredentials(transport, municipal.token_request()),
        )
    if t.portal.enabled:
        portal = Portal(PortalConfig(t.portal.token.get_secret_value(), max_items=t.portal.batch_size))
        token = t.portal.token.get_secret_value()
        clients["portal"] = _client(
            portal, t.portal, make(t.portal.timeout_seconds), clock, lambda _: StaticBearer(token)
        )
    return clients


def _client(
    adapter: Adapter, target: TargetSettings, http: httpx.Client, clock: Clock, auth: Callable[[Transport], Auth]
) -> TargetClient:
    transport = Transport(http, target.base_url, clock.now, deadline_seconds=target.exchange_deadline())
    return TargetClient(adapter, transport, auth(transport), clock.now, pace=pace_of(adapter.name, target))


_PACES: dict[tuple[str, str, float], Pace] = {}
_PACES_LOCK = threading.Lock()


def pace_of(name: str, target: TargetSettings) -> Pace | None:
    """The target's rate limit in this process (None: none is set). Every client of one platform in a process
    shares it, the delivery client and the credit checks' subject queries alike, and so do clients built again
    with the same settings: the limit is what the platform gets from this process, however it is reached."""
    per_second = target.rate_limit_per_second
    if per_second is None:
        return None
    key = (name, target.base_url, per_second)
    with _PACES_LOCK:
        if key not in _PACES:
            _PACES[key] = Pace(per_second)
        return _PACES[key]


def point_at_sandbox(settings: Settings, base: str) -> None:
    """Every target at the sandbox served under ``base`` (``serve --sandbox``), with the demo credentials."""
    for name, target in settings.targets.items():
        target.base_url = f"{base}/{name}"
