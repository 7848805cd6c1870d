"""A target's rate limit counts requests on the wire, against the real sandbox over loopback: the portal's batch
of notices is one request per notice, a process that stops is not held by a slow limit, and the credit checks'
subject queries share the national target's limit with its delivery client."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future

import httpx
import pytest

from adapters.base import Accepted, Item, Outcome, Retryable
from adapters.client import STOPPED
from adapters.pace import Pace
from adapters.sandbox.app import create_sandbox
from gateway.clock import SystemClock
from gateway.settings import CheckSettings, Settings
from gateway.subjects import NationalSubjects
from gateway.targets import build_clients, point_at_sandbox
from schemas.enums import Kind
from tests import live
from tests.e2e.test_targets import content, item
from tests.factories import make_uscc


@pytest.fixture
def sandbox() -> Iterator[str]:
    with live.serve(create_sandbox(result_delay=0)) as url:
        yield url


def limited(url: str, per_second: float) -> Settings:
    settings = Settings()
    point_at_sandbox(settings, url)
    for name in ("national", "portal"):
        getattr(settings.targets, name).rate_limit_per_second = per_second
    return settings


def notices(n: int) -> list[Item]:
    ids = [f"hhzjj-{uuid.uuid4().int % 10**9}" for _ in range(n)]
    return [item(record_id, Kind.LICENCE, 1, content(Kind.LICENCE), "portal") for record_id in ids]


def requests_seen(url: str, target: str) -> int:
    return int(httpx.get(f"{url}/_admin/{target}/stats").json()["requests"])


def test_the_portal_is_paced_per_notice_not_per_batch(sandbox: str) -> None:
    clients = build_clients(limited(sandbox, 10), SystemClock())
    portal = clients["portal"]
    before = requests_seen(sandbox, "portal")
    started = time.monotonic()
    outcomes = portal.deliver(notices(6))  # one batch, six requests: five intervals of 0.1 s at the least
    elapsed = time.monotonic() - started
    for client in clients.values():
        client.close()
    assert [type(o) for o in outcomes] == [Accepted] * 6
    assert requests_seen(sandbox, "portal") - before == 6
    assert elapsed >= 0.5 - 0.005, f"six notices in {elapsed:.3f} s: more than 10 requests per second"


class Reserved:
    """The pace's clock: says when ``expected`` turns have been taken (each reservation reads it once)."""

    def __init__(self, expected: int) -> None:
        self.calls, self.expected, self.all_taken = 0, expected, threading.Event()

    def __call__(self) -> float:
        self.calls += 1
        if self.calls >= self.expected:
            self.all_taken.set()
        return time.monotonic()


def test_a_stopping_process_is_not_held_by_a_slow_limit(sandbox: str) -> None:
    clients = build_clients(limited(sandbox, 0.01), SystemClock())
    portal = clients["portal"]
    turns = Reserved(3)
    portal.pace = Pace(0.01, clock=turns)  # a turn every 100 s
    before = requests_seen(sandbox, "portal")
    assert [type(o) for o in portal.deliver(notices(1))] == [Accepted]  # the first turn is now
    found: Future[list[Outcome]] = Future()
    sender = threading.Thread(target=lambda: found.set_result(portal.deliver(notices(2))))
    sender.start()
    assert turns.all_taken.wait(20), "the two notices never asked for their turns"  # 100 and 200 s away
    portal.halt()  # what a stopping worker does first: the waiting notices give up at once, unsent
    outcomes = found.result(timeout=20)
    sender.join()
    for client in clients.values():
        client.close()
    assert [(type(o), getattr(o, "code", None), getattr(o, "message", None)) for o in outcomes] == [
        (Retryable, "not_sent", STOPPED)
    ] * 2
    assert requests_seen(sandbox, "portal") - before == 1


def test_credit_checks_share_the_national_limit_and_answer_at_once_when_it_has_no_turn(sandbox: str) -> None:
    settings = limited(sandbox, 0.01)
    settings.checks = CheckSettings(national_deadline_seconds=10)
    clients = build_clients(settings, SystemClock())
    delivery = clients["national"]
    subjects = NationalSubjects(settings, SystemClock())
    try:
        assert delivery.pace is not None and subjects.pace is delivery.pace  # one limit per platform and process
        asked = subjects.start(make_uscc("914312001MA4L7P2K"))
        assert isinstance(asked, Future) and subjects.finish(asked, time.monotonic()).status == "answered"
        refused = subjects.start(make_uscc("914312002MA4L7P2K"))  # the next turn is 100 s away: past the deadline
        assert not isinstance(refused, Future) and refused.status == "throttled"
        assert refused.detail is not None and "rate limit (0.01/s)" in refused.detail
        assert requests_seen(sandbox, "national") == 1
    finally:
        subjects.close()
        for client in clients.values():
            client.close()
