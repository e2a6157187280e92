"""Takes docs/dashboard.png (and docs/dashboard-detail.png): the dashboard with real data.

    .venv/bin/python scripts/dashboard_screenshot.py [--seconds 150] [--out docs]

Starts the whole system in this process (embedded broker, topics, materializer, ingress on a free
port), opens /dashboard in Debian's Chromium, then plays a few minutes of a video platform's day
through the real front door: rooms created with the Rooms API and by Twilio's signed status
callbacks, participants joining and leaving, tracks published, rooms ended by Twilio, completed
through the API, and now and then one that fails. At the end it takes the screenshots.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service import logs, settings as settings_module  # noqa: E402
from service.callbacks.signature import compute_signature  # noqa: E402
from service.events import record as records  # noqa: E402
from service.kafka.broker import EmbeddedBroker  # noqa: E402
from service.kafka.topics import ensure_topics  # noqa: E402
from service.metrics import Metrics  # noqa: E402
from service.runtime import IngressServer, MaterializerService  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NAMES = ["standup", "design-review", "support", "sales-demo", "onboarding", "all-hands", "interview",
         "tutoring", "telehealth", "retro", "office-hours", "pairing", "webinar", "1on1", "planning"]
PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
          "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yasmin"]
TYPES = ["group", "group", "group-small", "peer-to-peer", "go"]
CAPACITY = {"go": 2, "group-small": 4, "peer-to-peer": 6}


class Platform:
    def __init__(self, http: aiohttp.ClientSession, base: str, cfg, rng: random.Random) -> None:
        self.http, self.base, self.cfg, self.rng = http, base, cfg, rng
        import base64
        token = base64.b64encode(f"{cfg.twilio_account_sid}:{cfg.twilio_auth_token}".encode()).decode()
        self.auth = {"Authorization": "Basic " + token}
        self.rooms: dict[str, dict] = {}  # sid -> {"name", "people": {psid: identity}, "seq"}
        self.serial = 0

    async def create_api(self) -> None:
        self.serial += 1
        name, kind = f"{self.rng.choice(NAMES)}-{self.serial}", self.rng.choice(TYPES)
        async with self.http.post(f"{self.base}/v1/Rooms", headers=self.auth,
                                  data={"UniqueName": name, "Type": kind}) as resp:
            if resp.status == 201:
                self.rooms[(await resp.json())["sid"]] = {"name": name, "people": {}, "seq": 0, "type": kind}

    async def create_callback(self) -> None:
        self.serial += 1
        sid = "RM" + "%032x" % self.rng.getrandbits(128)
        room = {"name": f"{self.rng.choice(NAMES)}-{self.serial}", "people": {}, "seq": 0,
                "type": self.rng.choice(TYPES)}
        self.rooms[sid] = room
        await self.callback(sid, "room-created")

    async def callback(self, sid: str, event: str, **extra: str) -> None:
        room = self.rooms[sid]
        room["seq"] += 1
        params = {"AccountSid": self.cfg.twilio_account_sid, "RoomSid": sid, "RoomName": room["name"],
                  "RoomType": room["type"], "RoomStatus": "completed" if event == "room-ended" else "in-progress",
                  "StatusCallbackEvent": event, "SequenceNumber": str(room["seq"]),
                  "Timestamp": records.format_ms(int(time.time() * 1000))} | extra
        url = f"{self.base}{self.cfg.callback_path}"
        signature = compute_signature(url, {k: [v] for k, v in params.items()}, self.cfg.twilio_auth_token, "HMAC_SHA1")
        async with self.http.post(url, data=urlencode(params).encode(),
                                  headers={"X-Twilio-Signature": signature,
                                           "Content-Type": "application/x-www-form-urlencoded"}) as resp:
            await resp.read()

    async def join(self, sid: str) -> None:
        room = self.rooms[sid]
        psid = "PA" + "%032x" % self.rng.getrandbits(128)
        identity = self.rng.choice([p for p in PEOPLE if p not in room["people"].values()] or PEOPLE)
        room["people"][psid] = identity
        who = {"ParticipantSid": psid, "ParticipantIdentity": identity, "ParticipantStatus": "connected"}
        await self.callback(sid, "participant-connected", **who)
        for kind, name in (("audio", "microphone"), ("video", "camera")):
            if kind == "video" and room["type"] == "go" or self.rng.random() < 0.2:
                continue
            await self.callback(sid, "track-added", **who, TrackSid="MT" + "%032x" % self.rng.getrandbits(128),
                                TrackKind=kind, TrackName=name)

    async def leave(self, sid: str) -> None:
        room = self.rooms[sid]
        psid, identity = self.rng.choice(list(room["people"].items()))
        del room["people"][psid]
        await self.callback(sid, "participant-disconnected", ParticipantSid=psid, ParticipantIdentity=identity,
                            ParticipantStatus="disconnected")

    async def end(self, sid: str) -> None:
        room = self.rooms[sid]
        roll = self.rng.random()
        if roll < 0.1:
            await self.callback(sid, "room-ended", RoomStatus="failed")
        elif roll < 0.35:
            async with self.http.post(f"{self.base}/v1/Rooms/{sid}", headers=self.auth, data={"Status": "completed"}) as r:
                await r.read()
        else:
            for psid, identity in list(room["people"].items()):
                await self.callback(sid, "participant-disconnected", ParticipantSid=psid,
                                    ParticipantIdentity=identity, ParticipantStatus="disconnected")
            await self.callback(sid, "room-ended")
        del self.rooms[sid]

    async def step(self, target: int) -> None:
        """One moment of traffic: more arrivals while below `target` rooms, more endings above."""
        rng = self.rng
        if len(self.rooms) < target and rng.random() < 0.6:
            await (self.create_api() if rng.random() < 0.4 else self.create_callback())
        for sid in rng.sample(list(self.rooms), min(len(self.rooms), rng.randrange(1, 5))):
            room = self.rooms[sid]
            roll = rng.random()
            if roll < 0.45 and len(room["people"]) < CAPACITY.get(room["type"], 9):
                await self.join(sid)
            elif roll < 0.65 and room["people"]:
                await self.leave(sid)
            elif roll < (0.72 if len(self.rooms) > target else 0.68):
                await self.end(sid)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=150.0, help="how long the traffic plays (default 150)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the PNGs go (default docs/)")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    logs.setup("WARNING", "console")

    from playwright.async_api import async_playwright

    broker = EmbeddedBroker().start()
    cfg = settings_module.load({}, dev=True).with_overrides(kafka_bootstrap_servers=broker.bootstrap_servers, port=0,
                                                             session_timeout_ms=6000)
    await ensure_topics(cfg)
    materializer = MaterializerService(cfg, Metrics(), serve_health=False)
    ingress = IngressServer(cfg, Metrics())
    await materializer.start()
    await ingress.start()
    try:
        while not materializer.materializer.ready:
            await asyncio.sleep(0.1)
        base = ingress.url
        rng = random.Random(args.seed)
        async with aiohttp.ClientSession() as http, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            context = await browser.new_context(
                base_url=base, viewport={"width": 1280, "height": 1000}, color_scheme="light",
                http_credentials={"username": cfg.twilio_account_sid, "password": cfg.twilio_auth_token})
            page = await context.new_page()
            await page.goto("/dashboard")
            platform = Platform(http, base, cfg, rng)

            async def traffic() -> None:
                started = time.monotonic()
                while True:
                    # A busy morning: the number of rooms wanted rises, dips, rises again.
                    share = (time.monotonic() - started) / args.seconds
                    target = int(18 + 14 * min(1.0, share * 2) - (8 if 0.6 < share < 0.75 else 0))
                    await platform.step(target)
                    await asyncio.sleep(rng.uniform(0.05, 0.35))

            task = asyncio.create_task(traffic())
            try:
                await asyncio.sleep(args.seconds)
                args.out.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(args.out / "dashboard.png"))
                # The details of the busiest room.
                busiest = await page.evaluate("""() => {
                    let best = null, most = -1;
                    for (const tr of document.querySelectorAll('#live-table tbody tr')) {
                        const n = Number(tr.cells[3].textContent);
                        if (n > most) { most = n; best = tr.dataset.sid; }
                    }
                    return best; }""")
                await page.locator(f'#live-table button.room[data-sid="{busiest}"]').click()
                await page.locator("#participants-table tbody tr").first.wait_for()
                await page.wait_for_timeout(500)
                await page.screenshot(path=str(args.out / "dashboard-detail.png"))
            finally:
                task.cancel()
            await browser.close()
        print(f"wrote {args.out / 'dashboard.png'} and {args.out / 'dashboard-detail.png'}")
    finally:
        await ingress.stop()
        await materializer.stop()
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
