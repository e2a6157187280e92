"""The embedded broker's floor under every hop of the end-to-end path (ingress -> materializer -> state
follower), with nothing else running, to read bench/ingress.py's hop times and CPU shares against:

1. one hop: produce (acks=all) one record at a random moment, then how long until a consumer has it,
   for each fetch wait (ROOMEVENTS_FETCH_MAX_WAIT_MS, 10 ms by default; Apache Kafka answers a
   waiting fetch as soon as a record arrives, Tansu up to about half the wait later);
2. the broker's CPU: of one idle consumer (fetching in a loop, as the materializer and every
   ingress's state view do) for each fetch wait, of a produce request of one record, and of an
   offset commit.

Prints p50/p90/p99/max of each hop and the CPU costs. Run:
.venv/bin/python bench/broker_hop.py [--records 300] [--waits 10 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.structs import OffsetAndMetadata  # noqa: E402
from proc_cpu import process_cpu  # noqa: E402

from service.kafka.broker import EmbeddedBroker  # noqa: E402
from service.kafka.topics import ensure_topics  # noqa: E402
from service.settings import Settings  # noqa: E402


def summary(name: str, values: list[float]) -> str:
    values = sorted(values)

    def at(p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))]

    return f"{name}: p50 {at(0.5):.1f} p90 {at(0.9):.1f} p99 {at(0.99):.1f} max {values[-1]:.1f} ms (n={len(values)})"


async def hop(bootstrap: str, tp: TopicPartition, wait_ms: int, records: int) -> tuple[list[float], list[float]]:
    """(acks, produce -> consumed) in ms, records produced at random moments within fetch waits."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms)
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        acks: list[float] = []
        hops: list[float] = []

        async def consume() -> None:
            while True:
                fetched = await consumer.getmany(timeout_ms=1000)
                now = time.time() * 1000
                hops.extend(now - float(m.value) for messages in fetched.values() for m in messages)

        reader = asyncio.create_task(consume())
        await asyncio.sleep(1)  # the consumer is fetching
        for _ in range(records):
            await asyncio.sleep(random.uniform(0.01, 0.01 + 2 * wait_ms / 1000))  # anywhere within fetch waits
            sent = time.time() * 1000
            await producer.send_and_wait(tp.topic, str(sent).encode(), partition=0)
            acks.append(time.time() * 1000 - sent)
        while len(hops) < records:
            await asyncio.sleep(0.05)
        reader.cancel()
        return acks, hops
    finally:
        await consumer.stop()
        await producer.stop()


async def broker_share(broker_pid: int, seconds: float) -> float:
    """The broker's CPU over the next `seconds`, as a share of one core."""
    before, started = process_cpu(broker_pid), time.perf_counter()
    await asyncio.sleep(seconds)
    return (process_cpu(broker_pid) - before) / (time.perf_counter() - started)


async def idle_consumer_cpu(bootstrap: str, broker_pid: int, topic: str, wait_ms: int, seconds: float = 4.0) -> float:
    """The broker's CPU (share of one core) while one consumer fetches an idle topic in a loop."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assert len(partitions) == 6, f"{topic} has partitions {partitions}, not 6"
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])

        async def fetch_loop() -> None:
            while True:
                await consumer.getmany(timeout_ms=1000)

        task = asyncio.create_task(fetch_loop())
        await asyncio.sleep(1)
        share = await broker_share(broker_pid, seconds)
        task.cancel()
        return share
    finally:
        await consumer.stop()


async def request_cpu(bootstrap: str, broker_pid: int, topic: str, n: int = 1000) -> tuple[float, float]:
    """The broker's CPU in µs per produce request (one record, acks=all) and per offset commit."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        before = process_cpu(broker_pid)
        for i in range(n):
            await producer.send_and_wait(topic, b"x" * 300, key=b"k%d" % (i % 50))
        produce_us = (process_cpu(broker_pid) - before) / n * 1e6
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="bench-hop-commits",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.1)
        tps = list(consumer.assignment())
        consumer.pause(*tps)  # commits only: no fetching of what was just produced
        before = process_cpu(broker_pid)
        for i in range(n // 4):
            await consumer.commit({tp: OffsetAndMetadata(i + 1, "") for tp in tps})
        commit_us = (process_cpu(broker_pid) - before) / (n // 4) * 1e6
    finally:
        await consumer.stop()
    return produce_us, commit_us


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--waits", type=int, nargs="+", default=[10, 100], help="fetch waits (ms) to measure")
    args = parser.parse_args()
    broker = EmbeddedBroker().start()
    try:
        settings = Settings(
            kafka_bootstrap_servers=broker.bootstrap_servers, events_topic="bench-hop", topic_partitions=1
        )
        await ensure_topics(settings)
        idle = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, events_topic="bench-idle", topic_partitions=6)
        await ensure_topics(idle)
        tp = TopicPartition(settings.events_topic, 0)
        for wait_ms in args.waits:
            acks, hops = await hop(broker.bootstrap_servers, tp, wait_ms, args.records)
            if wait_ms == args.waits[0]:
                print(summary("produce ack (acks=all)", acks))
            print(summary(f"produce -> consumed (fetch wait {wait_ms} ms)", hops))
        pid = broker.process.pid
        alone = await broker_share(pid, 4.0)
        print(f"broker CPU with no client: {100 * alone:.1f} % of a core (taken off the consumers' below)")
        for wait_ms in sorted({*args.waits, 10, 100, 500}):
            share = await idle_consumer_cpu(broker.bootstrap_servers, pid, idle.events_topic, wait_ms) - alone
            print(
                f"broker CPU of one idle consumer (6 partitions), fetch wait {wait_ms} ms: {100 * share:.1f} % of a core"
            )
        produce_us, commit_us = await request_cpu(broker.bootstrap_servers, pid, idle.events_topic)
        print(
            f"broker CPU per produce request (1 record, acks=all): {produce_us:.0f} µs; per offset commit: {commit_us:.0f} µs"
        )
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
