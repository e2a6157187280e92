"""A private PostgreSQL for `roomevents dev` and the tests: initdb into a folder, run it on a free
loopback port, stop it. One module for both, so both start it the same way.

Binaries, first found wins: ROOMEVENTS_POSTGRES_BIN (a folder holding initdb, postgres and pg_ctl),
the machine's /usr/lib/postgresql/<newest>/bin, `pg_config --bindir` on PATH, then the server
packaged on PyPI as `pgserver` (its pginstall/bin), which scripts/bootstrap installs into the venv
when the machine has no PostgreSQL.

initdb and postgres refuse to run as root. Under root the server runs as the `postgres` system
user when there is one, else as `nobody`: the data folder is created for (and owned by) that user,
and every folder above it must be enterable by it (checked, with a clear error).

The server trusts connections from loopback only (listen_addresses=127.0.0.1, no password): it is a
developer's and a test run's private database, never a production one.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

BIN_ENV = "ROOMEVENTS_POSTGRES_BIN"
SUPERUSER = "roomevents"
DATABASE = "roomevents"
_NEEDED = ("initdb", "postgres", "pg_ctl")


class EmbeddedPostgresError(RuntimeError):
    pass


def _complete(folder: str | os.PathLike | None) -> str | None:
    if folder and all(os.access(os.path.join(folder, b), os.X_OK) for b in _NEEDED):
        return str(folder)
    return None


def locate_binaries() -> str:
    """The folder with initdb, postgres and pg_ctl; EmbeddedPostgresError when there is none."""
    override = os.environ.get(BIN_ENV)
    if override:
        if not _complete(override):
            raise EmbeddedPostgresError(f"{BIN_ENV}={override!r} does not hold executable {', '.join(_NEEDED)}")
        return override
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in versions:
        if _complete(folder):
            return folder
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            found = _complete(
                subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout.strip()
            )
        except (OSError, subprocess.SubprocessError):
            found = None
        if found:
            return found
    spec = importlib.util.find_spec("pgserver")  # PyPI-packaged server (no import: only its files)
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            found = _complete(os.path.join(root, "pginstall", "bin"))
            if found:
                return found
    raise EmbeddedPostgresError(
        "no PostgreSQL server binaries: install PostgreSQL (apt-get install postgresql), `pip install pgserver`, "
        f"or set {BIN_ENV} to a folder holding {', '.join(_NEEDED)}"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class RunAs:
    """Who the server runs as: the current user, or (under root) an unprivileged one."""

    uid: int
    gid: int
    name: str

    @property
    def switches(self) -> bool:
        return self.uid != os.geteuid()


def server_user() -> RunAs:
    if os.geteuid() != 0:
        return RunAs(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name)
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(entry.pw_uid, entry.pw_gid, name)
    raise EmbeddedPostgresError(
        "running as root and there is neither a `postgres` nor a `nobody` user to run "
        "PostgreSQL as (initdb and postgres refuse root)"
    )


def _enterable_by(path: Path, user: RunAs) -> Path | None:
    """The first folder at or above `path` that `user` cannot enter, else None."""
    if not user.switches:
        return None
    groups = {user.gid} | {g.gr_gid for g in __import__("grp").getgrall() if user.name in g.gr_mem}
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_uid == user.uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return folder
    return None


class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1:<port> whose data lives in `data_dir` (kept across runs).

    `start()` runs initdb the first time, starts the server and creates the `roomevents` database;
    `stop(mode)` stops it ("fast" by default; "immediate" is a crash as far as clients can tell).
    """

    def __init__(
        self, data_dir: str | os.PathLike, *, port: int | None = None, log_path: str | None = None, durable: bool = True
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.log_path = Path(log_path) if log_path else self.data_dir.with_name(self.data_dir.name + ".log")
        # Tests run without fsync: a crash of the machine is not what they test.
        self.durable = durable
        self.bin = locate_binaries()
        self.user = server_user()
        self.process: subprocess.Popen | None = None
        self.adopted_pid: int | None = None

    # ------------------------------------------------------------ paths and URLs

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def _run(self, args: list[str], timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        kwargs = {}
        if self.user.switches:
            kwargs = {"user": self.user.uid, "group": self.user.gid, "extra_groups": []}
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=self.data_dir.parent,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    def _prepare_folder(self) -> None:
        parent = self.data_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        blocked = _enterable_by(parent, self.user)
        if blocked is not None:
            raise EmbeddedPostgresError(
                f"PostgreSQL runs as {self.user.name!r} (not root) and cannot enter {blocked}: choose a data folder "
                f"{self.user.name!r} can reach, or make {blocked} enterable (chmod o+x)"
            )
        if not self.data_dir.exists():
            self.data_dir.mkdir(mode=0o700)
        if self.user.switches:
            os.chown(self.data_dir, self.user.uid, self.user.gid)
        os.chmod(self.data_dir, 0o700)

    def _initdb(self) -> None:
        if self.initialized:
            return
        self._prepare_folder()
        args = [
            os.path.join(self.bin, "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ]
        if not self.durable:
            args.append("--no-sync")
        self._run(args)

    # ------------------------------------------------------------ running

    def _running_pid(self) -> int | None:
        """The pid of a postmaster already serving this data folder (a previous run left it)."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid = int(lines[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        if len(lines) > 3 and lines[3].strip().isdigit():
            self.port = int(lines[3])
        return pid

    def start(self, timeout: float = 60.0) -> "EmbeddedPostgres":
        self._initdb()
        self._prepare_folder()
        pid = self._running_pid()
        if pid is not None:
            # A server left by a killed run of the same folder: use it (and stop it at the end).
            self.adopted_pid = pid
            self._wait_ready(timeout)
            self._create_database()
            return self
        self.port = self.port or free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "logging_collector": "off",
        }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        args = [os.path.join(self.bin, "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        kwargs = {}
        if self.user.switches:
            kwargs = {"user": self.user.uid, "group": self.user.gid, "extra_groups": []}
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                start_new_session=True,
                **kwargs,
            )
        finally:
            log.close()
        self._wait_ready(timeout)
        self._create_database()
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pid_file = self.data_dir / "postmaster.pid"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise EmbeddedPostgresError(
                    f"postgres exited with {self.process.returncode}; see {self.log_path}: " + self._log_tail()
                )
            try:
                lines = pid_file.read_text().splitlines()
            except OSError:
                lines = []
            # Line 8 of postmaster.pid is the server's status; "ready" once it accepts connections.
            if len(lines) >= 8 and lines[7].strip() == "ready":
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise EmbeddedPostgresError(f"postgres not ready within {timeout}s; see {self.log_path}: " + self._log_tail())

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def _create_database(self) -> None:
        psql = os.path.join(self.bin, "psql")
        if not os.access(psql, os.X_OK):
            raise EmbeddedPostgresError(f"no psql next to postgres in {self.bin}")
        base = ["-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-X", "-q", "-t", "-A"]
        env = os.environ | {"PGCONNECT_TIMEOUT": "10"}
        exists = subprocess.run(
            [psql, *base, "-d", "postgres", "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        if exists.returncode != 0:
            raise EmbeddedPostgresError(f"psql failed: {exists.stderr.strip()}")
        if exists.stdout.strip() != "1":
            made = subprocess.run(
                [psql, *base, "-d", "postgres", "-c", f'CREATE DATABASE "{DATABASE}"'],
                capture_output=True,
                text=True,
                env=env,
                timeout=30,
            )
            if made.returncode != 0 and "already exists" not in made.stderr:
                raise EmbeddedPostgresError(f"CREATE DATABASE failed: {made.stderr.strip()}")

    @property
    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self._running_pid() is not None

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """pg_ctl stop -m `mode` (smart, fast or immediate) as the server's user; waits for the exit."""
        if not self.running:
            self.process = None
            return
        result = self._run(
            [
                os.path.join(self.bin, "pg_ctl"),
                "stop",
                "-D",
                str(self.data_dir),
                "-m",
                mode,
                "-w",
                "-t",
                str(int(timeout)),
            ],
            timeout=timeout + 10,
            check=False,
        )
        if result.returncode != 0 and self.running:
            pid = self.process.pid if self.process is not None else self._running_pid()
            if pid:
                os.kill(pid, {"immediate": signal.SIGQUIT, "fast": signal.SIGINT}.get(mode, signal.SIGTERM))
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.adopted_pid = None

    def restart(self, timeout: float = 60.0) -> None:
        """Start again on the same port and data (after stop)."""
        self.start(timeout)
