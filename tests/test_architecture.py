"""Design rule: domain code (room parameters, event records, signatures, the fold, the read index)
imports neither aiohttp, aiokafka nor asyncpg; only the I/O shells do."""
from __future__ import annotations

import subprocess
import sys

DOMAIN = ["service.rooms.params", "service.rooms.errors", "service.rooms.resource", "service.events.record",
          "service.events.cloudevents", "service.callbacks.signature", "service.callbacks.parse",
          "service.state.fold", "service.state.book", "service.state.index", "service.rooms.merge",
          "service.history.rows"]


def test_domain_modules_import_no_io_libraries():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in DOMAIN) +
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'aiokafka', 'asyncpg')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
