"""GET /openapi.json serves this API's OpenAPI document, and every response of the Rooms API (and
every well-formed request) conforms to it: each documented operation and status code is exercised
against the running service and checked with openapi-core.
"""

from __future__ import annotations

import json
import uuid
from importlib import resources
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import orjson
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_spec_validator import validate as validate_spec

from service.callbacks.signature import compute_signature
from service.events.record import format_ms
from service.kafka.topics import ensure_topics
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, basic_auth, make_settings, running_system, wait_until

FORM = "application/x-www-form-urlencoded"
# Statuses a healthy system does not produce on demand.
NOT_EXERCISED = {"503"}


class Checker:
    """Sends requests and validates each exchange against the served document."""

    def __init__(self, http: aiohttp.ClientSession, base: str, doc: dict) -> None:
        self.http, self.base, self.doc = http, base, doc
        self.spec = OpenAPI.from_dict(doc)
        self.seen: set[tuple[str, str, str]] = set()

    async def __call__(
        self,
        method: str,
        path: str,
        template: str,
        *,
        query=None,
        form=None,
        body=None,
        content_type: str | None = None,
        auth: bool = True,
        valid_request: bool = True,
    ):
        headers = dict(basic_auth()) if auth else {}
        data = None
        if form is not None:
            data, content_type = urlencode(form).encode(), FORM
        elif body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            content_type = content_type or "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        url = self.base + path + (f"?{urlencode(query)}" if query else "")
        async with self.http.request(method, url, data=data, headers=headers) as resp:
            raw = await resp.read()
            status, response_type = resp.status, resp.content_type
        request = MockRequest(
            self.base,
            method,
            path,
            args=list(query or []),
            headers=headers,
            data=data,
            content_type=content_type or "application/json",
        )
        response = MockResponse(raw, status_code=status, content_type=response_type)
        self.spec.validate_response(request, response)  # raises with the schema errors
        if valid_request:
            self.spec.validate_request(request)
        self.seen.add((template, method.lower(), str(status)))
        return status, orjson.loads(raw)


@pytest.fixture(scope="module")
async def checked(kafka_bootstrap):
    cfg = make_settings(kafka_bootstrap)
    await ensure_topics(cfg)
    async with running_system(cfg) as (ingress, _), aiohttp.ClientSession() as http:
        async with http.get(f"{ingress.url}/openapi.json") as resp:  # no credentials needed
            assert resp.status == 200 and resp.content_type == "application/json"
            doc = await resp.json()
        yield Checker(http, ingress.url, doc), cfg, ingress


def test_the_packaged_document_is_valid_openapi():
    doc = json.loads(resources.files("service").joinpath("openapi", "roomevents.json").read_text("utf-8"))
    validate_spec(doc)
    assert doc["openapi"].startswith("3.")
    assert {
        "/v1/Rooms",
        "/v1/Rooms/{Sid}",
        "/v1/Rooms/{RoomSid}/Participants",
        "/v1/Rooms/{RoomSid}/Participants/{Sid}",
    } <= set(doc["paths"])


async def test_served_document_points_at_this_instance(checked):
    check, _, ingress = checked
    assert check.doc["servers"][0]["url"] == ingress.url
    validate_spec(check.doc)
    packaged = json.loads(resources.files("service").joinpath("openapi", "roomevents.json").read_text("utf-8"))
    assert {k: v for k, v in check.doc.items() if k != "servers"} == {
        k: v for k, v in packaged.items() if k != "servers"
    }


