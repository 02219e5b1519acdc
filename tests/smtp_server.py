"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it receives, parsed.

The alerts go through Django's own SMTP backend to it: what a test reads back is what a mail
server really received (Django's locmem backend would prove nothing about SMTP)."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from medicine_project.devstack import free_port


class _Keeper:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class SmtpServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._keeper = _Keeper()
        self._controller = Controller(self._keeper, hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[EmailMessage]:
        with self._keeper.lock:
            return list(self._keeper.messages)

    @property
    def recipients(self) -> list[list[str]]:
        with self._keeper.lock:
            return [rcpt for _, rcpt in self._keeper.envelopes]

    def to(self, address: str) -> list[EmailMessage]:
        """The messages delivered to `address` (the envelope's recipients), in order."""
        with self._keeper.lock:
            pairs = zip(self._keeper.messages, self._keeper.envelopes, strict=True)
            return [message for message, (_, rcpt) in pairs if address in rcpt]

    def wait_for(self, address: str, count: int, *, timeout: float = 30.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.to(address)) < count:
            if time.monotonic() > deadline:
                got = len(self.to(address))
                raise AssertionError(f"{got} messages to {address} after {timeout}s, expected {count}")
            time.sleep(0.05)
        return self.to(address)
