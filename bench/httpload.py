"""A minimal keep-alive HTTP/1.1 load client (asyncio streams), so the load generator is not what is measured.

httpx spends ~1.6 ms of CPU per request; on a 2-core machine that is CPU taken from the server under test.
This client writes pre-serialised requests and reads ``Content-Length`` framed replies, as wrk would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence


def request(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> tuple[int, bytes]:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def run(
    host: str, port: int, requests: Sequence[bytes], connections: int, check: Callable[[int, bytes], None]
) -> None:
    """Send ``requests`` over ``connections`` keep-alive connections, each waiting for its reply."""
    queue = list(reversed(requests))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while queue:
                check(*await _exchange(reader, writer, queue.pop()))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
