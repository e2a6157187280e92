"""Properties of the reducer over generated room histories (hypothesis).

A history is what one room can produce: a create (through the API, by Twilio's callback, both, or
none at all for a room made elsewhere), participants connecting and disconnecting, their tracks
added / paused / resumed / removed, recordings started / completed / failed, sometimes a failure
report and sometimes a room-ended (API, timer or callback). Timestamps are coarse so that ties
happen, and SequenceNumbers are sometimes absent or colliding.

The reducer must fold the same set of records, in any order and with any duplicates (including
redeliveries that differ only in `received_at`), to the same room document.
"""

from __future__ import annotations

import copy
from functools import reduce

from hypothesis import HealthCheck, given, settings, strategies as st

from service.events.record import format_ms, from_callback, parse_timestamp_ms, room_created, room_ended
from service.rooms.params import parse_create_form
from service.state.book import UNIQUE_NAME_TAKEN, RoomBook, timer_due
from service.state.fold import fold, order_of
from service.state.render import render
from service.state.views import status

ACCOUNT = "AC" + "0" * 31 + "1"
T0 = parse_timestamp_ms("2030-01-01T00:00:00.000Z")
TICK = 500  # ms: coarse, so that equal Timestamps are common
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Builder:
    """Builds one room's records; SequenceNumbers follow the drawn mode."""

    def __init__(self, sid: str, name: str | None, seq_mode: str, draw):
        self.sid, self.name, self.seq_mode, self.draw = sid, name, seq_mode, draw
        self.counter = 0

    def _seq(self) -> int | None:
        if self.seq_mode == "none":
            return None
        if self.seq_mode == "random":
            return self.draw(st.integers(0, 4))
        self.counter += 1
        return self.counter

    def callback(self, event: str, tick: int, room_status: str = "in-progress", **params) -> dict:
        raw = {
            "AccountSid": ACCOUNT,
            "RoomSid": self.sid,
            "RoomName": self.name,
            "RoomStatus": room_status,
            "RoomType": "group",
            "StatusCallbackEvent": event,
            "Timestamp": format_ms(T0 + tick * TICK),
            "SequenceNumber": self._seq(),
            **params,
        }
        form = {k: [str(v)] for k, v in raw.items() if v is not None}
        return from_callback(form, T0 + tick * TICK + 300)

    def api_create(self, tick: int, form: dict[str, str]) -> dict:
        raw = {k: [v] for k, v in form.items()}
        if self.name:
            raw["UniqueName"] = [self.name]
        config = parse_create_form(raw).to_dict() | {"account_sid": ACCOUNT, "sid": self.sid}
        return room_created(ACCOUNT, self.sid, config, T0 + tick * TICK, raw)

    def api_end(self, tick: int, reason: str) -> dict:
        return room_ended(ACCOUNT, self.sid, self.name or self.sid, T0 + tick * TICK, reason=reason)


ticks = st.integers(0, 40)


