"""The session's log capture, and the search of every captured line for the secrets the suite
configured (see conftest.py).

Captured: every structlog event at every level (through `logs.setup(..., tap=...)`, after the
service's own redaction, before the level filter) and every stdlib record that reaches the root
logger (aiohttp, asyncio, aiokafka; after the service's LibraryLogGuard filters), rendered with its
traceback. Kept in memory and appended to a file (ROOMEVENTS_TEST_LOG_FILE, else a temp file) so a
failing session can be read afterwards.

Secrets: the tokens of every ingress the suite starts in-process (IngressServer is wrapped to note
them), the test and dev tokens, and the forms they travel in: raw, Basic `base64(SID:token)`,
base64 of the token, percent-encoded.
"""

from __future__ import annotations

import base64
import logging
import os
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote

import orjson

from service import settings as settings_module
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN

MIN_SECRET = 8  # shorter strings would match by chance


class SessionLogCapture:
    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.secrets: set[tuple[str, str]] = {
            (ACCOUNT_SID, AUTH_TOKEN),
            (settings_module.DEV_ACCOUNT_SID, settings_module.DEV_AUTH_TOKEN),
        }
        path = os.environ.get("ROOMEVENTS_TEST_LOG_FILE")
        if path:
            self.path = Path(path)
        else:
            fd, name = tempfile.mkstemp(prefix="roomevents-test-", suffix=".log")
            os.close(fd)
            self.path = Path(name)
        self._file = self.path.open("a", encoding="utf-8", errors="backslashreplace")

    def _add(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            self._file.write(line.replace("\n", "\\n") + "\n")
            self._file.flush()

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def structlog_event(self, event: dict) -> None:
        self._add(orjson.dumps(event, default=repr, option=orjson.OPT_NON_STR_KEYS).decode())

    def note_secrets(self, account_sid: str, tokens) -> None:
        for token in tokens:
            if token:
                self.secrets.add((account_sid, token))

    def install(self) -> None:
        handler = _Handler(self)
        root = logging.getLogger()
        if not any(isinstance(h, _Handler) for h in root.handlers):
            root.addHandler(handler)
        # Note the secrets of every ingress started in-process.
        from service import runtime

        original = runtime.IngressServer.__init__
        if getattr(original, "_noting_secrets", False):
            return
        capture = self

        def __init__(server, settings, *args, **kwargs):
            capture.note_secrets(settings.twilio_account_sid, settings.auth_tokens)
            original(server, settings, *args, **kwargs)

        __init__._noting_secrets = True
        runtime.IngressServer.__init__ = __init__

    def needles(self) -> dict[str, str]:
        """Searched text -> what it is (never the secret itself)."""
        out = {}
        for sid, token in sorted(self.secrets):
            if len(token) < MIN_SECRET:
                continue
            basic = base64.b64encode(f"{sid}:{token}".encode()).decode()
            out[token] = f"an auth token of {sid}"
            out[basic] = f"Basic credentials of {sid}"
            out[basic.rstrip("=")[:24]] = f"the start of the Basic credentials of {sid}"
            out[base64.b64encode(token.encode()).decode().rstrip("=")] = f"an auth token of {sid}, base64"
            out[quote(token, safe="")] = f"an auth token of {sid}, percent-encoded"
        return out

    def leaks(self) -> list[str]:
        needles = self.needles()
        found = []
        for n, line in enumerate(self.lines()):
            for needle, what in needles.items():
                if needle in line:
                    found.append(f"captured log line {n}: {what}")
        return found

    def report(self, leaks: list[str]) -> None:
        self._file.flush()
        if leaks:
            sys.stderr.write(
                f"\nSECRETS IN THE LOGS: {len(leaks)} hit(s) in {len(self._lines)} captured lines ({self.path}):\n  "
                + "\n  ".join(leaks[:20])
                + "\n"
            )


class _Handler(logging.Handler):
    def __init__(self, capture: SessionLogCapture) -> None:
        super().__init__(logging.NOTSET)
        self.capture = capture
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.capture._add(self.format(record))
        except Exception:  # never break the code under test
            self.handleError(record)


CAPTURE = SessionLogCapture()
