"""One hop through the embedded broker with nothing else running: produce (acks=all) one record at a
random moment, then how long until a consumer with the services' fetch wait (10 ms) has it.

The floor under every hop of the end-to-end path (ingress -> materializer -> state follower), to
read bench/ingress.py's hop times against. Prints p50/p90/p99/max of the ack and of produce ->
consume. Run: .venv/bin/python bench/broker_hop.py [--records 300]
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

from service.kafka.broker import EmbeddedBroker  # noqa: E402
from service.kafka.topics import ensure_topics  # noqa: E402
from service.settings import Settings  # noqa: E402

FETCH_MAX_WAIT_MS = 10  # as the materializer and the state follower


def summary(name: str, values: list[float]) -> str:
    values = sorted(values)

    def at(p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))]

    return f"{name}: p50 {at(0.5):.1f} p90 {at(0.9):.1f} p99 {at(0.99):.1f} max {values[-1]:.1f} ms (n={len(values)})"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=300)
    args = parser.parse_args()
    broker = EmbeddedBroker().start()
    try:
        settings = Settings(
            kafka_bootstrap_servers=broker.bootstrap_servers, events_topic="bench-hop", topic_partitions=1
        )
        await ensure_topics(settings)
        tp = TopicPartition(settings.events_topic, 0)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=0)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
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
            for _ in range(args.records):
                await asyncio.sleep(random.uniform(0.01, 0.03))  # a random moment within fetch waits
                sent = time.time() * 1000
                await producer.send_and_wait(tp.topic, str(sent).encode(), partition=0)
                acks.append(time.time() * 1000 - sent)
            while len(hops) < args.records:
                await asyncio.sleep(0.05)
            reader.cancel()
            print(summary("produce ack (acks=all)", acks))
            print(summary(f"produce -> consumed (fetch wait {FETCH_MAX_WAIT_MS} ms)", hops))
        finally:
            await consumer.stop()
            await producer.stop()
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
