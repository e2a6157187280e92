"""Publisher.send_many to a known partition: records in built record batches, in order, with the
end of the last acknowledged one known (a snapshot starts there). Against the real broker."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from service.kafka.producer import Publisher, sent_end
from service.metrics import Metrics


async def test_send_many_to_a_partition_keeps_order_and_tells_the_end(settings) -> None:
    publisher = Publisher(settings, Metrics())
    await publisher.start()
    topic, partition = settings.state_topic, 1
    try:
        # 300 records of 4 KiB: more than one 512 KiB batch, a tombstone among them.
        items = [
            (f"k{n}".encode(), None if n == 7 else b"%06d" % n + b"x" * 4090, [("n", b"%d" % n)]) for n in range(300)
        ]
        first = await publisher.send_many(topic, items[:150], partition=partition)
        second = await publisher.send_many(topic, items[150:], partition=partition)
        assert len(first) > 1  # several batches, a future each
        await asyncio.gather(*first, *second)
        assert sent_end(first[-1]) == 150
        assert sent_end(second[-1]) == 300
    finally:
        await publisher.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        read = []
        while len(read) < 300:
            for messages in (await consumer.getmany(tp, timeout_ms=2000)).values():
                read += messages
    finally:
        await consumer.stop()
    assert [m.key for m in read] == [key for key, _, _ in items]
    assert [m.value for m in read] == [value for _, value, _ in items]
    assert [m.offset for m in read] == list(range(300))
    assert read[5].headers == (("n", b"5"),)
