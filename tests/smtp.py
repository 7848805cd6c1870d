"""A real SMTP server (aiosmtpd) in the test process, on a loopback port the OS chooses.

``Inbox`` keeps every message it accepts. While ``accept`` is not set it answers ``451`` (try again later) to
each recipient, as a mail server does during an outage or greylisting; ``permanent`` makes it answer ``550``.
The socket is bound before the server starts, so there is no port to guess and nothing to wait for.
"""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Inbox:
    accept: threading.Event = field(default_factory=threading.Event)
    permanent: bool = False
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refused: int = 0
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        self.accept.set()
        self._lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.permanent:
            return "550 5.1.1 mailbox unavailable"
        if not self.accept.is_set():
            with self._lock:
                self.refused += 1
            return "451 4.3.2 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 2.0.0 accepted"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for rcpt, m in self.messages if address in rcpt]


class _BoundController(Controller):
    """aiosmtpd's controller on a socket we bound ourselves (port 0: the OS picks a free one)."""

    def __init__(self, handler: Inbox, sock: socket.socket) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1])
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


@contextmanager
def smtp_server() -> Iterator[Inbox]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    inbox = Inbox(port=sock.getsockname()[1])
    controller = _BoundController(inbox, sock)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