@st.composite
def room_histories(draw, sid: str | None = None, name: str | None = None):
    sid = sid or "RM" + draw(st.sampled_from(["a", "b", "c"])) * 32
    name = name if name is not None else draw(st.sampled_from(["demo", "standup", None]))
    b = Builder(sid, name, draw(st.sampled_from(["counter", "none", "random"])), draw)
    events: list[dict] = []

    created = draw(ticks)
    create = draw(st.sampled_from(["api", "callback", "both", "none"]))
    if create in ("api", "both"):
        form = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "StatusCallback": st.just("https://example.com/callbacks"),
                    "UnusedRoomTimeout": st.sampled_from(["1", "2", "5"]),
                    "EmptyRoomTimeout": st.sampled_from(["1", "3"]),
                    "MaxParticipants": st.sampled_from(["4", "10"]),
                },
            )
        )
        events.append(b.api_create(created, form))
    if create in ("callback", "both"):
        events.append(b.callback("room-created", created + draw(st.integers(0, 1))))

    # Several ends can be reported: the API's and Twilio's room-ended, a timer racing the API, a
    # failure report besides any of them.
    ends = [
        (how, draw(ticks))
        for how in draw(
            st.lists(
                st.sampled_from(["api", "timeout", "callback", "callback+duration", "failed"]), max_size=3, unique=True
            )
        )
    ]
    twilio_end = min((tick for how, tick in ends if how.startswith("callback")), default=None)

    def room_status(tick: int) -> str:
        return "completed" if twilio_end is not None and tick >= twilio_end else "in-progress"

    for i in range(draw(st.integers(0, 4))):
        psid, ident = f"PA{i}", draw(st.sampled_from(["alice", "bob", f"user{i}"]))
        join = draw(ticks)
        events.append(
            b.callback(
                "participant-connected",
                join,
                room_status(join),
                ParticipantSid=psid,
                ParticipantIdentity=ident,
                ParticipantStatus="connected",
            )
        )
        leave = None
        if draw(st.booleans()):
            leave = join + draw(st.integers(-2, 30))  # a little clock skew now and then
            events.append(
                b.callback(
                    "participant-disconnected",
                    leave,
                    room_status(leave),
                    ParticipantSid=psid,
                    ParticipantIdentity=ident,
                    ParticipantStatus="disconnected",
                    ParticipantDuration=draw(st.one_of(st.none(), st.integers(0, 20))),
                )
            )
        for j in range(draw(st.integers(0, 2))):
            tsid, kind = f"MT{i}{j}", draw(st.sampled_from(["audio", "video", "data"]))
            track = dict(
                ParticipantSid=psid,
                ParticipantIdentity=ident,
                ParticipantStatus="connected",
                TrackSid=tsid,
                TrackKind=kind,
            )
            added = join + draw(st.integers(0, 5))
            events.append(b.callback("track-added", added, room_status(added), **track))
            for toggle in draw(st.lists(st.sampled_from(["track-enabled", "track-disabled"]), max_size=3)):
                at = added + draw(st.integers(0, 10))
                events.append(b.callback(toggle, at, room_status(at), **track))
            if draw(st.booleans()):
                at = added + draw(st.integers(0, 20))
                events.append(b.callback("track-removed", at, room_status(at), **track))
            outcome = draw(st.sampled_from(["none", "started", "completed", "failed", "completed+failed"]))
            if outcome != "none":
                rsid = f"RT{i}{j}"
                rec = dict(
                    ParticipantSid=psid,
                    ParticipantIdentity=ident,
                    RecordingSid=rsid,
                    SourceSid=tsid,
                    TrackName=f"track-{j}",
                    RecordingUri=f"/v1/Recordings/{rsid}",
                    Container="mka" if kind == "audio" else "mkv",
                    Codec="OPUS" if kind == "audio" else "VP8",
                    Type=kind,
                    OffsetFromTwilioVideoEpoch=draw(st.integers(0, 10_000)),
                )
                started = added + draw(st.integers(0, 3))
                events.append(b.callback("recording-started", started, room_status(started), **rec))
                if "completed" in outcome:
                    at = started + draw(st.integers(0, 20))
                    events.append(
                        b.callback(
                            "recording-completed",
                            at,
                            room_status(at),
                            **rec,
                            Duration=draw(st.integers(0, 20)),
                            Size=draw(st.integers(0, 10**6)),
                            MediaUri=f"https://media.example.com/{rsid}",
                        )
                    )
                if "failed" in outcome:
                    at = started + draw(st.integers(0, 20))
                    events.append(
                        b.callback(
                            "recording-failed",
                            at,
                            room_status(at),
                            **rec,
                            FailedOperation=draw(
                                st.sampled_from(["RecordingStart", "RecordingComplete", "RecordingUpload"])
                            ),
                        )
                    )

    for how, tick in ends:
        if how in ("api", "timeout"):
            events.append(b.api_end(tick, how))
        elif how == "failed":
            events.append(
                b.callback(
                    draw(st.sampled_from(["room-ended", "participant-disconnected"])),
                    tick,
                    "failed",
                    ParticipantSid="PA0",
                )
            )
        else:
            duration = draw(st.integers(0, 30)) if how == "callback+duration" else None
            events.append(b.callback("room-ended", tick, "completed", RoomDuration=duration))
    if not events:  # a room is known through at least one record
        events.append(b.callback("room-created", created))
    return events


def fold_all(events, state=None):
    return reduce(fold, events, state)


