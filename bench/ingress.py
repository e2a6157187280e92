"""Ingress benchmark: signed status callbacks driven by wrk at the running ingress (verify,
normalize, publish with acks=all to the embedded broker), and in the same run at a bare aiohttp
endpoint that only parses the form and answers 204. Prints callbacks/s, p50 and p99 for both and
the ratio. Run: .venv/bin/python bench/ingress.py [--connections 64 --seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from service.callbacks.signature import compute_signature  # noqa: E402
from service.events.record import format_ms  # noqa: E402
from service.kafka.broker import EmbeddedBroker, free_port  # noqa: E402
from service.kafka.topics import ensure_topics  # noqa: E402
from service.settings import Settings  # noqa: E402

ACCOUNT = "AC" + "c3" * 16
TOKEN = "bench-token"
PATH = "/v1/Callbacks/Rooms"

WRK_SCRIPT = r"""
local requests = dofile(os.getenv("BENCH_REQUESTS"))
local i = math.random(#requests)
request = function()
  i = i % #requests + 1
  local r = requests[i]
  return wrk.format("POST", r[1], {["Content-Type"] = "application/x-www-form-urlencoded",
                                   ["X-Twilio-Signature"] = r[3]}, r[2])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_requests(path: str, base_url: str, count: int) -> None:
    """Distinct, validly signed participant callbacks (as Twilio sends them) in a Lua table."""
    lines = ["return {"]
    for n in range(count):
        room = n % 500
        params = {
            "AccountSid": ACCOUNT,
            "RoomSid": f"RM{room:032x}",
            "RoomName": f"bench-{room}",
            "RoomStatus": "in-progress",
            "RoomType": "group",
            "StatusCallbackEvent": "participant-connected",
            "Timestamp": format_ms(1_900_000_000_000 + n),
            "SequenceNumber": str(n),
            "ParticipantSid": f"PA{n:032x}",
            "ParticipantIdentity": f"user-{n}",
            "ParticipantStatus": "connected",
        }
        body = urlencode(params)
        signature = compute_signature(base_url + PATH, {k: [v] for k, v in params.items()}, TOKEN)
        lines.append(f"{{{lua_string(PATH)}, {lua_string(body)}, {lua_string(signature)}}},")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status < 500:
                    return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def wrk(url: str, connections: int, seconds: int, script: str, env: dict) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", script, url],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("installing wrk (apt-get)...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="ingress worker counts to measure")
    args = parser.parse_args()
    ensure_wrk()
    broker = EmbeddedBroker().start()
    procs: list[subprocess.Popen] = []
    tmp = tempfile.mkdtemp(prefix="roomevents-bench-")
    try:
        ingress_port, bare_port = free_port(), free_port()
        base_url = f"http://127.0.0.1:{ingress_port}"
        settings = Settings(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            twilio_account_sid=ACCOUNT,
            twilio_auth_token=TOKEN,
            events_topic="bench-events",
            state_topic="bench-state",
            dead_letter_topic="bench-dlq",
        )
        asyncio.run(ensure_topics(settings))
        env = os.environ | {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "ROOMEVENTS_HOST": "127.0.0.1",
            "ROOMEVENTS_PORT": str(ingress_port),
            "ROOMEVENTS_PUBLIC_URL": base_url,
            "ROOMEVENTS_EVENTS_TOPIC": "bench-events",
            "ROOMEVENTS_STATE_TOPIC": "bench-state",
            "ROOMEVENTS_DEAD_LETTER_TOPIC": "bench-dlq",
            "ROOMEVENTS_LOG_LEVEL": "WARNING",
        }
        requests_path = os.path.join(tmp, "requests.lua")
        write_requests(requests_path, base_url, args.requests)
        script = os.path.join(tmp, "wrk.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT)
        wrk_env = os.environ | {"BENCH_REQUESTS": requests_path}

        def measure(url: str) -> dict:
            wrk(url, args.connections, 2, script, wrk_env)  # warm-up
            return wrk(url, args.connections, args.seconds, script, wrk_env)

        bare_proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "bare_endpoint.py"), str(bare_port)])
        procs.append(bare_proc)
        wait_http(f"http://127.0.0.1:{bare_port}{PATH}")
        results = [("bare aiohttp, 1 process: parse form, 204", measure(f"http://127.0.0.1:{bare_port}{PATH}"))]
        bare_proc.terminate()
        bare_proc.wait()
        for workers in args.workers:
            proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "ingress"],
                cwd=ROOT,
                env=env | {"ROOMEVENTS_WORKERS": str(workers)},
            )
            procs.append(proc)
            wait_http(f"{base_url}/healthz")
            results.append(
                (
                    f"roomevents ingress, {workers} worker(s): verify, normalize, publish acks=all",
                    measure(f"{base_url}{PATH}"),
                )
            )
            proc.terminate()
            proc.wait(30)
            time.sleep(0.5)  # the port is free again
        bare = results[0][1]
        print()
        print(
            f"| endpoint ({args.connections} connections, {args.seconds}s, 2 cores shared with wrk and the broker)"
            " | callbacks/s | p50 ms | p99 ms | non-2xx | ratio to bare |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for name, r in results:
            print(
                f"| {name} | {r['rps']:,.0f} | {r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | "
                f"{r['non2xx'] + r['socket_errors']} | {r['rps'] / bare['rps']:.2f} |"
            )
        print("\ntargets: ingress >= 0.80 of bare, ingress p99 < 15 ms at 64 connections")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
