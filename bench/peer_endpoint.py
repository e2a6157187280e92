"""The hand-written peer: the status-callback handler a team writes by hand, for bench/ingress.py.

An aiohttp route that reads the form, checks X-Twilio-Signature (HMAC-SHA1 over the URL and the
sorted form parameters, as Twilio signs), builds a dict, `orjson.dumps` it and `send_and_wait`s it
with acks=all (and the same linger and batch size as roomevents), answering 204. No logging, no
metrics, no deadline, no dead letters.

Run: python bench/peer_endpoint.py PORT BOOTSTRAP TOPIC PUBLIC_URL TOKEN [LINGER_MS]
"""

import base64
import hashlib
import hmac
import sys
import time

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

port, bootstrap, topic, public_url, token = sys.argv[1:6]
linger_ms = int(sys.argv[6]) if len(sys.argv) > 6 else 2
key = token.encode()
producer_key = web.AppKey("producer", AIOKafkaProducer)


async def handle(request: web.Request) -> web.Response:
    form = await request.post()
    signed = public_url + request.path_qs + "".join(k + v for k in sorted(set(form)) for v in sorted(form.getall(k)))
    expected = base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha1).digest())
    if not hmac.compare_digest(expected, request.headers.get("X-Twilio-Signature", "").encode()):
        return web.Response(status=403)
    record = {
        "room_sid": form.get("RoomSid"),
        "room_name": form.get("RoomName"),
        "type": form.get("StatusCallbackEvent"),
        "timestamp": form.get("Timestamp"),
        "sequence_number": form.get("SequenceNumber"),
        "participant_sid": form.get("ParticipantSid"),
        "participant_identity": form.get("ParticipantIdentity"),
        "received_at_ms": int(time.time() * 1000),
        "params": dict(form),
    }
    await request.app[producer_key].send_and_wait(
        topic, orjson.dumps(record), key=(record["room_name"] or record["room_sid"] or "").encode()
    )
    return web.Response(status=204)


async def producer_ctx(app: web.Application):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=linger_ms, max_batch_size=512 * 1024)
    await producer.start()
    app[producer_key] = producer
    yield
    await producer.stop()


app = web.Application()
app.cleanup_ctx.append(producer_ctx)
app.router.add_post("/v1/Callbacks/Rooms", handle)
web.run_app(app, host="127.0.0.1", port=int(port), access_log=None, print=None)
