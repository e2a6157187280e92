"""Materializer benchmark: fold N events over R rooms to final state, against the embedded broker.

In the same run, a bare consumer reads the same records and does nothing: the ceiling. Then the
materializer folds them with 1 worker (in this process) and with N worker processes (spawned, each a
MaterializerService in one consumer group, as `ROOMEVENTS_WORKERS=N roomevents materializer` runs
them). Each materializer run has its own group, state and changelog topics, so each starts from the
first event. For N > 1 the ceiling of as many processes is measured too (N bare consumers, each on
its share of the partitions), so N workers are also compared like for like. Prints events/s of each
and its ratios to both ceilings.
Run: .venv/bin/python bench/materializer.py [--events 1000000 --rooms 10000 --workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import queue
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from proc_cpu import machine_cpu, process_cpu  # noqa: E402

from service import logs  # noqa: E402
from service.events import (
    cloudevents,  # noqa: E402
    record as records,
)
from service.kafka.broker import EmbeddedBroker  # noqa: E402
from service.kafka.topics import ensure_topics  # noqa: E402
from service.metrics import Metrics  # noqa: E402
from service.runtime import MaterializerService, settle_gc  # noqa: E402
from service.settings import Settings  # noqa: E402

ACCOUNT = "AC" + "b2" * 16


def generate(events: int, rooms: int, seed: int = 1):
    """Realistic callbacks spread over `rooms` rooms: participants join, publish, toggle, leave."""
    rng = random.Random(seed)
    per_room = events // rooms
    base = 1_900_000_000_000
    kinds = ("track-enabled", "track-disabled")
    for n in range(events):
        room = n % rooms
        step = n // rooms
        sid = f"RM{room:032x}"
        p = step % 8
        psid = f"PA{room:016x}{p:016x}"
        at = base + room * 7 + step * 1000
        if step == 0:
            event, extra = "room-created", {}
        elif step == per_room - 1:
            event, extra = "room-ended", {"RoomDuration": str(step)}
        elif step <= 8:
            event, extra = (
                "participant-connected",
                {"ParticipantSid": psid, "ParticipantIdentity": f"u{p}", "ParticipantStatus": "connected"},
            )
        elif step <= 16:
            event, extra = (
                "track-added",
                {
                    "ParticipantSid": psid,
                    "ParticipantIdentity": f"u{p}",
                    "ParticipantStatus": "connected",
                    "TrackSid": f"MT{room:016x}{p:016x}",
                    "TrackKind": rng.choice(("audio", "video")),
                },
            )
        else:
            event, extra = (
                rng.choice(kinds),
                {
                    "ParticipantSid": psid,
                    "ParticipantIdentity": f"u{p}",
                    "ParticipantStatus": "connected",
                    "TrackSid": f"MT{room:016x}{p:016x}",
                    "TrackKind": "audio",
                },
            )
        params = {
            "AccountSid": ACCOUNT,
            "RoomSid": sid,
            "RoomName": sid,
            "RoomType": "group",
            "RoomStatus": "in-progress",
            "StatusCallbackEvent": event,
            "Timestamp": records.format_ms(at),
            "SequenceNumber": str(step),
            **extra,
        }
        yield records.from_callback({k: [v] for k, v in params.items()}, at + 3)


async def preload(settings: Settings, events: int, rooms: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    try:
        pending = []
        for event in generate(events, rooms):
            pending.append(
                await producer.send(
                    settings.events_topic,
                    records.encode(event),
                    key=records.partition_key(event),
                    headers=cloudevents.event_headers(event),
                )
            )
            if len(pending) >= 50_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


class CpuMeter:
    """CPU seconds spent over a timed window by the measured processes, by the broker, and by
    everything else on the machine: another user's load during a run makes it unfair, so it is shown."""

    def __init__(self, broker_pid: int) -> None:
        self.broker_pid = broker_pid
        self.pids: list[int] = []
        self._start: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.used: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def _now(self) -> tuple[float, float, float]:
        return sum(map(process_cpu, self.pids)), process_cpu(self.broker_pid), machine_cpu()

    def start(self, pids: list[int]) -> None:
        self.pids = pids
        self._start = self._now()

    def stop(self) -> None:
        ours, broker, machine = (b - a for a, b in zip(self._start, self._now(), strict=True))
        self.used = (ours, broker, machine - ours - broker)


