#!/usr/bin/env python3
"""Container HEALTHCHECK for every roomevents role (stdlib only: slim has no curl).

The ingress serves /healthz on ROOMEVENTS_PORT (8080); the materializer serves it
on ROOMEVENTS_METRICS_PORT (9090). The probe asks the first of those ports that
accepts a TCP connection, so one image-level check fits both roles.
Exit 0 when /healthz answers 2xx, 1 otherwise.

Kubernetes ignores Docker HEALTHCHECKs; the Helm chart uses its own probes.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request


def _ports() -> list[int]:
    return [
        int(os.environ.get("ROOMEVENTS_PORT") or 8080),
        int(os.environ.get("ROOMEVENTS_METRICS_PORT") or 9090),
    ]


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    for port in _ports():
        if not _listening(port):
            continue
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
                return 0 if 200 <= resp.status < 300 else 1
        except OSError as exc:  # URLError/HTTPError are OSErrors
            print(f"healthcheck: port {port}: {exc}", file=sys.stderr)
            return 1
    print(f"healthcheck: nothing listening on {_ports()}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
