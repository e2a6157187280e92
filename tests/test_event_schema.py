"""The published JSON Schema: generated from the one module, valid, documented, and enforced (the
autouse fixture in conftest.py validates every record each test produced; its checks are tested here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import orjson
from aiokafka import AIOKafkaProducer

from service.events import cloudevents, record as records
from tests.helpers import event_schema_validator, invalid_event_records, read_topic

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "docs" / "room-event.schema.json"
EVENTS_DOC = ROOT / "docs" / "events.md"


def test_the_published_file_is_the_module_output():
    assert SCHEMA_FILE.read_text() == records.schema_text(), (
        "docs/room-event.schema.json is stale: run `python -m service.events.record`"
    )
    assert json.loads(SCHEMA_FILE.read_text()) == records.json_schema()


def test_the_generator_writes_the_same_file(tmp_path):
    target = tmp_path / "schema.json"
    subprocess.run(
        [sys.executable, "-m", "service.events.record", str(target)], cwd=ROOT, check=True, capture_output=True
    )
    assert target.read_text() == SCHEMA_FILE.read_text()


def test_the_schema_is_a_valid_draft_2020_12_schema():
    schema = records.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"]["enum"] == list(records.SCHEMA_VERSIONS) == [1, 2]
    assert records.SCHEMA_VERSION == 2
    assert schema["$id"] == records.SCHEMA_ID == cloudevents.EVENT_DATASCHEMA
    # Every property is required (null when not applicable) and documented; version 1 records lack
    # only the fields version 2 added, which a version 2 record must have.
    assert schema["required"] == [p for p in schema["properties"] if p not in ("provider", "native")]
    assert {
        "if": {"properties": {"schema_version": {"const": 2}}},
        "then": {"required": ["provider", "native"]},
    }.items() <= schema["allOf"][0].items()
    assert all(prop.get("description") for prop in schema["properties"].values())


def test_version_1_and_version_2_records_validate_and_neither_takes_the_others_shape():
    validator = event_schema_validator()
    v2 = records.from_callback({"RoomSid": ["RM1"], "StatusCallbackEvent": ["room-ended"]}, 0)
    assert v2["schema_version"] == 2 and v2["provider"] == "twilio" and v2["native"] is None
    v1 = {k: v for k, v in v2.items() if k not in ("provider", "native")} | {"schema_version": 1}
    for good in (v1, v2):
        assert not list(validator.iter_errors(good)), good
    bad = [
        {k: v for k, v in v2.items() if k != "provider"},  # v2 has every field
        {k: v for k, v in v2.items() if k != "native"},
        v1 | {"provider": "twilio"},  # v1 has none of v2's
        v2 | {"schema_version": 3},
        v2 | {"provider": "webex"},
        v2 | {"native": {"event": "x", "payload": {}}},  # twilio's records carry no native ids
        v2 | {"provider": "zoom"},  # a zoom record keeps Zoom's ids
    ]
    for doc in bad:
        assert list(validator.iter_errors(doc)), doc


def test_the_schema_rejects_what_consumers_must_not_see():
    validator = event_schema_validator()
    good = records.from_callback({"RoomSid": ["RM1"], "StatusCallbackEvent": ["room-ended"]}, 0)
    assert not list(validator.iter_errors(good))
    bad = [
        {k: v for k, v in good.items() if k != "event_id"},
        good | {"event_id": "not-hex"},
        good | {"occurred_at": "2025-10-27T18:16:01Z"},  # ms precision is part of the contract
        good | {"source": "somewhere"},
        good | {"surprise": 1},
        good | {"participant": {"sid": "PA1"}},  # typed objects are complete
        good | {"params": {"A": 1}},
        good | {"end_reason": None},  # room-ended always says why
        records.from_callback({"RoomSid": ["RM1"], "StatusCallbackEvent": ["track-added"]}, 0) | {"end_reason": "api"},
        records.room_ended("AC1", "RM1", "n", 0, reason="timeout") | {"end_reason": "api"},
        records.room_created("AC1", "RM1", {}, 0, {}) | {"type": "participant-connected"},
    ]
    for doc in bad:
        assert list(validator.iter_errors(orjson.loads(orjson.dumps(doc)))), doc


def test_the_examples_in_events_md_validate_and_match_the_code():
    validator = event_schema_validator()
    blocks = re.findall(r"```json\n(.*?)```", EVENTS_DOC.read_text(), flags=re.S)
    examples = [json.loads(b) for b in blocks]
    assert len(examples) >= 5
    assert {e["provider"] for e in examples} == {"twilio", "livekit", "zoom"}
    for example in examples:
        errors = [e.message for e in validator.iter_errors(example)]
        assert not errors, (example["type"], errors)
        received_ms = records.parse_timestamp_ms(example["received_at"])
        if example["source"] == "callback" and example["provider"] == "twilio":
            params = {k: v if isinstance(v, list) else [v] for k, v in example["params"].items()}
            rebuilt = records.from_callback(params, example["occurred_at_ms"])
        elif example["provider"] == "livekit":
            from google.protobuf.json_format import ParseDict
            from livekit.protocol.webhook import WebhookEvent

            from service.providers import livekit

            payload = example["native"]["payload"]
            [rebuilt] = livekit.to_records(
                ParseDict(payload, WebhookEvent()), payload, received_ms, example["account_sid"]
            )
        elif example["provider"] == "zoom":
            from service.providers import zoom

            [rebuilt] = zoom.to_records(example["native"]["payload"], received_ms, example["account_sid"])
        else:
            continue
        assert rebuilt["event_id"] == example["event_id"]
        assert {k: v for k, v in rebuilt.items() if k != "received_at"} == {
            k: v for k, v in example.items() if k != "received_at"
        }
    # Every field is documented in the table.
    text = EVENTS_DOC.read_text()
    for field in records.json_schema()["properties"]:
        assert f"| `{field}` |" in text, field


async def test_the_validation_fixture_catches_bad_records(settings):
    """What the autouse fixture does, on purpose-built records in a side topic."""
    topic = settings.events_topic + "-probe"
    good = records.from_callback({"RoomSid": ["RM1"], "RoomName": ["n"], "StatusCallbackEvent": ["x"]}, 0)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, records.encode(good), key=b"n", headers=cloudevents.event_headers(good))
        # Poison injected raw (no CloudEvents headers): exempt, the materializer dead-letters it.
        await producer.send_and_wait(topic, b"\xff not json", key=b"n")
        # Decodable but off-schema, raw: caught.
        await producer.send_and_wait(topic, records.encode(good | {"extra": 1}), key=b"n")
        # Service-style (with ce_* headers) but off-schema, wrong key, wrong ce_id: caught.
        await producer.send_and_wait(
            topic,
            records.encode(good | {"source": "elsewhere"}),
            key=b"other",
            headers=[("ce_id", b"0" * 32), ("ce_specversion", b"1.0")],
        )
    finally:
        await producer.stop()
    messages = await read_topic(settings.kafka_bootstrap_servers, topic)
    assert len(messages) == 4
    problems = invalid_event_records(messages)
    text = "\n".join(problems)
    exempt = [m for m in messages if m.value in (records.encode(good), b"\xff not json")]
    assert len(exempt) == 2
    for m in exempt:
        assert not re.search(rf"partition {m.partition} offset {m.offset}\b", text), m
    assert "Additional properties are not allowed ('extra'" in text
    assert "'elsewhere' is not one of" in text
    assert "is not the record's partition key" in text and "is not the event_id" in text