async def test_every_response_conforms(checked):
    check, cfg, ingress = checked
    name = f"oa-{uuid.uuid4().hex[:8]}"
    rooms, room_t = "/v1/Rooms", "/v1/Rooms/{Sid}"

    # Create: form (every parameter), JSON, empty; 400, 401, 413, 415.
    status, room = await check(
        "POST",
        rooms,
        rooms,
        form=[
            ("Type", "group"),
            ("UniqueName", name),
            ("StatusCallback", "https://example.com/cb"),
            ("StatusCallbackMethod", "POST"),
            ("MaxParticipants", "10"),
            ("MaxParticipantDuration", "600"),
            ("EmptyRoomTimeout", "3"),
            ("UnusedRoomTimeout", "4"),
            ("AudioOnly", "false"),
            ("EnableTurn", "true"),
            ("LargeRoom", "false"),
            ("RecordParticipantsOnConnect", "true"),
            ("VideoCodecs", "VP8"),
            ("VideoCodecs", "H264"),
            ("MediaRegion", "us2"),
            ("RecordingRules", '[{"type":"exclude","all":true}]'),
        ],
    )
    assert status == 201
    status, other = await check(
        "POST", rooms, rooms, body={"Type": "peer-to-peer", "MaxParticipants": 3, "LargeRoom": False}
    )
    assert status == 201 and other["media_region"] is None
    status, _ = await check("POST", rooms, rooms)
    assert status == 201
    assert (await check("POST", rooms, rooms, form={"UniqueName": name}))[0] == 400  # 53113
    assert (await check("POST", rooms, rooms, form={"Type": "huge"}, valid_request=False))[0] == 400
    assert (await check("POST", rooms, rooms, form={"Type": "go"}, auth=False, valid_request=False))[0] == 401
    assert (await check("POST", rooms, rooms, form={"UniqueName": "x" * 70_000}, valid_request=False))[0] == 413
    assert (await check("POST", rooms, rooms, body=b"Type=go", content_type="text/plain", valid_request=False))[
        0
    ] == 415

    # Fetch: by SID and name; 404; 401.
    for key in (room["sid"], name):
        assert (await check("GET", f"{rooms}/{key}", room_t))[0] == 200
    assert (await check("GET", f"{rooms}/nope", room_t))[0] == 404
    assert (await check("GET", f"{rooms}/{room['sid']}", room_t, auth=False, valid_request=False))[0] == 401

    # Participants, from signed callbacks.
    psid = "PA" + uuid.uuid4().hex
    url = f"{ingress.url}{cfg.callback_path}"
    async with aiohttp.ClientSession() as http:
        params = {
            "AccountSid": ACCOUNT_SID,
            "RoomSid": room["sid"],
            "RoomName": name,
            "RoomStatus": "in-progress",
            "RoomType": "group",
            "StatusCallbackEvent": "participant-connected",
            "ParticipantSid": psid,
            "ParticipantIdentity": "ada",
            "ParticipantStatus": "connected",
            "Timestamp": format_ms(int(room_created_ms(room))),
            "SequenceNumber": "1",
        }
        signature = compute_signature(url, {k: [v] for k, v in params.items()}, AUTH_TOKEN)
        async with http.post(url, data=params, headers={"X-Twilio-Signature": signature}) as resp:
            assert resp.status == 204
        # A room Twilio created on its own (ad hoc): known from callbacks alone, configuration unknown.
        adhoc = "RM" + uuid.uuid4().hex
        params = {
            "AccountSid": ACCOUNT_SID,
            "RoomSid": adhoc,
            "RoomName": f"adhoc-{adhoc[-6:]}",
            "RoomStatus": "in-progress",
            "StatusCallbackEvent": "room-created",
            "Timestamp": format_ms(int(room_created_ms(room))),
            "SequenceNumber": "0",
        }
        signature = compute_signature(url, {k: [v] for k, v in params.items()}, AUTH_TOKEN)
        async with http.post(url, data=params, headers={"X-Twilio-Signature": signature}) as resp:
            assert resp.status == 204
        # A recording of ada's track, started then completed.
        rsid, msid = "RT" + uuid.uuid4().hex, "MT" + uuid.uuid4().hex
        for seq, (event, extra) in enumerate(
            (
                ("recording-started", {}),
                ("recording-completed", {"Duration": "12", "Size": "4096", "MediaUri": f"/v1/Recordings/{rsid}/Media"}),
            ),
            2,
        ):
            params = {
                "AccountSid": ACCOUNT_SID,
                "RoomSid": room["sid"],
                "RoomName": name,
                "RoomType": "group",
                "StatusCallbackEvent": event,
                "RecordingSid": rsid,
                "ParticipantSid": psid,
                "ParticipantIdentity": "ada",
                "SourceSid": msid,
                "TrackName": "mic",
                "Container": "mka",
                "Codec": "OPUS",
                "Type": "audio",
                "OffsetFromTwilioVideoEpoch": "100",
                "RecordingUri": f"/v1/Recordings/{rsid}",
                "Timestamp": format_ms(room_created_ms(room) + seq),
                "SequenceNumber": str(seq),
            } | extra
            signature = compute_signature(url, {k: [v] for k, v in params.items()}, AUTH_TOKEN)
            async with http.post(url, data=params, headers={"X-Twilio-Signature": signature}) as resp:
                assert resp.status == 204
    await wait_until(
        lambda: (
            ingress.follower.index.docs[room["sid"]]["participants"]
            and adhoc in ingress.follower.index.docs
            and [r["status"] for r in ingress.follower.index.docs[room["sid"]]["recordings"]] == ["completed"]
        )
    )
    status, seen = await check("GET", f"{rooms}/{adhoc}", room_t)
    assert status == 200 and seen["type"] is None and seen["max_participants"] is None
    plist, pitem = "/v1/Rooms/{RoomSid}/Participants", "/v1/Rooms/{RoomSid}/Participants/{Sid}"
    base = f"{rooms}/{room['sid']}/Participants"
    status, page = await check("GET", base, plist, query=[("PageSize", "1")])
    assert status == 200 and len(page["participants"]) == 1
    assert (await check("GET", base, plist, query=[("Status", "disconnected"), ("Identity", "ada")]))[0] == 200
    assert (await check("GET", base, plist, query=[("PageSize", "0")], valid_request=False))[0] == 400
    assert (await check("GET", base, plist, auth=False, valid_request=False))[0] == 401
    assert (await check("GET", f"{rooms}/nope/Participants", plist))[0] == 404
    assert (await check("GET", f"{base}/{psid}", pitem))[0] == 200
    assert (await check("GET", f"{base}/ada", pitem))[0] == 200
    assert (await check("GET", f"{base}/PA{'0' * 32}", pitem))[0] == 404
    assert (await check("GET", f"{base}/{psid}", pitem, auth=False, valid_request=False))[0] == 401

    # Recordings, recording rules, transcriptions.
    rlist, ritem = "/v1/Rooms/{RoomSid}/Recordings", "/v1/Rooms/{RoomSid}/Recordings/{Sid}"
    rules_t, tlist = "/v1/Rooms/{RoomSid}/RecordingRules", "/v1/Rooms/{RoomSid}/Transcriptions"
    base = f"{rooms}/{room['sid']}"
    status, page = await check("GET", f"{base}/Recordings", rlist)
    assert status == 200 and [r["sid"] for r in page["recordings"]] == [rsid]
    for query in (
        [("Status", "completed"), ("SourceSid", msid)],
        [("DateCreatedAfter", room["date_created"])],
        [("Status", "processing")],
        [("PageSize", "1"), ("Page", "0")],
    ):
        assert (await check("GET", f"{base}/Recordings", rlist, query=query))[0] == 200
    assert (await check("GET", f"{base}/Recordings", rlist, query=[("Status", "done")], valid_request=False))[0] == 400
    assert (await check("GET", f"{base}/Recordings", rlist, auth=False, valid_request=False))[0] == 401
    assert (await check("GET", f"{rooms}/nope/Recordings", rlist))[0] == 404
    status, rec = await check("GET", f"{base}/Recordings/{rsid}", ritem)
    assert status == 200 and rec["links"] == {"media": f"https://video.twilio.com/v1/Recordings/{rsid}/Media"}
    assert (await check("GET", f"{base}/Recordings/RT{'0' * 32}", ritem))[0] == 404
    assert (await check("GET", f"{base}/Recordings/{rsid}", ritem, auth=False, valid_request=False))[0] == 401
    status, rules = await check("GET", f"{base}/RecordingRules", rules_t)
    assert status == 200 and rules["rules"] == [{"type": "exclude", "all": True}]
    status, rules = await check("GET", f"{rooms}/{adhoc}/RecordingRules", rules_t)
    assert status == 200 and rules["rules"] is None
    assert (await check("GET", f"{rooms}/nope/RecordingRules", rules_t))[0] == 404
    assert (await check("GET", f"{base}/RecordingRules", rules_t, auth=False, valid_request=False))[0] == 401
    status, page = await check("GET", f"{base}/Transcriptions", tlist)
    assert status == 200 and page["transcriptions"] == [] and page["meta"]["key"] == "transcriptions"
    assert (await check("GET", f"{base}/Transcriptions", tlist, query=[("PageSize", "0")], valid_request=False))[
        0
    ] == 400
    assert (await check("GET", f"{base}/Transcriptions", tlist, auth=False, valid_request=False))[0] == 401
    assert (await check("GET", f"{rooms}/nope/Transcriptions", tlist))[0] == 404

    # Update: 202 (form and JSON), 400 (53112, 53118), 404, 401, 413, 415.
    assert (await check("POST", f"{rooms}/{room['sid']}", room_t, form={"Status": "failed"}, valid_request=False))[
        0
    ] == 400
    assert (await check("POST", f"{rooms}/{room['sid']}", room_t, form={"Status": "completed"}))[0] == 202
    assert (await check("POST", f"{rooms}/{other['sid']}", room_t, body={"Status": "completed"}))[0] == 202
    assert (await check("POST", f"{rooms}/{room['sid']}", room_t, form={"Status": "completed"}))[0] == 400
    assert (await check("POST", f"{rooms}/RM{'0' * 32}", room_t, form={"Status": "completed"}))[0] == 404
    assert (
        await check(
            "POST", f"{rooms}/{room['sid']}", room_t, form={"Status": "completed"}, auth=False, valid_request=False
        )
    )[0] == 401
    assert (await check("POST", f"{rooms}/{room['sid']}", room_t, form={"Status": "x" * 70_000}, valid_request=False))[
        0
    ] == 413
    assert (
        await check(
            "POST",
            f"{rooms}/{room['sid']}",
            room_t,
            body=b"Status=completed",
            content_type="text/plain",
            valid_request=False,
        )
    )[0] == 415

    # List: filters, paging links (followed), 400, 401.
    for query in (
        [],
        [("Status", "completed")],
        [("UniqueName", name), ("Status", "completed")],
        [("DateCreatedAfter", room["date_created"]), ("DateCreatedBefore", "2999-01-01")],
        [("PageSize", "1")],
    ):
        status, page = await check("GET", rooms, rooms, query=query)
        assert status == 200
    status, page = await check("GET", rooms, rooms, query=[("PageSize", "1"), ("Status", "completed")])
    assert page["meta"]["next_page_url"]
    nxt = urlsplit(page["meta"]["next_page_url"])
    status, page2 = await check("GET", nxt.path, rooms, query=parse_qsl(nxt.query))
    assert status == 200 and page2["meta"]["previous_page_url"]
    assert (await check("GET", rooms, rooms, query=[("Status", "open")], valid_request=False))[0] == 400
    assert (await check("GET", rooms, rooms, auth=False, valid_request=False))[0] == 401

    # Every documented response was produced (except those a healthy system cannot be made to give).
    documented = {
        (path, method, code)
        for path, item in check.doc["paths"].items()
        if path.startswith("/v1/Rooms")  # the Rooms API; the other routes: tests/test_schemathesis.py
        for method, op in item.items()
        if method in ("get", "post")
        for code in op["responses"]
        if code not in NOT_EXERCISED
    }
    assert documented - check.seen == set()
    assert check.seen - documented == set()


def room_created_ms(room: dict) -> int:
    from service.events.record import parse_timestamp_ms

    return parse_timestamp_ms(room["date_created"]) + 1000
