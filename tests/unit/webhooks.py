"""Real local webhooks that misbehave on purpose, on ephemeral ports: for the alert and REST-client tests.

Each is a plain TCP server in a thread that reads one HTTP request and answers it in its own
(wrong) way, so the alert code meets real sockets, real partial answers and real stalls.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: How a server treats one connection: the socket, and the list of alerts it received to append to.
Behaviour = Callable[[socket.socket, list[dict[str, Any]]], None]

#: The seconds between two bytes of a trickling answer.
TRICKLE_EVERY_S = 0.5


def read_request(conn: socket.socket) -> bytes:
    """The body of the HTTP request on `conn` (headers up to the blank line, then Content-Length bytes)."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


def answer(status: str, body: bytes = b"") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body


def good(conn: socket.socket, received: list[dict[str, Any]]) -> None:
    """Takes the alert and answers 204."""
    received.append(json.loads(read_request(conn)))
    conn.sendall(answer("204 No Content"))


def failing(conn: socket.socket, received: list[dict[str, Any]]) -> None:
    """Reads the alert and answers 500."""
    read_request(conn)
    conn.sendall(answer("500 Internal Server Error", b"down for maintenance"))


def short(conn: socket.socket, received: list[dict[str, Any]]) -> None:
    """Promises 100 bytes, sends 3 and hangs up."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")


def stalling(conn: socket.socket, received: list[dict[str, Any]]) -> None:
    """Reads the alert and never answers (until the client goes away)."""
    read_request(conn)
    conn.settimeout(None)
    conn.recv(1)  # returns when the client shuts its side


def trickling(conn: socket.socket, received: list[dict[str, Any]]) -> None:
    """Answers 200 one byte every TRICKLE_EVERY_S: each read is quick, the whole answer takes a minute."""
    read_request(conn)
    for byte in answer("200 OK", b"x" * 80):
        conn.sendall(bytes([byte]))
        time.sleep(TRICKLE_EVERY_S)


@contextmanager
def webhook(behaviour: Behaviour) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A server on 127.0.0.1:<ephemeral port> that treats each connection with `behaviour`; yields its
    URL and the alerts it received."""
    received: list[dict[str, Any]] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def handle(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # OSError: the client gave up (the point of most of these)
            behaviour(conn, received)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hooks/secret-token", received
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
