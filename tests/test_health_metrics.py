"""Operations endpoints: /healthz, /readyz (broker reachable, view caught up; for the materializer,
partitions assigned and rebuilt), /metrics in Prometheus format. No auth, no secrets."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from service.callbacks.signature import compute_signature
from service.metrics import Metrics
from service.runtime import MaterializerService
from tests.helpers import AUTH_TOKEN, basic_auth, running_system, wait_until


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_ingress_health_readiness_and_metrics(settings):
    async with running_system(settings) as (ingress, _), aiohttp.ClientSession() as http:
        base = ingress.url
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
        async with http.get(f"{base}/readyz") as r:
            body = await r.json()
            assert r.status == 200 and body["ready"] and body["broker"] and body["state_view_caught_up"]
        async with http.post(f"{base}/v1/Rooms", data={"UniqueName": "metered"}, headers=basic_auth()) as r:
            assert r.status == 201
        url = f"{base}{settings.callback_path}"
        params = {
            "RoomSid": "RM" + "5" * 32,
            "StatusCallbackEvent": "participant-connected",
            "ParticipantSid": "PA" + "6" * 32,
            "Timestamp": "2030-01-01T00:00:00.000Z",
        }
        signature = compute_signature(url, {k: [v] for k, v in params.items()}, AUTH_TOKEN)
        async with http.post(url, data=params, headers={"X-Twilio-Signature": signature}) as r:
            assert r.status == 204
        async with http.post(url, data=params, headers={"X-Twilio-Signature": "forged"}) as r:
            assert r.status == 403
        async with http.get(f"{base}/metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
        got = samples(text)
        assert (
            got[("roomevents_http_requests_total", (("method", "POST"), ("route", "/v1/Rooms"), ("status", "201")))]
            == 1
        )
        assert got[("roomevents_callbacks_total", (("event", "participant-connected"), ("status", "204")))] == 1
        assert got[("roomevents_signature_failures_total", ())] == 1
        assert got[("roomevents_publish_seconds_count", (("topic", settings.events_topic),))] == 2
        assert AUTH_TOKEN not in text and "Basic " not in text


async def test_materializer_readiness_means_partitions_assigned_and_rebuilt(settings):
    from service.kafka.broker import free_port

    port = free_port()
    service = MaterializerService(settings.with_overrides(metrics_port=port), Metrics())
    async with aiohttp.ClientSession() as http:
        await service.start()
        try:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200
            await wait_until(lambda: service.materializer.ready, timeout=30)
            async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                body = await r.json()
                assert r.status == 200 and body["partitions"] == list(range(settings.topic_partitions))
            async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert "roomevents_rooms" in await r.text()
        finally:
            await service.stop()
