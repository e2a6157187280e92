"""SIGTERM during load: readiness first, in-flight requests finish, the producer flushes, exit 0,
and no callback that got a 2xx is missing from the topic."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

from service.callbacks.signature import compute_signature
from service.events.record import callback_event_id, decode, format_ms
from service.kafka.broker import free_port
from tests.helpers import read_topic, service_env, wait_ready, wait_until


async def test_sigterm_under_load_loses_no_acknowledged_callback(settings):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(
        settings,
        ROOMEVENTS_PORT=str(port),
        ROOMEVENTS_PUBLIC_URL=base,
        ROOMEVENTS_DRAIN_DELAY_S="1",
        ROOMEVENTS_SHUTDOWN_GRACE_S="10",
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "service.cli", "ingress", env=env)
    url = base + settings.callback_path
    acknowledged: set[str] = set()
    refused = 0
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base)

            counter = iter(range(10**9))

            async def client():
                nonlocal refused
                while True:
                    n = next(counter)
                    params = {
                        "AccountSid": settings.twilio_account_sid,
                        "RoomSid": f"RM{n % 7:032x}",
                        "RoomName": f"load-{n % 7}",
                        "StatusCallbackEvent": "participant-connected",
                        "ParticipantSid": f"PA{n:032x}",
                        "Timestamp": format_ms(1_900_000_000_000 + n),
                        "SequenceNumber": str(n),
                    }
                    signature = compute_signature(url, {k: [v] for k, v in params.items()}, settings.twilio_auth_token)
                    try:
                        async with http.post(url, data=params, headers={"X-Twilio-Signature": signature}) as r:
                            if 200 <= r.status < 300:
                                acknowledged.add(callback_event_id({k: [v] for k, v in params.items()}))
                            else:
                                refused += 1
                    except aiohttp.ClientError:
                        refused += 1  # the listener is closed: Twilio would retry elsewhere
                        if proc.returncode is not None:
                            return
                        await asyncio.sleep(0.01)

            clients = [asyncio.create_task(client()) for _ in range(16)]
            await wait_until(lambda: len(acknowledged) >= 300, timeout=30)
            proc.send_signal(signal.SIGTERM)
            # Readiness turns false first, while requests are still being served.
            async with http.get(base + "/readyz") as r:
                assert r.status == 503
            served_while_draining = len(acknowledged)
            await wait_until(lambda: len(acknowledged) > served_while_draining + 10, timeout=5)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            await asyncio.wait_for(asyncio.gather(*clients), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    on_topic = {
        decode(m.value)["event_id"] for m in await read_topic(settings.kafka_bootstrap_servers, settings.events_topic)
    }
    missing = acknowledged - on_topic
    assert not missing, f"{len(missing)} acknowledged callbacks missing from the topic"
    assert len(acknowledged) > 300


async def test_ingress_workers_share_the_port_and_stop_cleanly(settings):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(settings, ROOMEVENTS_PORT=str(port), ROOMEVENTS_PUBLIC_URL=base, ROOMEVENTS_WORKERS="2")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "service.cli", "ingress", env=env)
    url = base + settings.callback_path
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            await wait_ready(http, base)
            statuses = []
            for n in range(40):
                params = {
                    "RoomSid": f"RM{n:032x}",
                    "StatusCallbackEvent": "room-created",
                    "Timestamp": format_ms(1_900_000_000_000 + n),
                }
                sig = compute_signature(url, {k: [v] for k, v in params.items()}, settings.twilio_auth_token)
                async with http.post(url, data=params, headers={"X-Twilio-Signature": sig}) as r:
                    statuses.append(r.status)
            assert statuses == [204] * 40
        children = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
        assert len(children) == 2, children  # two forked workers share the port
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
