"""The `roomevents` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from types import FrameType
from typing import TYPE_CHECKING, Callable, Coroutine, Protocol

from service import logs, settings as settings_module
from service.settings import DEV_AUTH_TOKEN, Settings

if TYPE_CHECKING:  # imported where used: the broker and PostgreSQL modules are only needed by `dev`
    from service.history.embedded import EmbeddedPostgres
    from service.kafka.broker import EmbeddedBroker

HELP = """\
roomevents: Twilio Video room events, durably on Kafka, with materialized room state.

Settings come from environment variables, read and validated once at start;
`roomevents COMMAND --help` describes a command and lists the settings it reads.
"""

EPILOG = """\
scripts/bootstrap (run by scripts/dev and scripts/test) installs roomevents into .venv: call it as
.venv/bin/roomevents, or `source .venv/bin/activate` first to have `roomevents` on the PATH.
"""

SUMMARIES = {
    "dev": "everything on one machine: embedded broker and PostgreSQL, topics, ingress, materializer, archive",
    "ingress": "the HTTP ingress and read API (Rooms API, status callbacks, SSE stream)",
    "materializer": "the consumer group that folds events into room state",
    "archive": "the consumer group that writes every room document into the PostgreSQL history store",
    "migrate": "apply the history store's pending schema migrations, then exit",
    "topics": "create the events, state (compacted) and dead-letter topics if missing",
}

DESCRIPTIONS = {
    "dev": "Everything on one machine until Ctrl-C: an embedded Kafka-compatible broker (Tansu), the topics, "
    "the ingress, the materializer, the archive and the read API. Without KAFKA_BOOTSTRAP_SERVERS the broker is "
    "embedded; its data is kept in ROOMEVENTS_DEV_DATA (.dev-data by default) between runs, or in "
    "memory with ROOMEVENTS_DEV_DATA=memory (or when s3rver, its local S3 store, is not installed). "
    "Without ROOMEVENTS_DATABASE_URL a private PostgreSQL is the history store, its data kept in "
    "ROOMEVENTS_DEV_POSTGRES_DATA (.data/postgres by default). "
    "Prints the base URL, the broker and database addresses and the dev credentials.",
    "ingress": "The HTTP ingress and read API: Twilio-compatible Rooms API, status callbacks (signature "
    "checked), room reads and the SSE stream, against KAFKA_BOOTSTRAP_SERVERS. Creates missing "
    "topics at start.",
    "materializer": "The consumer group that folds room events into room state and publishes each room's "
    "document to the state topic, against KAFKA_BOOTSTRAP_SERVERS; /healthz, /readyz and "
    "/metrics on ROOMEVENTS_METRICS_PORT. Creates missing topics at start. With ROOMEVENTS_WORKERS > 1, that "
    "many worker processes join the group (roomevents-materializer-1..N) and share the metrics port.",
    "archive": "The consumer group that reads the state topic and writes every room document into the "
    "PostgreSQL history store (ROOMEVENTS_DATABASE_URL), against KAFKA_BOOTSTRAP_SERVERS; applies the "
    "schema migrations at start; /healthz, /readyz and /metrics on ROOMEVENTS_METRICS_PORT. Creates "
    "missing topics at start. Needs no Twilio credentials.",
    "migrate": "Apply the history store's pending schema migrations (ROOMEVENTS_DATABASE_URL), then exit. "
    "Needs neither Kafka nor Twilio credentials.",
    "topics": "Create the events, state (compacted) and dead-letter topics if missing, then exit.",
}


def _settings_help(role: str) -> str:
    """The environment variables `role` reads, with their defaults (the README's settings table)."""
    import textwrap

    lines = (
        ["settings (environment variables) it reads:"]
        if role != "dev"
        else ["settings (environment variables) it reads (dev runs every role; ROOMEVENTS_WORKERS does not apply):"]
    )
    for variable in settings_module.variables_for(role):
        text = f"{variable.meaning} (default: {variable.default})".replace("`", "")
        lines.append(f"  {variable.name}")
        lines.extend(textwrap.wrap(text, width=96, initial_indent="      ", subsequent_indent="      "))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    import textwrap

    parser = argparse.ArgumentParser(
        prog="roomevents", description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, title="commands")
    for name in ("dev", "ingress", "materializer", "archive", "migrate", "topics"):
        commands.add_parser(
            name,
            help=SUMMARIES[name],
            description=textwrap.fill(DESCRIPTIONS[name], 100),
            epilog=_settings_help(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    return parser


def _port_problem(host: str, port: int, variable: str) -> str | None:
    """One line naming `variable` when `host`:`port` cannot be bound (taken, or a bad address)."""
    import errno
    import socket

    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve ROOMEVENTS_HOST={host!r}: {exc.strerror}"
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use ({variable}={port}): stop what listens "
                    f"there or set {variable} to a free port"
                )
            return f"cannot listen on {host}:{port} (ROOMEVENTS_HOST, {variable}): {exc.strerror}"
    return None


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def _run_until_stopped(*services: Service) -> None:
    from service.runtime import install_signal_handlers, settle_gc

    stop = asyncio.Event()
    install_signal_handlers(stop)
    started = []
    try:
        for service in services:
            await service.start()
            started.append(service)
        settle_gc()
        await stop.wait()
    finally:
        for service in reversed(started):
            await service.stop()


async def _ingress_worker(cfg: Settings, _worker: int = 0) -> None:
    from service.runtime import IngressServer

    await _run_until_stopped(IngressServer(cfg))


async def _ingress(cfg: Settings) -> None:
    from service.kafka.topics import ensure_topics

    await ensure_topics(cfg)
    if cfg.workers == 1:
        await _ingress_worker(cfg)


async def _materializer_worker(cfg: Settings, worker: int = 0) -> None:
    """One materializer; worker n of ROOMEVENTS_WORKERS > 1 is group member roomevents-materializer-<n>."""
    from service.runtime import MaterializerService

    client_id = f"roomevents-materializer-{worker}" if worker else "roomevents-materializer"
    await _run_until_stopped(MaterializerService(cfg, client_id=client_id))


async def _materializer(cfg: Settings) -> None:
    from service.kafka.topics import ensure_topics

    await ensure_topics(cfg)
    if cfg.workers == 1:
        await _materializer_worker(cfg)


# The roles ROOMEVENTS_WORKERS applies to: each worker process runs this (settings, worker number 1..N).
WORKERS: dict[str, Callable[[Settings, int], Coroutine[None, None, None]]] = {
    "ingress": _ingress_worker,
    "materializer": _materializer_worker,
}


def _fork_workers(cfg: Settings, role: str) -> int:
    """ROOMEVENTS_WORKERS > 1: fork the role's workers (before any event loop exists), forward SIGTERM
    and SIGINT to them, and exit with the worst of their exit codes. Each worker's log lines carry
    `worker=<n>` (1..N)."""
    import os
    import signal

    import structlog

    children = []
    for worker in range(1, cfg.workers + 1):
        pid = os.fork()
        if pid == 0:
            code = 0
            structlog.contextvars.bind_contextvars(worker=worker)
            try:
                asyncio.run(WORKERS[role](cfg, worker))
            except BaseException:
                logs.get("roomevents").exception(f"{role} worker failed")
                code = 1
            logs.flush()
            os._exit(code)
        children.append(pid)

    running = set(children)
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in running:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    while running:
        child, status = os.wait()
        if child not in running:
            continue
        running.discard(child)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code  # killed by a signal: as a shell reports it
        worst = max(worst, code)
        if code and not stopping:
            # A worker failed on its own: stop the others too, so that the process (the pod) exits
            # and is restarted whole rather than running on with fewer workers.
            logs.get("roomevents").error(f"{role} worker exited; stopping the others", exit_code=code)
            logs.flush()
            forward(signal.SIGTERM, None)
    return worst


async def _archive(cfg: Settings) -> None:
    from service.kafka.topics import ensure_topics
    from service.runtime import ArchiveService

    await ensure_topics(cfg)
    await _run_until_stopped(ArchiveService(cfg))


async def _migrate(cfg: Settings) -> None:
    from service.history.archive import migrate_once
    from service.history.store import redact

    applied = await migrate_once(cfg)
    print(
        f"roomevents: history schema at {redact(cfg.database_url)} is up to date"
        + (f"; applied {', '.join(applied)}" if applied else " (nothing to apply)"),
        flush=True,
    )


async def _topics(cfg: Settings) -> None:
    from service.kafka.topics import ensure_topics

    await ensure_topics(cfg)


def _dev_broker(cfg: Settings) -> tuple[EmbeddedBroker, str]:
    """The embedded broker for `dev`: durable in cfg.dev_data unless it is "memory" or s3rver is
    missing (then in memory, said loudly). Returns (started broker, note for the banner)."""
    import os

    from service.kafka.broker import EmbeddedBroker, locate_s3rver

    if cfg.dev_data.lower() != "memory":
        if locate_s3rver() is not None:
            broker = EmbeddedBroker(data_dir=cfg.dev_data).start()
            shown = os.path.relpath(broker.data_dir)
            shown = broker.data_dir if shown.startswith("..") else shown
            return broker, f" (embedded Tansu; data kept in {shown} between runs)"
        logs.get("roomevents").warning(
            "s3rver not found (it needs Node.js and npm when scripts/bootstrap runs): the embedded broker "
            "keeps its data in memory, lost when dev stops"
        )
        note = " (embedded Tansu, IN MEMORY: s3rver missing, data is lost when dev stops)"
    else:
        note = " (embedded Tansu, in memory: ROOMEVENTS_DEV_DATA=memory, data is lost when dev stops)"
    return EmbeddedBroker().start(), note


async def _dev_postgres(cfg: Settings) -> tuple[EmbeddedPostgres | None, Settings, str]:
    """The private PostgreSQL for `dev` (data in cfg.dev_postgres_data) unless ROOMEVENTS_DATABASE_URL
    is set. Returns (started server or None, settings with its URL, note for the banner). A server that
    cannot start is a warning: dev then runs without a history store."""
    if cfg.database_url:
        return None, cfg, ""
    from service.history.embedded import EmbeddedPostgres, EmbeddedPostgresError

    try:
        postgres = await asyncio.to_thread(lambda: EmbeddedPostgres(cfg.dev_postgres_data).start())
    except EmbeddedPostgresError as exc:
        logs.get("roomevents").warning("no history store: the embedded PostgreSQL did not start", error=str(exc))
        return None, cfg, "none: " + str(exc)
    return postgres, cfg.with_overrides(database_url=postgres.url()), f" (embedded, data in {postgres.data_dir})"


async def _dev(cfg: Settings) -> None:
    broker = postgres = None
    storage_note = ""
    if not cfg.kafka_bootstrap_servers:
        broker, storage_note = _dev_broker(cfg)
        cfg = cfg.with_overrides(kafka_bootstrap_servers=broker.bootstrap_servers)
    try:
        postgres, cfg, database_note = await _dev_postgres(cfg)
        await _dev_services(cfg, storage_note, database_note)
    finally:
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)
            print("  embedded PostgreSQL stopped", flush=True)
        if broker is not None:
            await broker.astop()
            print("  embedded broker stopped", flush=True)


async def _dev_services(cfg: Settings, storage_note: str, database_note: str) -> None:
    from service.history.store import redact
    from service.kafka.topics import ensure_topics
    from service.metrics import Metrics
    from service.runtime import ArchiveService, IngressServer, MaterializerService

    await ensure_topics(cfg)
    metrics = Metrics()
    ingress = IngressServer(cfg, metrics)
    materializer = MaterializerService(cfg, metrics, serve_health=False)
    archive = ArchiveService(cfg, metrics, serve_health=False) if cfg.database_url else None
    shown_token = cfg.twilio_auth_token if cfg.twilio_auth_token == DEV_AUTH_TOKEN else "$TWILIO_AUTH_TOKEN"
    database = redact(cfg.database_url) + database_note if cfg.database_url else database_note
    banner = (
        "\n  roomevents dev is up\n"
        f"  base URL        {cfg.base_url()}\n"
        f"  callbacks       {cfg.base_url()}{cfg.callback_path}\n"
        f"  dashboard       {cfg.base_url()}/dashboard  (the account SID and auth token below)\n"
        f"  broker          {cfg.kafka_bootstrap_servers}{storage_note}\n"
        f"  database        {database}\n"
        f"  account SID     {cfg.twilio_account_sid}\n"
        f"  auth token      {cfg.twilio_auth_token if cfg.twilio_auth_token == DEV_AUTH_TOKEN else '(from TWILIO_AUTH_TOKEN, not shown)'}\n"
        f'  try             curl -u "{cfg.twilio_account_sid}:{shown_token}" '
        f"-d Type=group -d UniqueName=demo {cfg.base_url()}/v1/Rooms\n"
        "  stop            Ctrl-C\n"
    )

    class Banner:
        async def start(self) -> None:
            print(banner, flush=True)

        async def stop(self) -> None:
            pass

    services: list[Service] = [materializer, ingress, Banner()]
    if archive is not None:
        services.insert(1, archive)
    await _run_until_stopped(*services)


COMMANDS = {
    "dev": _dev,
    "ingress": _ingress,
    "materializer": _materializer,
    "archive": _archive,
    "migrate": _migrate,
    "topics": _topics,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = settings_module.load(role=args.command)
    except settings_module.SettingsError as exc:
        print(f"roomevents: configuration error: {exc}", file=sys.stderr)
        return 2
    # A taken port is found before anything starts (broker, producer, topics): one line, exit 2.
    listens = {
        "dev": ("ROOMEVENTS_PORT", cfg.port),
        "ingress": ("ROOMEVENTS_PORT", cfg.port),
        "materializer": ("ROOMEVENTS_METRICS_PORT", cfg.metrics_port),
        "archive": ("ROOMEVENTS_METRICS_PORT", cfg.metrics_port),
    }
    if args.command in listens:
        variable, port = listens[args.command]
        problem = _port_problem(cfg.host, port, variable)
        if problem:
            print(f"roomevents: {problem}", file=sys.stderr)
            return 2
    logs.setup(cfg.log_level, cfg.log_format)
    from aiokafka.errors import KafkaConnectionError

    from service.kafka.broker import BrokerError

    try:
        asyncio.run(COMMANDS[args.command](cfg))
        if args.command in WORKERS and cfg.workers > 1:
            return _fork_workers(cfg, args.command)
    except KeyboardInterrupt:
        pass
    except KafkaConnectionError as exc:
        print(
            f"roomevents: cannot reach Kafka at {cfg.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS): {exc}",
            file=sys.stderr,
        )
        return 1
    except BrokerError as exc:
        print(f"roomevents: embedded broker: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
