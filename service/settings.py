"""One settings object, read from environment variables and validated once at start.

A bad value raises SettingsError whose message names the variable; the CLI prints it on one line
and exits 2.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Mapping
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


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    twilio_account_sid: str = ""
    twilio_auth_token: str = field(default="", repr=False)
    # Accepted alongside the primary token while rotating auth tokens.
    twilio_auth_token_secondary: str = field(default="", repr=False)
    host: str = "0.0.0.0"
    port: int = 8080
    metrics_port: int = 9090
    public_url: str = ""
    events_topic: str = "room-events"
    state_topic: str = "room-state"
    dead_letter_topic: str = "room-events-dlq"
    consumer_group: str = "roomevents-materializer"
    callback_path: str = "/v1/Callbacks/Rooms"
    log_level: str = "INFO"
    log_format: str = "json"
    max_body_bytes: int = 64 * 1024
    # Deadline for one produce (send + broker ack); past it the client gets 503 + Retry-After.
    produce_timeout_ms: int = 5000
    # How long a create waits for the materializer's decision (unique name) before answering 503.
    create_timeout_ms: int = 10000
    # Requests allowed in flight before the ingress sheds with 503 (bounded queueing).
    max_in_flight: int = 1024
    enable_idempotence: bool = False
    # How long the producer waits to fill a batch: a little latency buys fewer, larger produce requests.
    linger_ms: int = 2
    # Ingress worker processes sharing the port; each has its own producer and read view, so
    # read-your-writes holds per process, not across workers (Kubernetes: prefer more pods).
    workers: int = 1
    trust_forwarded_headers: bool = False
    timers_enabled: bool = True
    topic_partitions: int = 6
    topic_replication: int = 1
    session_timeout_ms: int = 10000
    shutdown_grace_s: float = 10.0
    # On SIGTERM, how long /readyz reports not-ready while requests are still served, so load
    # balancers stop sending before the listener closes (Kubernetes: or a preStop sleep).
    drain_delay_s: float = 0.0
    # PostgreSQL history store (postgres:// URL); empty: no history, rooms that leave the hot state
    # are no longer served. Holds a password: kept out of repr.
    database_url: str = field(default="", repr=False)
    # Consumer group of `roomevents archive` (reads the state topic into the history store).
    archive_group: str = "roomevents-archive"
    # `roomevents dev`: where its private PostgreSQL keeps its data (relative to the working folder).
    dev_data_dir: str = ".data"

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)

    @property
    def auth_tokens(self) -> tuple[str, ...]:
        return tuple(t for t in (self.twilio_auth_token, self.twilio_auth_token_secondary) if t)

    def base_url(self) -> str:
        """The external base URL (what Twilio signs against and what resource URLs use)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


def _number(env: Mapping[str, str], name: str, default, lo, hi, parse, kind: str):
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


