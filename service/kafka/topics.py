"""Topic creation (idempotent): events, state (compacted), dead letters."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from service import logs
from service.settings import Settings

log = logs.get(__name__)


def topic_specs(settings: Settings) -> list[NewTopic]:
    n, rf = settings.topic_partitions, settings.topic_replication
    return [
        NewTopic(
            settings.events_topic,
            num_partitions=n,
            replication_factor=rf,
            topic_configs={"cleanup.policy": "delete", "retention.ms": "-1"},
        ),
        # Keyed by room SID: compaction keeps each room's latest document forever.
        NewTopic(
            settings.state_topic, num_partitions=n, replication_factor=rf, topic_configs={"cleanup.policy": "compact"}
        ),
        # Co-partitioned with the events topic (same count, written by partition number): each held
        # room's fold state and the checkpoints restores start from. See service/kafka/checkpoints.py.
        NewTopic(
            settings.changelog_topic,
            num_partitions=n,
            replication_factor=rf,
            topic_configs={"cleanup.policy": "compact"},
        ),
        NewTopic(
            settings.dead_letter_topic,
            num_partitions=1,
            replication_factor=rf,
            topic_configs={"cleanup.policy": "delete"},
        ),
    ]


async def ensure_topics(settings: Settings) -> list[str]:
    """Create whichever topics are missing; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, client_id="roomevents-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topic_specs(settings) if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another replica created them first
        log.info("topics ready", created=[t.name for t in missing], topics=[t.name for t in topic_specs(settings)])
        return [t.name for t in missing]
    finally:
        await admin.close()
