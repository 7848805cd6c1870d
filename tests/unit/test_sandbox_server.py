"""The sandbox's joined writes: one send per reply, nothing lost or reordered, large replies not held back."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.sandbox.server import FLUSH_AT, JoinedWrites


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def write(self, data: bytes) -> None:
        self.calls.append(data)

    def close(self) -> None:
        self.calls.append("close")

    def is_closing(self) -> bool:
        return False


def joined(recorder: Recorder, loop: asyncio.AbstractEventLoop) -> JoinedWrites:
    return JoinedWrites(recorder, loop)  # type: ignore[arg-type]


def test_the_writes_of_one_turn_leave_together() -> None:
    async def scenario() -> list[Any]:
        recorder = Recorder()
        transport = joined(recorder, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"body")
        assert recorder.calls == []
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        return recorder.calls

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]


def test_close_sends_what_is_held_first_and_the_rest_is_the_socket_s() -> None:
    async def scenario() -> list[Any]:
        recorder = Recorder()
        transport = joined(recorder, asyncio.get_running_loop())
        transport.write(b"bye")
        transport.close()
        await asyncio.sleep(0)
        assert transport.is_closing() is False
        return recorder.calls

    assert asyncio.run(scenario()) == [b"bye", "close"]


def test_a_large_reply_is_not_held_back() -> None:
    async def scenario() -> list[Any]:
        recorder = Recorder()
        transport = joined(recorder, asyncio.get_running_loop())
        transport.write(b"h")
        transport.write(b" " * FLUSH_AT)
        return list(recorder.calls)

    assert asyncio.run(scenario()) == [b"h" + b" " * FLUSH_AT]