@st.composite
def shuffled_with_duplicates(draw, events: list[dict]) -> list[dict]:
    """Any arrival order, any duplicates; some duplicates are redeliveries with a later received_at."""
    dups = draw(st.lists(st.sampled_from(events), max_size=len(events))) if events else []
    dups = [dict(e, received_at=format_ms(T0 + 10**7)) if i % 2 else e for i, e in enumerate(dups)]
    mixed = events + dups
    draw(st.randoms(use_true_random=False)).shuffle(mixed)
    return mixed


NOWS = [T0 + k * 60_000 for k in (0, 1, 3, 6, 10, 60)]


@SETTINGS
@given(data=st.data(), events=room_histories())
def test_any_order_any_duplicates_fold_to_the_same_document(data, events):
    check_any_order_any_duplicates(data, events)


def check_any_order_any_duplicates(data, events):
    reference = fold_all(sorted(events, key=order_of))
    expected = render(reference)
    arrived = data.draw(shuffled_with_duplicates(events))
    state = fold_all(arrived)
    assert render(state) == expected
    # The timers read the state, so they agree as well: a replay emits the same timeout.
    assert [timer_due(state, now) for now in NOWS] == [timer_due(reference, now) for now in NOWS]


@SETTINGS
@given(data=st.data(), events=room_histories())
def test_fold_is_idempotent(data, events):
    check_idempotent(data, events)


def check_idempotent(data, events):
    arrived = data.draw(st.permutations(events))
    prefix = data.draw(st.integers(0, len(events)))
    state = fold_all(arrived[:prefix])
    for event in events:
        once = fold(state, event)
        assert fold(once, event) == once
    full = fold_all(arrived)
    for event in events:
        assert fold(full, event) == full


@SETTINGS
@given(data=st.data(), events=room_histories())
def test_fold_is_pure_and_completed_or_failed_never_reopens(data, events):
    check_pure_and_final(data, events)


def check_pure_and_final(data, events):
    arrived = data.draw(shuffled_with_duplicates(events))
    state = None
    seen_final = False
    for event in arrived:
        before, event_copy = copy.deepcopy(state), copy.deepcopy(event)
        new = fold(state, event)
        assert state == before and event == event_copy
        assert status(new) == render(new)["status"]
        if seen_final:
            assert status(new) != "in-progress"
        seen_final = seen_final or status(new) != "in-progress"
        state = new
    doc = render(state)
    ends = [
        e for e in events if e["type"] == "room-ended" or (e["room"] or {}).get("status") in ("completed", "failed")
    ]
    assert (doc["status"] != "in-progress") == bool(ends)
    if doc["status"] == "in-progress":
        assert doc["end_time"] is None and doc["duration"] is None
    else:
        assert doc["end_time"] is not None and doc["duration"] is not None and doc["duration"] >= 0
        assert doc["connected_participants"] == 0 and sum(doc["published_tracks"].values()) == 0


@SETTINGS
@given(data=st.data(), events=room_histories())
def test_document_invariants(data, events):
    check_document_invariants(data, events)


def check_document_invariants(data, events):
    doc = render(fold_all(data.draw(shuffled_with_duplicates(events))))
    assert doc["connected_participants"] <= doc["peak_concurrent_participants"] <= len(doc["participants"])
    assert doc["connected_participants"] == sum(p["status"] == "connected" for p in doc["participants"])
    for p in doc["participants"]:
        assert p["end_time"] is None or p["end_time"] >= p["start_time"]
        assert p["duration"] is None or p["duration"] >= 0
    assert sum(doc["published_tracks"].values()) == sum(t["published"] for t in doc["tracks"])
    times = sorted(e["occurred_at_ms"] for e in events)
    if events:
        assert doc["date_created_ms"] == times[0]
        assert doc["last_event"]["occurred_at"] == format_ms(times[-1])
        assert doc["last_event"]["event_id"] == max(events, key=order_of)["event_id"]


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.data(),
    first=room_histories(sid="RM" + "1" * 32, name="demo"),
    second=room_histories(sid="RM" + "2" * 32, name="demo"),
)
def test_book_replay_is_deterministic(data, first, second):
    """Two rooms competing for one name on one partition: the log's order decides, replay agrees."""
    log = data.draw(shuffled_with_duplicates(first + second))
    live = RoomBook()
    for event in log:
        live.apply(event)
    replayed = RoomBook()
    replayed.apply_all(log)
    assert replayed.rooms == live.rooms and replayed.active_names == live.active_names
    assert {sid: render(s) for sid, s in replayed.rooms.items()} == {sid: render(s) for sid, s in live.rooms.items()}
    # Never two in-progress rooms created through the API under one name.
    api_in_progress = [s for s in live.rooms.values() if s["config"] is not None and status(s) == "in-progress"]
    assert len(api_in_progress) <= 1


