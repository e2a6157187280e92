"""Room and participant resources as Twilio renders them, from the materialized room document."""
from __future__ import annotations

from typing import Any, Mapping

from service.state.fold import RESOURCE_FIELDS


def room_resource(doc: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    sid = doc["sid"]
    url = f"{base_url}/v1/Rooms/{sid}"
    out = {key: doc.get(key) for key in RESOURCE_FIELDS}
    out["url"] = url
    out["links"] = {
        "participants": f"{url}/Participants",
        "recordings": f"{url}/Recordings",
        "recording_rules": f"{url}/RecordingRules",
        "transcriptions": f"{url}/Transcriptions",
    }
    return out


def participant_resource(doc: Mapping[str, Any], participant: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    room_sid = doc["sid"]
    url = f"{base_url}/v1/Rooms/{room_sid}/Participants/{participant['sid']}"
    return {
        "sid": participant["sid"],
        "room_sid": room_sid,
        "account_sid": doc.get("account_sid"),
        "status": participant["status"],
        "identity": participant["identity"],
        "date_created": participant["start_time"],
        "date_updated": participant["end_time"] or participant["start_time"],
        "start_time": participant["start_time"],
        "end_time": participant["end_time"],
        "duration": participant["duration"],
        "url": url,
        "links": {
            "published_tracks": f"{url}/PublishedTracks",
            "subscribed_tracks": f"{url}/SubscribedTracks",
            "subscribe_rules": f"{url}/SubscribeRules",
            "anonymize": f"{url}/Anonymize",
        },
    }
