"""The `roomevents` command line."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

from service import logs, settings as settings_module
from service.settings import DEV_AUTH_TOKEN

HELP = """\
roomevents: Twilio Video room events, durably on Kafka, with materialized room state.

commands:
  dev           everything on one machine: starts an embedded Kafka-compatible broker (Tansu) and,
                unless ROOMEVENTS_DATABASE_URL is set, a private PostgreSQL (data in .data/postgres),
                creates the topics, runs the ingress, the materializer, the archive and the read
                API until Ctrl-C; prints the base URL, the broker, the database and the dev credentials
  ingress       the HTTP ingress and read API (Rooms API, status callbacks, SSE stream),
                against KAFKA_BOOTSTRAP_SERVERS
  materializer  the consumer group that folds events into room state, against
                KAFKA_BOOTSTRAP_SERVERS; health and metrics on ROOMEVENTS_METRICS_PORT
  archive       the consumer group that writes every room document of the state topic into the
                PostgreSQL history store (ROOMEVENTS_DATABASE_URL); applies the schema migrations
                at start; health and metrics on ROOMEVENTS_METRICS_PORT
  migrate       apply the history store's pending schema migrations (ROOMEVENTS_DATABASE_URL), then exit
  topics        create the events, state (compacted) and dead-letter topics if missing

Settings come from environment variables; see README.md for the table.
"""


async def _run_until_stopped(*services) -> None:
    from service.runtime import install_signal_handlers

    stop = asyncio.Event()
    install_signal_handlers(stop)
    started = []
    try:
        for service in services:
            await service.start()
            started.append(service)
        await stop.wait()
    finally:
        for service in reversed(started):
            await service.stop()


async def _ingress_worker(cfg) -> None:
    from service.runtime import IngressServer

    await _run_until_stopped(IngressServer(cfg))


async def _ingress(cfg) -> None:
    from service.kafka.topics import ensure_topics

    await ensure_topics(cfg)
    if cfg.workers == 1:
        await _ingress_worker(cfg)


def _fork_ingress_workers(cfg) -> int:
    """ROOMEVENTS_WORKERS > 1: fork the workers (before any event loop exists), forward SIGTERM and
    SIGINT to them, and exit with the worst of their exit codes."""
    import os
    import signal

    children = []
    for _ in range(cfg.workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                asyncio.run(_ingress_worker(cfg))
            except BaseException:
                logs.get("roomevents").exception("ingress worker failed")
                code = 1
            os._exit(code)
        children.append(pid)

    def forward(signum, _frame):
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    for child in children:
        _, status = os.waitpid(child, 0)
        worst = max(worst, os.waitstatus_to_exitcode(status))
    return worst


async def _materializer(cfg) -> None:
    from service.kafka.topics import ensure_topics
    from service.runtime import MaterializerService

    await ensure_topics(cfg)
    await _run_until_stopped(MaterializerService(cfg))


async def _archive(cfg) -> None:
    from service.kafka.topics import ensure_topics
    from service.runtime import ArchiveService

    await ensure_topics(cfg)
    await _run_until_stopped(ArchiveService(cfg))


async def _migrate(cfg) -> None:
    from service.history.archive import migrate_once
    from service.history.store import redact

    applied = await migrate_once(cfg)
    print(f"roomevents: history schema at {redact(cfg.database_url)} is up to date"
          + (f"; applied {', '.join(applied)}" if applied else " (nothing to apply)"), flush=True)


async def _topics(cfg) -> None:
    from service.kafka.topics import ensure_topics

    await ensure_topics(cfg)


async def _dev(cfg) -> None:
    from service.kafka.broker import EmbeddedBroker

    broker = postgres = None
    if not cfg.kafka_bootstrap_servers:
        broker = EmbeddedBroker().start()
        cfg = cfg.with_overrides(kafka_bootstrap_servers=broker.bootstrap_servers)
    database_note = ""
    try:
        if not cfg.database_url:
            from service.history.embedded import EmbeddedPostgres, EmbeddedPostgresError

            try:
                postgres = await asyncio.to_thread(
                    lambda: EmbeddedPostgres(os.path.join(cfg.dev_data_dir, "postgres")).start())
                cfg = cfg.with_overrides(database_url=postgres.url())
                database_note = f" (embedded, data in {postgres.data_dir})"
            except EmbeddedPostgresError as exc:
                logs.get("roomevents").warning("no history store: the embedded PostgreSQL did not start",
                                               error=str(exc))
                database_note = "none: " + str(exc)
        await _dev_services(cfg, broker, database_note)
    finally:
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)
            print("  embedded PostgreSQL stopped", flush=True)
        if broker is not None:
            await broker.astop()
            print("  embedded broker stopped", flush=True)


async def _dev_services(cfg, broker, database_note: str) -> None:
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
    banner = (
        "\n  roomevents dev is up\n"
        f"  base URL        {cfg.base_url()}\n"
        f"  callbacks       {cfg.base_url()}{cfg.callback_path}\n"
        f"  broker          {cfg.kafka_bootstrap_servers}{' (embedded Tansu, in memory)' if broker else ''}\n"
        f"  database        {redact(cfg.database_url) + database_note if cfg.database_url else database_note}\n"
        f"  account SID     {cfg.twilio_account_sid}\n"
        f"  auth token      {cfg.twilio_auth_token if cfg.twilio_auth_token == DEV_AUTH_TOKEN else '(from TWILIO_AUTH_TOKEN, not shown)'}\n"
        f"  try             curl -u \"{cfg.twilio_account_sid}:{shown_token}\" "
        f"-d Type=group -d UniqueName=demo {cfg.base_url()}/v1/Rooms\n"
        "  stop            Ctrl-C\n")

    class Banner:
        async def start(self):
            print(banner, flush=True)

        async def stop(self):
            pass

    await _run_until_stopped(*filter(None, (materializer, archive, ingress, Banner())))


COMMANDS = {"dev": _dev, "ingress": _ingress, "materializer": _materializer, "archive": _archive,
            "migrate": _migrate, "topics": _topics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="roomevents", description=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=sorted(COMMANDS), help="what to run (see above)")
    args = parser.parse_args(argv)
    try:
        cfg = settings_module.load(dev=args.command == "dev",
                                   credentials=args.command not in ("topics", "archive", "migrate"),
                                   kafka=args.command != "migrate", database=args.command in ("archive", "migrate"))
    except settings_module.SettingsError as exc:
        print(f"roomevents: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.setup(cfg.log_level, cfg.log_format)
    from aiokafka.errors import KafkaConnectionError

    try:
        asyncio.run(COMMANDS[args.command](cfg))
        if args.command == "ingress" and cfg.workers > 1:
            return _fork_ingress_workers(cfg)
    except KeyboardInterrupt:
        pass
    except KafkaConnectionError as exc:
        print(f"roomevents: cannot reach Kafka at {cfg.kafka_bootstrap_servers} "
              f"(KAFKA_BOOTSTRAP_SERVERS): {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
