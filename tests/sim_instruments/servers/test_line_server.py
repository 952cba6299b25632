"""The generic line server: queries, sets, terminators, clients, faults, restart."""

from __future__ import annotations

import socket

import pytest

from sim_instruments.servers.line_server import GARBAGE_REPLY, LineServer


class Echo:
    def __init__(self) -> None:
        self.value = "0"
        self.seen: list[str] = []

    def handle(self, command: str) -> str | None:
        self.seen.append(command)
        if command == "VAL?":
            return self.value
        if command.startswith("VAL "):
            self.value = command[4:]
            return "set commands never answer"
        return None


class Client:
    def __init__(self, port: int, timeout: float = 1.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, text: str, term: str = "\n") -> None:
        self.sock.sendall((text + term).encode())

    def line(self) -> str:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def ask(self, text: str, term: str = "\n") -> str:
        self.send(text, term)
        return self.line()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server():
    with LineServer(Echo(), port=0) as srv:
        yield srv


def test_query_set_and_crlf(server):
    c = Client(server.port)
    assert c.ask("VAL?") == "0"
    c.send("VAL 42")  # no reply to a set
    assert c.ask("VAL?\r", term="\n") == "42"
    c.send("VAL 7", term="\r\n")
    assert c.ask("VAL?", term="\r\n") == "7"
    assert server.handler.seen[-1] == "VAL?"  # '\r' stripped
    c.close()


def test_unknown_query_gets_no_reply(server):
    c = Client(server.port, timeout=0.3)
    c.send("NOPE?")
    with pytest.raises(socket.timeout):
        c.line()
    c.close()


def test_several_clients(server):
    a, b = Client(server.port), Client(server.port)
    a.send("VAL x")
    # a set gets no reply, so order it with a query on the same connection before
    # looking from the other one (connections are served by separate threads)
    assert a.ask("VAL?") == "x"
    assert b.ask("VAL?") == "x"
    a.close()
    b.close()


def test_mute_fault_reads_but_never_answers_nor_applies(server):
    c = Client(server.port, timeout=0.3)
    server.faults.mute = True
    c.send("VAL 5")
    c.send("VAL?")
    with pytest.raises(socket.timeout):
        c.line()
    server.faults.mute = False
    assert c.ask("VAL?") == "0"
    c.close()


def test_garbage_fault(server):
    c = Client(server.port)
    server.faults.garbage = True
    assert c.ask("VAL?") == GARBAGE_REPLY
    server.faults.garbage = False
    assert c.ask("VAL?") == "0"
    c.close()


def test_stop_drops_clients_and_restart_reuses_the_port():
    srv = LineServer(Echo(), port=0, reply_termination="\r\n").start()
    port = srv.port
    c = Client(port)
    assert c.ask("VAL?") == "0\r"
    srv.stop()
    with pytest.raises((ConnectionError, OSError)):
        c.ask("VAL?")
    with pytest.raises(OSError):
        Client(port, timeout=0.3)
    srv.start()
    assert srv.port == port
    d = Client(port)
    assert d.ask("VAL?") == "0\r"
    d.close()
    srv.stop()