async def ceiling(settings: Settings, events: int, cpu: CpuMeter) -> float:
    consumer = AIOKafkaConsumer(
        settings.events_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.consumer_group + "-ceiling",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < events:
            batches = await consumer.getmany(timeout_ms=200, max_records=20000)
            if batches and started is None:
                started = time.perf_counter()
                cpu.start([os.getpid()])
            for messages in batches.values():
                seen += len(messages)
        elapsed = time.perf_counter() - started
        cpu.stop()
        return elapsed
    finally:
        await consumer.stop()


async def materialize(settings: Settings, events: int, cpu: CpuMeter) -> tuple[float, int]:
    """From the moment the materializer owns its partitions (rebuilt, ready to fold) until every
    event's offset is committed, i.e. folded and its rooms' states and changelog acknowledged."""
    service = MaterializerService(settings, Metrics(), serve_health=False)
    await service.start()
    m = service.materializer
    try:
        while not m.ready:
            await asyncio.sleep(0.001)
        started = time.perf_counter()
        cpu.start([os.getpid()])
        while sum(m.committed.values()) < events:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        cpu.stop()
        rooms = sum(len(b.rooms) for b in m.books.values())
        return elapsed, rooms
    finally:
        await service.stop()


# ---------------------------------------------------------------- N worker processes


def _reap(procs: list, done) -> None:
    """Tell the spawned processes to finish (`done` set), wait for them, kill any that hang."""
    done.set()
    for proc in procs:
        proc.join(30)
        if proc.exitcode is None:
            proc.kill()


def _ceiling_worker_main(settings: Settings, worker: int, workers: int, reports: multiprocessing.Queue, go) -> None:
    """One spawned do-nothing consumer of the N-process ceiling: it reads partitions p with
    p % workers == worker (assigned, not joined: the split is the one a settled group of N would
    make, without waiting for the join), from the first record to the end, and does nothing with them."""
    asyncio.run(_ceiling_worker(settings, worker, workers, reports, go))


async def _ceiling_worker(settings: Settings, worker: int, workers: int, reports: multiprocessing.Queue, go) -> None:
    settle_gc()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    try:
        mine = [
            TopicPartition(settings.events_topic, p) for p in range(settings.topic_partitions) if p % workers == worker
        ]
        consumer.assign(mine)
        await consumer.seek_to_beginning(*mine)
        reports.put(("ready", worker))
        while not go.is_set():
            await asyncio.sleep(0.001)
        # To each partition's end by the high watermark its fetches report (Tansu's ListOffsets answer
        # for "latest" fell short of the end here; the fetches' watermark does not).
        seen = 0
        next_offsets = dict.fromkeys(mine, 0)
        while any(consumer.highwater(tp) is None or next_offsets[tp] < consumer.highwater(tp) for tp in mine):
            batches = await consumer.getmany(timeout_ms=200, max_records=20000)
            for tp, messages in batches.items():
                seen += len(messages)
                next_offsets[tp] = messages[-1].offset + 1
        reports.put(("done", worker, seen))
    finally:
        await consumer.stop()


def ceiling_workers(settings: Settings, events: int, workers: int, cpu: CpuMeter) -> float:
    """The ceiling for `workers` processes: as many do-nothing consumers, each on its share of the
    partitions, all started at once; timed until the last has read its share."""
    spawn = multiprocessing.get_context("spawn")
    reports = spawn.Queue()
    go = spawn.Event()
    procs = [
        spawn.Process(target=_ceiling_worker_main, args=(settings, n, workers, reports, go)) for n in range(workers)
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            reports.get(timeout=120)
        cpu.start([proc.pid for proc in procs])
        started = time.perf_counter()
        go.set()
        seen = sum(reports.get(timeout=300)[2] for _ in procs)
        elapsed = time.perf_counter() - started
        cpu.stop()
        assert seen == events, (seen, events)
        return elapsed
    finally:
        _reap(procs, go)


def _worker_main(settings: Settings, worker: int, reports: multiprocessing.Queue, stop) -> None:
    """One spawned worker: a MaterializerService as `roomevents materializer`'s worker <n> runs it.
    Reports ("state", worker, ready, partitions, committed) whenever that changes (polled every 5 ms,
    as materialize() polls), then ("done", worker, rooms, committed) once `stop` is set."""
    logs.setup("WARNING", "console")
    asyncio.run(_worker(settings, worker, reports, stop))


async def _worker(settings: Settings, worker: int, reports: multiprocessing.Queue, stop) -> None:
    service = MaterializerService(
        settings, Metrics(), serve_health=False, client_id=f"roomevents-materializer-{worker}"
    )
    await service.start()
    settle_gc()  # as service/cli.py's workers do once started
    m = service.materializer
    try:
        last = None
        while not stop.is_set():
            now = (m.ready, m.partitions, sum(m.committed.values()))
            if now != last:
                reports.put(("state", worker, m.ready, m.partitions, dict(m.committed)))
                last = now
            await asyncio.sleep(0.005)
        reports.put(("done", worker, sum(len(b.rooms) for b in m.books.values()), dict(m.committed)))
    finally:
        await service.stop()


async def group_committed(settings: Settings) -> dict[int, int]:
    """The group's committed offset per events partition, read by a consumer of the group that never
    subscribes (so never joins it)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=settings.consumer_group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        out = {}
        for p in range(settings.topic_partitions):
            out[p] = await consumer.committed(TopicPartition(settings.events_topic, p)) or 0
        return out
    finally:
        await consumer.stop()


def materialize_workers(settings: Settings, events: int, workers: int, cpu: CpuMeter) -> tuple[float, int, int, int]:
    """`workers` spawned processes in one group. Timing starts once every worker is ready and owns
    partitions, disjoint and covering all of them (the group has settled: no rebalance pending), and
    stops when the group's committed offsets (per partition the highest any worker reports) reach
    `events`. The worker that joined first may have folded events before the group settled: those
    committed at the start are returned and left out of the rate. Returns (seconds, events timed,
    events already committed at the start, rooms held by the workers at the end)."""
    spawn = multiprocessing.get_context("spawn")
    reports = spawn.Queue()
    stop = spawn.Event()
    procs = [spawn.Process(target=_worker_main, args=(settings, n, reports, stop)) for n in range(1, workers + 1)]
    for proc in procs:
        proc.start()
    state: dict[int, tuple[bool, tuple[int, ...]]] = {}
    committed: dict[int, int] = {}
    everything = set(range(settings.topic_partitions))

    def receive(timeout: float = 120.0) -> tuple:
        try:
            report = reports.get(timeout=timeout)
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode is not None]
            raise SystemExit(f"no report from the workers in {timeout}s (exited: {dead})") from None
        if report[0] == "state":
            _, worker, ready, partitions, offsets = report
            state[worker] = (ready, partitions)
            for p, offset in offsets.items():
                committed[p] = max(committed.get(p, 0), offset)
        return report

    def settled() -> bool:
        owned = [set(partitions) for ready, partitions in state.values() if ready and partitions]
        return len(owned) == workers and sum(map(len, owned)) == len(everything) and set().union(*owned) == everything

    try:
        while not settled():
            receive()
        started = time.perf_counter()
        cpu.start([proc.pid for proc in procs])
        already = sum(committed.values())
        while sum(committed.values()) < events:
            receive()
        elapsed = time.perf_counter() - started
        cpu.stop()
        stop.set()
        rooms = 0
        done = 0
        while done < workers:
            report = receive()
            if report[0] == "done":
                rooms += report[2]
                done += 1
        return elapsed, events - already, already, rooms
    finally:
        _reap(procs, stop)


def fresh(settings: Settings, workers: int) -> Settings:
    """A run's own group, state and changelog topics: it starts from the first event and restores nothing."""
    return settings.with_overrides(
        consumer_group=f"bench-materializer-{workers}w",
        state_topic=f"bench-state-{workers}w",
        changelog_topic=f"bench-changelog-{workers}w",
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rooms", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        metavar="N",
        help="materializer worker counts to measure, each in its own run (default: 1 2)",
    )
    args = parser.parse_args()
    logs.setup("WARNING", "console")
    broker = EmbeddedBroker().start()
    try:
        settings = Settings(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            twilio_account_sid=ACCOUNT,
            twilio_auth_token="bench",
            events_topic="bench-events",
            state_topic="bench-state",
            dead_letter_topic="bench-dlq",
            consumer_group="bench-materializer",
            topic_partitions=args.partitions,
            session_timeout_ms=6000,
            timers_enabled=False,
        )
        await ensure_topics(settings)
        t = time.perf_counter()
        await preload(settings, args.events, args.rooms)
        print(
            f"preloaded {args.events:,} events over {args.rooms:,} rooms in {time.perf_counter() - t:.1f}s", flush=True
        )
        # Every run under the collector settings the roomevents processes use (service/runtime.py).
        settle_gc()
        cpu = CpuMeter(broker.process.pid)
        ceiling_s = await ceiling(settings, args.events, cpu)
        ceil_rate = args.events / ceiling_s
        # (label, events timed, seconds, events/s, CPU s, the ceiling of as many processes)
        rows = [("bare consumer (ceiling)", args.events, ceiling_s, ceil_rate, cpu.used, ceil_rate)]
        ceilings = {1: ceil_rate}
        notes = []
        for workers in args.workers:
            if workers not in ceilings:
                seconds = await asyncio.to_thread(ceiling_workers, settings, args.events, workers, cpu)
                ceilings[workers] = args.events / seconds
                rows.append(
                    (f"bare consumers, {workers} processes", args.events, seconds, ceilings[workers], cpu.used, None)
                )
                print(f"bare consumers, {workers} processes: {ceilings[workers]:,.0f} events/s", flush=True)
            run = fresh(settings, workers)
            await ensure_topics(run)
            if workers == 1:
                fold_s, rooms = await materialize(run, args.events, cpu)
                timed = args.events
            else:
                fold_s, timed, already, rooms = await asyncio.to_thread(
                    materialize_workers, run, args.events, workers, cpu
                )
                notes.append(
                    f"{workers} workers: {already:,} events were committed before the group settled "
                    "(the first worker to join folds until the others do); timed and rated: the other "
                    f"{timed:,}"
                )
            assert rooms == args.rooms, (workers, rooms)
            committed = sum((await group_committed(run)).values())
            assert committed == args.events, (workers, committed)
            label = "1 worker" if workers == 1 else f"{workers} worker processes"
            rows.append(
                (
                    f"materializer, {label} (fold + publish state + commit)",
                    timed,
                    fold_s,
                    timed / fold_s,
                    cpu.used,
                    ceilings[workers],
                )
            )
            print(f"materializer, {label}: {timed / fold_s:,.0f} events/s", flush=True)
        print()
        print(
            "| run | events | seconds | events/s | / ceiling (1 process) | / bare consumers of as many processes "
            "| CPU s: run / broker / other |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, count, seconds, rate, (ours, by_broker, other), same in rows:
            print(
                f"| {label} | {count:,} | {seconds:.2f} | {rate:,.0f} | {rate / ceil_rate:.2f} "
                f"| {'' if same is None else f'{rate / same:.2f}'} | {ours:.1f} / {by_broker:.1f} / {other:.1f} |"
            )
        print(
            f"\nCPU s: over the timed window, of the run's processes, of the broker, and of everything else on "
            f"the machine ({os.cpu_count()} cores: at most {os.cpu_count()} CPU s per second)"
        )
        for note in notes:
            print(f"\n{note}")
        mats = [row for row in rows if row[0].startswith("materializer")]
        ratios = ", ".join(
            f"{label.split(' (')[0]} {rate / ceil_rate:.2f} of one bare consumer, {rate / same:.2f} of as many"
            for label, _, _, rate, _, same in mats
        )
        print(f"\nratio materializer / ceiling: {ratios}   (targets: >= 70,000 events/s, >= 0.60)")
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
