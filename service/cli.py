"""The `roomevents` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from types import FrameType
from typing import Protocol

from service import logs, settings as settings_module
from service.settings import DEV_AUTH_TOKEN, Settings

HELP = """\
roomevents: Twilio Video room events, durably on Kafka, with materialized room state.

commands:
  dev           everything on one machine: starts an embedded Kafka-compatible broker (Tansu),
                creates the topics, runs the ingress, the materializer and the read API until
                Ctrl-C; prints the base URL, the broker address and the dev credentials
  ingress       the HTTP ingress and read API (Rooms API, status callbacks, SSE stream),
                against KAFKA_BOOTSTRAP_SERVERS
  materializer  the consumer group that folds events into room state, against
                KAFKA_BOOTSTRAP_SERVERS; health and metrics on ROOMEVENTS_METRICS_PORT
  topics        create the events, state (compacted) and dead-letter topics if missing

Settings come from environment variables; see README.md for the table.
"""


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def _run_until_stopped(*services: Service) -> None:
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


async def _ingress_worker(cfg: Settings) -> None:
    from service.runtime import IngressServer

    await _run_until_stopped(IngressServer(cfg))


async def _ingress(cfg: Settings) -> None:
    from service.kafka.topics import ensure_topics

    await ensure_topics(cfg)
    if cfg.workers == 1:
        await _ingress_worker(cfg)


def _fork_ingress_workers(cfg: Settings) -> int:
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

    def forward(signum: int, _frame: FrameType | None) -> None:
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


async def _materializer(cfg: Settings) -> None:
    from service.kafka.topics import ensure_topics
    from service.runtime import MaterializerService

    await ensure_topics(cfg)
    await _run_until_stopped(MaterializerService(cfg))


async def _topics(cfg: Settings) -> None:
    from service.kafka.topics import ensure_topics

    await ensure_topics(cfg)


async def _dev(cfg: Settings) -> None:
    from service.kafka.broker import EmbeddedBroker
    from service.kafka.topics import ensure_topics
    from service.metrics import Metrics
    from service.runtime import IngressServer, MaterializerService

    broker = None
    if not cfg.kafka_bootstrap_servers:
        broker = EmbeddedBroker().start()
        cfg = cfg.with_overrides(kafka_bootstrap_servers=broker.bootstrap_servers)
    try:
        await ensure_topics(cfg)
        metrics = Metrics()
        ingress = IngressServer(cfg, metrics)
        materializer = MaterializerService(cfg, metrics, serve_health=False)
        shown_token = cfg.twilio_auth_token if cfg.twilio_auth_token == DEV_AUTH_TOKEN else "$TWILIO_AUTH_TOKEN"
        banner = (
            "\n  roomevents dev is up\n"
            f"  base URL        {cfg.base_url()}\n"
            f"  callbacks       {cfg.base_url()}{cfg.callback_path}\n"
            f"  broker          {cfg.kafka_bootstrap_servers}{' (embedded Tansu, in memory)' if broker else ''}\n"
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

        await _run_until_stopped(materializer, ingress, Banner())
    finally:
        if broker is not None:
            await broker.astop()
            print("  embedded broker stopped", flush=True)


COMMANDS = {"dev": _dev, "ingress": _ingress, "materializer": _materializer, "topics": _topics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="roomevents", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=sorted(COMMANDS), help="what to run (see above)")
    args = parser.parse_args(argv)
    try:
        cfg = settings_module.load(dev=args.command == "dev", credentials=args.command != "topics")
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
        print(
            f"roomevents: cannot reach Kafka at {cfg.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS): {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
