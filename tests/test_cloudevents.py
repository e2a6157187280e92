"""CloudEvents 1.0 Kafka protocol binding, binary mode: what we produce decodes with the reference SDK
(`cloudevents` 2.x, cloudevents.core.bindings.kafka)."""

from __future__ import annotations

from datetime import datetime, timezone

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat

from service.events import cloudevents, record as records
from tests.helpers import ACCOUNT_SID, read_topic
from tests.test_callbacks_http import callback_params, ingress_only, send, twilio_request

ROOM = "RM" + "ef" * 16


def as_message(key: bytes | None, value: bytes, headers) -> ce_kafka.KafkaMessage:
    return ce_kafka.KafkaMessage(headers=dict(headers), key=key, value=value)


def test_headers_are_the_binary_mode_attributes():
    r = records.from_callback(
        {
            "RoomSid": [ROOM],
            "RoomName": ["daily"],
            "AccountSid": [ACCOUNT_SID],
            "StatusCallbackEvent": ["participant-connected"],
            "Timestamp": ["2025-10-27T18:16:01.876Z"],
        },
        0,
    )
    headers = dict(cloudevents.event_headers(r))
    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": r["event_id"].encode(),
        "ce_source": f"/roomevents/{ACCOUNT_SID}/callback".encode(),
        "ce_type": b"io.roomevents.room-event.participant-connected",
        "ce_time": b"2025-10-27T18:16:01.876Z",
        "ce_subject": ROOM.encode(),
        "ce_dataschema": records.SCHEMA_ID.encode(),
        "content-type": b"application/json",
    }


def test_the_reference_sdk_decodes_every_kind_of_record():
    made = [
        records.from_callback(
            {"RoomSid": [ROOM], "StatusCallbackEvent": ["room-ended"], "Timestamp": ["2025-10-27T18:16:01.876Z"]}, 0
        ),  # no AccountSid, no RoomName
        records.room_created(ACCOUNT_SID, ROOM, {"unique_name": "daily", "type": "group"}, 1_700_000_000_000, {}),
        records.room_ended(ACCOUNT_SID, ROOM, "daily", 1_700_000_060_000, reason="timeout"),
    ]
    for r in made:
        key = records.partition_key(r)
        event = ce_kafka.from_binary(as_message(key, records.encode(r), cloudevents.event_headers(r)), JSONFormat())
        assert event.get_specversion() == "1.0"
        assert event.get_id() == r["event_id"]
        assert event.get_type() == "io.roomevents.room-event." + r["type"]
        assert event.get_source() == f"/roomevents/{r['account_sid'] or 'unknown'}/{r['source']}"
        assert event.get_time() == datetime.fromtimestamp(r["occurred_at_ms"] / 1000, tz=timezone.utc)
        assert event.get_subject() == r["room_sid"]
        assert event.get_datacontenttype() == "application/json"
        assert event.get_dataschema() == records.SCHEMA_ID
        assert event.get_extension("partitionkey") == key.decode()
        assert event.get_data() == r


async def test_records_produced_by_the_ingress_decode_with_the_reference_sdk(settings):
    async with ingress_only(settings) as (server, http):
        for method, event in (("POST", "participant-connected"), ("GET", "track-added"), ("PUT", "made-up-event")):
            url, body, headers = twilio_request(
                method, server.url + settings.callback_path, callback_params(event=event, TrackSid="MT1")
            )
            assert (await send(http, method, url, body, headers))[0] == 204
    messages = await read_topic(settings.kafka_bootstrap_servers, settings.events_topic)
    assert len(messages) == 3
    for m in messages:
        event = ce_kafka.from_binary(as_message(m.key, m.value, m.headers), JSONFormat())
        data = event.get_data()
        assert data == records.decode(m.value)
        assert event.get_id() == data["event_id"]
        assert event.get_type() == "io.roomevents.room-event." + data["type"]
        assert event.get_time().isoformat(timespec="milliseconds").replace("+00:00", "Z") == data["occurred_at"]
        assert event.get_extension("partitionkey") == "standup" == data["room_name"]
        # Mode auto-detection picks binary mode too.
        assert ce_kafka.from_kafka(as_message(m.key, m.value, m.headers), JSONFormat()).get_id() == data["event_id"]
