"""Records the broker can never take (too large) go to the dead-letter topic with the reason, are
counted, and are answered 202; if even the dead letter cannot be written, the answer is 503, never 2xx."""

from __future__ import annotations

import time

import orjson

from service.events import record as records
from tests.helpers import read_topic
from tests.test_callbacks_http import callback_params, ingress_only, send, twilio_request

HUGE = 1536 * 1024  # over the producer's 1 MiB max_request_size


async def test_a_record_too_large_for_the_broker_is_dead_lettered_and_counted(settings):
    cfg = settings.with_overrides(max_body_bytes=2 * 1024 * 1024)
    params = callback_params(event="recording-completed", RecordingSid="RT1", Notes="n" * HUGE)
    expected = records.from_callback({k: [v] for k, v in params.items()}, 0)
    async with ingress_only(cfg) as (server, http):
        url, body, headers = twilio_request("POST", server.url + cfg.callback_path, params)
        status, _, payload = await send(http, "POST", url, body, headers)
        assert status == 202, payload
        # A normal callback still goes through.
        url, body, headers = twilio_request("POST", server.url + cfg.callback_path, callback_params())
        assert (await send(http, "POST", url, body, headers))[0] == 204
        status, _, exposition = await send(http, "GET", server.url + "/metrics")
        assert status == 200
        assert b'roomevents_dead_letters_total{reason="too-large"} 1.0' in exposition
        assert b'roomevents_callbacks_total{event="recording-completed",status="202"} 1.0' in exposition
    events = await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic)
    assert [records.decode(m.value)["type"] for m in events] == ["participant-connected"]
    [letter] = await read_topic(cfg.kafka_bootstrap_servers, cfg.dead_letter_topic)
    assert dict(letter.headers) == {
        "roomevents_dlq_reason": b"too-large",
        "roomevents_dlq_topic": cfg.events_topic.encode(),
    }
    assert letter.key == b"standup"
    doc = orjson.loads(letter.value)
    assert doc["reason"] == "too-large" and "max_request_size" in doc["detail"]
    assert doc["topic"] == cfg.events_topic and doc["key"] == "standup"
    assert doc["size"] > HUGE and doc["truncated"] is True
    assert doc["value"].startswith('{"schema_version":2,"provider":"twilio","event_id":"' + expected["event_id"])
    assert doc["headers"]["ce_id"] == expected["event_id"]
    assert doc["headers"]["ce_type"] == "io.roomevents.room-event.recording-completed"
    assert len(letter.value) < 100 * 1024


async def test_when_the_dead_letter_cannot_be_written_the_answer_is_503(settings):
    # An invalid topic name: the broker (or client) refuses every dead letter.
    cfg = settings.with_overrides(max_body_bytes=2 * 1024 * 1024, produce_timeout_ms=500)
    cfg = cfg.with_overrides(dead_letter_topic="no such topic!")
    params = callback_params(Notes="n" * HUGE)
    async with ingress_only(cfg) as (server, http):
        url, body, headers = twilio_request("POST", server.url + cfg.callback_path, params)
        started = time.monotonic()
        status, resp_headers, _ = await send(http, "POST", url, body, headers)
        assert status == 503 and resp_headers["Retry-After"] == "1"
        assert time.monotonic() - started < 5
        assert (
            server.metrics.registry.get_sample_value("roomevents_dead_letters_total", {"reason": "too-large"}) is None
        )
    assert await read_topic(cfg.kafka_bootstrap_servers, cfg.events_topic) == []
