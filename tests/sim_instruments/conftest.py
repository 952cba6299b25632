"""Shared helpers for the simulator tests."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest


class LineClient:
    """A bare '\\n'-terminated TCP client, for talking to simulator faces without a driver."""

    def __init__(self, port: int, timeout: float = 2.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rw", newline="\n")

    def write(self, cmd: str) -> None:
        self.file.write(cmd + "\n")
        self.file.flush()

    def ask(self, cmd: str) -> str:
        self.write(cmd)
        return self.file.readline().rstrip("\n")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def line_client() -> Iterator[Callable[..., LineClient]]:
    """Factory of :class:`LineClient`; every client made is closed after the test."""
    made: list[LineClient] = []

    def connect(port: int, timeout: float = 2.0) -> LineClient:
        made.append(LineClient(port, timeout))
        return made[-1]

    yield connect
    for client in made:
        client.close()