def load(env: Mapping[str, str] | None = None, *, dev: bool = False, credentials: bool = True,
         kafka: bool = True, database: bool = False) -> Settings:
    """Read and validate every setting. `dev` supplies dev credentials and a loopback host;
    `credentials=False` (for `roomevents topics`, which talks only to Kafka) lets them be absent;
    `kafka=False` (`roomevents migrate`) lets KAFKA_BOOTSTRAP_SERVERS be absent; `database=True`
    (`archive`, `migrate`) requires ROOMEVENTS_DATABASE_URL."""
    env = os.environ if env is None else env
    sid = env.get("TWILIO_ACCOUNT_SID", "")
    token = env.get("TWILIO_AUTH_TOKEN", "")
    if (dev or not credentials) and not sid:
        sid = DEV_ACCOUNT_SID
    if (dev or not credentials) and not token:
        token = DEV_AUTH_TOKEN
    if not sid:
        raise SettingsError("TWILIO_ACCOUNT_SID is required")
    if not _ACCOUNT_SID.match(sid):
        raise SettingsError(f"TWILIO_ACCOUNT_SID={sid!r} must match ^AC[0-9a-fA-F]{{32}}$")
    if not token:
        raise SettingsError("TWILIO_AUTH_TOKEN is required")

    bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if not bootstrap and not dev and kafka:
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
    if database and not database_url:
        raise SettingsError("ROOMEVENTS_DATABASE_URL is required (postgresql://user:password@host:5432/database)")
    if database_url:
        parts = urlsplit(database_url)
        if parts.scheme not in ("postgres", "postgresql") or not (parts.hostname or "host=" in parts.query):
            raise SettingsError("ROOMEVENTS_DATABASE_URL must be a postgres:// or postgresql:// URL with a host "
                                "(postgresql://user:password@host:5432/database)")

    workers = _int(env, "ROOMEVENTS_WORKERS", 1, 1, 64)
    if workers > 1 and _int(env, "ROOMEVENTS_PORT", 8080, 0, 65535) == 0:
        raise SettingsError("ROOMEVENTS_WORKERS > 1 needs a fixed ROOMEVENTS_PORT (not 0): the workers share it")

    return Settings(
        kafka_bootstrap_servers=bootstrap,
        twilio_account_sid=sid,
        twilio_auth_token=token,
        twilio_auth_token_secondary=env.get("TWILIO_AUTH_TOKEN_SECONDARY", ""),
        host=env.get("ROOMEVENTS_HOST") or ("127.0.0.1" if dev else "0.0.0.0"),
        port=_int(env, "ROOMEVENTS_PORT", 8080, 0, 65535),
        metrics_port=_int(env, "ROOMEVENTS_METRICS_PORT", 9090, 0, 65535),
        public_url=public_url,
        events_topic=_topic(env, "ROOMEVENTS_EVENTS_TOPIC", "room-events"),
        state_topic=_topic(env, "ROOMEVENTS_STATE_TOPIC", "room-state"),
        dead_letter_topic=_topic(env, "ROOMEVENTS_DEAD_LETTER_TOPIC", "room-events-dlq"),
        consumer_group=env.get("ROOMEVENTS_CONSUMER_GROUP") or "roomevents-materializer",
        callback_path=callback_path,
        log_level=log_level,
        log_format=log_format,
        max_body_bytes=_int(env, "ROOMEVENTS_MAX_BODY_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
        produce_timeout_ms=_int(env, "ROOMEVENTS_PRODUCE_TIMEOUT_MS", 5000, 100, 120000),
        create_timeout_ms=_int(env, "ROOMEVENTS_CREATE_TIMEOUT_MS", 10000, 100, 120000),
        max_in_flight=_int(env, "ROOMEVENTS_MAX_IN_FLIGHT", 1024, 1, 1_000_000),
        enable_idempotence=_bool(env, "ROOMEVENTS_ENABLE_IDEMPOTENCE", False),
        linger_ms=_int(env, "ROOMEVENTS_LINGER_MS", 2, 0, 1000),
        workers=workers,
        trust_forwarded_headers=_bool(env, "ROOMEVENTS_TRUST_FORWARDED", False),
        timers_enabled=_bool(env, "ROOMEVENTS_TIMERS", True),
        topic_partitions=_int(env, "ROOMEVENTS_TOPIC_PARTITIONS", 6, 1, 10000),
        topic_replication=_int(env, "ROOMEVENTS_TOPIC_REPLICATION", 1, 1, 100),
        session_timeout_ms=_int(env, "ROOMEVENTS_SESSION_TIMEOUT_MS", 10000, 1000, 300000),
        shutdown_grace_s=_float(env, "ROOMEVENTS_SHUTDOWN_GRACE_S", 10.0, 0, 600),
        drain_delay_s=_float(env, "ROOMEVENTS_DRAIN_DELAY_S", 0.0, 0, 600),
        database_url=database_url,
        archive_group=env.get("ROOMEVENTS_ARCHIVE_GROUP") or "roomevents-archive",
        dev_data_dir=env.get("ROOMEVENTS_DEV_DATA_DIR") or ".data",
    )
