"""How ``credit-gateway sandbox`` runs uvicorn: each reply leaves in one write instead of two.

uvicorn writes a reply's status line and headers, then its body, as two writes on the socket: two system calls and
two segments for the client to wake up for. The sandbox shares its cores with the gateway in the benchmarks, where
that second write cost some 5 % of its CPU per request. The protocol below is uvicorn's, on a transport that holds
the writes of one turn of the event loop and sends them together at the end of it (at once past ``FLUSH_AT`` bytes,
so a large streamed reply still meets uvicorn's flow control).
"""

from __future__ import annotations

import asyncio
from typing import Any

FLUSH_AT = 64 * 1024


class JoinedWrites:
    """A transport whose writes within one turn of the event loop go out as one (everything else is the socket's)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport, self.loop = transport, loop
        self.pending: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append(data)
        self.size += len(data)
        if self.size >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            data = b"".join(self.pending)
            self.pending.clear()
            self.size = 0
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def protocol() -> type[Any] | str:
    """uvicorn's httptools protocol on ``JoinedWrites`` ("auto", uvicorn's own choice, without httptools)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] installs httptools
        return "auto"

    class JoinedWritesProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(JoinedWrites(transport, self.loop))  # type: ignore[arg-type]

    return JoinedWritesProtocol
