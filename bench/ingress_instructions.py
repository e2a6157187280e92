"""Instructions per callback, the peer's against the ingress's: a ratio the machine's speed cannot move.

The callbacks/s ratio of bench/ingress.py moves with this machine's speed, which drifts from second
to second by more than the gap being measured (docs/performance.md). Counting instructions does
not drift: each server runs under valgrind's callgrind, is warmed up, has its counters zeroed,
answers N validly signed callbacks (64 at a time, each 2xx only after the broker's ack), and has
them dumped. Instructions per callback = the dump's total / N; that includes the server's share of
everything it does meanwhile (its producer's requests, the state view's fetch loop), not the
kernel's work (socket reads and writes, about the same for both).

Compared: the hand-written peer (bench/peer_endpoint.py), the ingress as shipped, and the ingress
with its per-callback extras switched off (bench/ingress_variant.py), to price each of them.
Under callgrind a server runs ~50x slower, so both get a 100 ms linger instead of 2 ms: their
produce batches then hold about as many records as at full speed. The state view's fetch loop
runs by the clock, so under callgrind it weighs ~50x more per callback than at full speed: the
rows after "without follower" leave it out, and are compared with that row.

Run: .venv/bin/python bench/ingress_instructions.py [--callbacks 2000]   (installs valgrind if missing)
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ingress as bench  # noqa: E402

from service.kafka.broker import EmbeddedBroker, free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LINGER_MS = 100
CONCURRENCY = 64
# (label, None for the peer or the extras switched off: bench/ingress_variant.py BENCH_WITHOUT)
RUNS = [
    ("hand-written peer", None),
    ("ingress as shipped", ""),
    ("ingress without follower", "follower"),
    ("ingress without follower, headers", "follower,headers"),
    ("ingress without follower, metrics", "follower,metrics"),
    ("ingress without follower, log", "follower,log"),
    ("ingress without follower, deadline", "follower,deadline"),
    ("ingress without all five", "follower,headers,metrics,log,deadline"),
    ("hand-written peer, again", None),
]


async def drive(url: str, requests: list[tuple[str, str]]) -> None:
    """Send every request, CONCURRENCY at a time; each must be answered 204."""
    limit = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def one(body: str, signature: str) -> None:
            async with limit:
                headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 204:
                        raise SystemExit(f"{url}: answered {response.status}")

        await asyncio.gather(*(one(body, signature) for body, signature in requests))


def total_instructions(dump: str) -> int:
    with open(dump) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"{dump}: no totals")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--callbacks", type=int, default=2000, help="callbacks counted per server")
    parser.add_argument("--warm-up", type=int, default=500, help="callbacks before the counters are zeroed")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        print("installing valgrind (apt-get)...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=True, stdout=subprocess.DEVNULL)
    broker = EmbeddedBroker().start()
    tmp = tempfile.mkdtemp(prefix="roomevents-instructions-")
    try:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        bench.create_topics(broker.bootstrap_servers, bench.TOPICS)
        env = bench.ingress_env(broker.bootstrap_servers, port, LINGER_MS) | {
            "ROOMEVENTS_WORKERS": "1",
            "PYTHONPATH": bench.ROOT,
        }
        requests = [bench.signed(base_url, bench.participant_params(n)) for n in range(args.warm_up + args.callbacks)]
        url = base_url + bench.PATH
        rows = []
        for number, (label, without) in enumerate(RUNS):
            out = os.path.join(tmp, f"callgrind.{number}")
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"]
            if without is None:
                command += [
                    sys.executable,
                    os.path.join(HERE, "peer_endpoint.py"),
                    str(port),
                    broker.bootstrap_servers,
                    "bench-events",
                    base_url,
                    bench.TOKEN,
                    str(LINGER_MS),
                ]
                up = base_url + "/"
            else:
                command += [sys.executable, os.path.join(HERE, "ingress_variant.py"), "ingress"]
                up = base_url + "/healthz"
            with open(os.path.join(tmp, f"server.{number}.log"), "wb") as log_file:
                proc = subprocess.Popen(
                    command,
                    cwd=bench.ROOT,
                    env=env | {"BENCH_WITHOUT": without or ""},
                    stdout=log_file,
                    stderr=log_file,
                )
            try:
                bench.wait_http(up, timeout=600)
                asyncio.run(drive(url, requests[: args.warm_up]))
                subprocess.run(["callgrind_control", "--zero", str(proc.pid)], capture_output=True, check=True)
                asyncio.run(drive(url, requests[args.warm_up :]))
                subprocess.run(["callgrind_control", "--dump", str(proc.pid)], capture_output=True, check=True)
                dumps = sorted(glob.glob(out + ".*"), key=os.path.getmtime)
                if not dumps:
                    raise SystemExit(f"{label}: callgrind wrote no dump")
                per_callback = total_instructions(dumps[-1]) / args.callbacks
            finally:
                bench.stop(proc)
                time.sleep(0.5)  # the port is free again
            rows.append((label, per_callback))
            print(f"{label}: {per_callback / 1000:,.1f} k instructions per callback", flush=True)
        peer = min(v for label, v in rows if label.startswith("hand-written peer"))
        shipped = rows[1][1]
        no_follower = rows[2][1]
        print()
        print(
            f"| server ({args.callbacks:,} callbacks, 64 at a time, under callgrind) | k instructions / callback "
            "| saved | peer / this |"
        )
        print("|---|---:|---:|---:|")
        for label, value in rows:
            base = shipped if label == "ingress without follower" else no_follower
            saved = (
                ""
                if label.startswith("hand-written") or label == "ingress as shipped"
                else f"{(base - value) / 1000:,.1f}"
            )
            print(f"| {label} | {value / 1000:,.1f} | {saved} | {peer / value:.2f} |")
        print(
            "\nsaved: against the row it switches one more extra off from (as shipped, or without follower); "
            "peer / this is the callbacks/s ratio the instruction counts give (target >= 0.80), the peer's "
            "lower count as the peer"
        )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