# ---------------------------------------------------------------- LiveKit and Zoom: the same properties
# Their webhooks are built in the providers' own wire format (tests/provider_webhooks.py) and mapped by
# service/providers/ exactly as the ingress maps them; redeliveries are the same body (same event id).
# LiveKit stamps whole seconds, so ties are the rule; Zoom stamps milliseconds (coarsened here too).

LK_T0 = T0 // 1000  # LiveKit's created_at is in seconds


@st.composite
def livekit_histories(draw, room_id: str = "RM_lkRoom1", name: str = "lk-standup"):
    from tests.provider_webhooks import livekit_event, livekit_records

    counter = iter(range(10_000))
    bodies: list[bytes] = []

    def add(event: str, second: int, **kw) -> None:
        bodies.append(
            livekit_event(event, LK_T0 + second, f"EV_{next(counter)}", room_sid=room_id, room_name=name, **kw)
        )

    started = draw(st.integers(0, 5))
    if draw(st.booleans()):
        add("room_started", started, creation_time=LK_T0 + started)
    finished = draw(st.one_of(st.none(), st.integers(10, 60)))
    if finished is not None:
        add("room_finished", finished, creation_time=LK_T0 + started if draw(st.booleans()) else None)
    for i in range(draw(st.integers(0, 4))):
        who = (f"PA_lk{i}", draw(st.sampled_from(["alice", "bob", f"user{i}"])))
        join = draw(st.integers(0, 40))
        add("participant_joined", join, participant=who, joined_at=LK_T0 + join)
        if draw(st.booleans()):
            how = draw(st.sampled_from(["participant_left", "participant_connection_aborted"]))
            add(how, join + draw(st.integers(-1, 20)), participant=who, joined_at=LK_T0 + join)
        for j in range(draw(st.integers(0, 2))):
            track = (f"TR_lk{i}{j}", draw(st.sampled_from(["audio", "video", "data"])), f"cam{j}")
            published = join + draw(st.integers(0, 5))
            add("track_published", published, participant=who, track=track)
            if draw(st.booleans()):
                add("track_unpublished", published + draw(st.integers(0, 20)), participant=who, track=track)
    for k in range(draw(st.integers(0, 2))):
        egress_id = f"EG_lk{k}"
        start = draw(st.integers(0, 30))
        add("egress_started", start, egress={"id": egress_id, "status": "EGRESS_STARTING"})
        for _ in range(draw(st.integers(0, 2))):
            add("egress_updated", start + draw(st.integers(0, 5)), egress={"id": egress_id, "status": "EGRESS_ACTIVE"})
        outcome = draw(
            st.sampled_from(["none", "EGRESS_COMPLETE", "EGRESS_FAILED", "EGRESS_ABORTED", "EGRESS_LIMIT_REACHED"])
        )
        if outcome != "none":
            add(
                "egress_ended",
                start + draw(st.integers(0, 30)),
                egress={
                    "id": egress_id,
                    "status": outcome,
                    "filename": f"rec-{k}.mp4",
                    "duration_s": draw(st.integers(0, 30)),
                    "size": draw(st.integers(1, 10**6)),
                    "location": f"s3://bucket/rec-{k}.mp4",
                    "error": "upload failed" if outcome == "EGRESS_FAILED" else "",
                },
            )
    if not bodies:
        add("room_started", started)
    events = [r for body in bodies for r in livekit_records(body, (LK_T0 + 100) * 1000, ACCOUNT)]
    if draw(st.booleans()):  # the Rooms API completed it too (roomevents' own command about a LiveKit room)
        events.append(
            room_ended(ACCOUNT, events[0]["room_sid"], name, T0 + draw(ticks) * TICK, reason="api", provider="livekit")
        )
    return events


@st.composite
def zoom_histories(draw, session_id: str = "4Ybz3QvSQEm0wyV6x0CkWg==", name: str | None = "zoom-standup"):
    from tests.provider_webhooks import zoom_event, zoom_iso, zoom_records, zoom_user

    bodies: list[bytes] = []

    def add(event: str, tick: int, **fields) -> None:
        bodies.append(zoom_event(event, T0 + tick * TICK, session_id=session_id, session_name=name, **fields))

    started = draw(st.integers(0, 5))
    start_iso = zoom_iso(T0 + started * TICK)
    if draw(st.booleans()):
        add("session.started", started, start_time=start_iso)
    ended = draw(st.one_of(st.none(), st.integers(10, 60)))
    if ended is not None:
        add("session.ended", ended, start_time=start_iso, end_time=zoom_iso(T0 + ended * TICK))
    for i in range(draw(st.integers(0, 4))):
        uid, user_name = f"1677{i}", draw(st.sampled_from(["Alice", "Bob", f"User {i}"]))
        key = draw(st.sampled_from([None, f"key-{i}"]))
        join = draw(ticks)
        add("session.user_joined", join, user=zoom_user(uid, user_name, key, join_time=zoom_iso(T0 + join * TICK)))
        if draw(st.booleans()):
            leave = join + draw(st.integers(-2, 30))
            add("session.user_left", leave, user=zoom_user(uid, user_name, key, leave_time=zoom_iso(T0 + leave * TICK)))
    for k in range(draw(st.integers(0, 2))):  # recording_completed webhooks, 0-3 files each (some not media)
        files = [
            {
                "id": f"file-{k}-{f}",
                "file_type": draw(st.sampled_from(["MP4", "M4A", "TRANSCRIPT", "CHAT"])),
                "file_extension": "MP4",
                "file_size": draw(st.integers(1, 10**6)),
                "recording_start": zoom_iso(T0),
                "recording_end": zoom_iso(T0 + draw(st.integers(0, 60)) * 1000),
                "download_url": f"https://zoom.example/rec/{k}/{f}",
                "recording_type": "gallery_view",
            }
            for f in range(draw(st.integers(0, 3)))
        ]
        add("session.recording_completed", draw(ticks), recording_files=files)
    if not bodies:
        add("session.started", started, start_time=start_iso)
    return [r for body in bodies for r in zoom_records(body, T0 + 10**6, ACCOUNT)]


provider_histories = st.one_of(livekit_histories(), zoom_histories())


@SETTINGS
@given(data=st.data(), events=provider_histories)
def test_provider_webhooks_in_any_order_with_any_duplicates_fold_to_the_same_document(data, events):
    check_any_order_any_duplicates(data, events)
    doc = render(fold_all(events))
    assert doc["provider"] == next(e["provider"] for e in events if e["source"] == "callback")
    assert doc["sid"].startswith("RM") and len(doc["sid"]) == 34
    for p in doc["participants"]:
        assert p["sid"].startswith("PA") and len(p["sid"]) == 34
    for t in doc["tracks"]:
        assert t["sid"].startswith("MT") and t["participant_sid"].startswith("PA")
    for r in doc["recordings"]:
        assert r["sid"].startswith("RT")


@SETTINGS
@given(data=st.data(), events=provider_histories)
def test_provider_webhooks_fold_idempotently(data, events):
    check_idempotent(data, events)


@SETTINGS
@given(data=st.data(), events=provider_histories)
def test_provider_rooms_never_reopen_and_keep_their_invariants(data, events):
    check_pure_and_final(data, events)
    check_document_invariants(data, events)


@SETTINGS
@given(data=st.data(), twilio=room_histories(name="shared"), lk=livekit_histories(name="shared"))
def test_providers_sharing_a_partition_and_a_name_fold_to_their_own_rooms(data, twilio, lk):
    """One unique name, one partition, two providers: each room folds to what it folds to alone."""
    log = data.draw(shuffled_with_duplicates(twilio + lk))
    book = RoomBook()
    for event in log:
        book.apply(event)
    alone = {group[0]["room_sid"]: render(fold_all(group)) for group in (twilio, lk)}
    for sid, doc in alone.items():
        got = render(book.rooms[sid])
        assert got["provider"] == doc["provider"]
        if got["failure_reason"] == UNIQUE_NAME_TAKEN and doc["failure_reason"] != UNIQUE_NAME_TAKEN:
            # An API create lost the name to the LiveKit room in progress under it (53113).
            assert doc["provider"] == "twilio" and got["created_via"] == "api"
            continue
        assert got == doc
