"""The command line: each subcommand has its own help listing the settings it reads; each role asks
only for the settings it needs (the materializer and `topics` run without Twilio credentials); a
busy port stops the process at once with one line naming the variable, exit 2; README.md's settings
table is the same table as service/settings.py VARIABLES."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from service import cli, settings as settings_module
from service.kafka.broker import free_port
from tests.helpers import service_env, wait_ready

README = Path(__file__).resolve().parents[1] / "README.md"
TWILIO = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN_SECONDARY")


def help_of(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def without_twilio(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in TWILIO}


# ---------------------------------------------------------------- help


def test_top_level_help_lists_the_commands_and_how_to_call_roomevents(capsys):
    text = help_of(capsys)
    for command in ("dev", "ingress", "materializer", "topics"):
        assert re.search(rf"^\s+{command}\b", text, re.M), command
    assert ".venv/bin/roomevents" in text and "source .venv/bin/activate" in text
    assert "COMMAND --help" in text


@pytest.mark.parametrize("role", ["dev", "ingress", "materializer", "topics"])
def test_each_subcommand_has_its_own_help_with_the_settings_it_reads(capsys, role):
    text = help_of(capsys, role)
    assert text.startswith(f"usage: roomevents {role} ")
    assert " ".join(cli.DESCRIPTIONS[role].split()[:6]) in " ".join(text.split())
    listed = set(re.findall(r"^  ([A-Z][A-Z0-9_]+)$", text, re.M))
    assert listed == {v.name for v in settings_module.variables_for(role)}
    assert ("TWILIO_AUTH_TOKEN" in listed) == (role in ("ingress", "dev"))
    assert ("ROOMEVENTS_CONSUMER_GROUP" in listed) == (role in ("materializer", "dev"))


# ---------------------------------------------------------------- each role asks only for what it needs


def test_only_the_ingress_needs_twilio_credentials():
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "TWILIO_ACCOUNT_SID": "not-a-sid",
        "ROOMEVENTS_PORT": "not-a-port",
    }
    for role in ("materializer", "topics"):
        cfg = settings_module.load(env, role=role)  # neither read nor validated: no error
        assert cfg.kafka_bootstrap_servers == "127.0.0.1:9092" and cfg.auth_tokens == ()
    with pytest.raises(settings_module.SettingsError, match="TWILIO_ACCOUNT_SID"):
        settings_module.load(env, role="ingress")
    with pytest.raises(settings_module.SettingsError, match="TWILIO_AUTH_TOKEN is required"):
        settings_module.load({"KAFKA_BOOTSTRAP_SERVERS": "k:1", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32}, role="ingress")
    # What a role reads is still validated.
    with pytest.raises(settings_module.SettingsError, match="ROOMEVENTS_METRICS_PORT"):
        settings_module.load({"KAFKA_BOOTSTRAP_SERVERS": "k:1", "ROOMEVENTS_METRICS_PORT": "x"}, role="materializer")
    dev = settings_module.load({}, role="dev")
    assert dev.twilio_auth_token == settings_module.DEV_AUTH_TOKEN and dev.dev_data == ".dev-data"


def test_the_fetch_wait_is_read_by_the_roles_that_follow_topics_and_bounded():
    kafka = {"KAFKA_BOOTSTRAP_SERVERS": "k:1"}
    assert settings_module.load(kafka, role="materializer").fetch_max_wait_ms == 10
    assert (
        settings_module.load(kafka | {"ROOMEVENTS_FETCH_MAX_WAIT_MS": "500"}, role="materializer").fetch_max_wait_ms
        == 500
    )
    for bad in ("0", "5001", "soon"):
        with pytest.raises(settings_module.SettingsError, match="ROOMEVENTS_FETCH_MAX_WAIT_MS"):
            settings_module.load(kafka | {"ROOMEVENTS_FETCH_MAX_WAIT_MS": bad}, role="materializer")
    ingress = kafka | {
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "t",
        "ROOMEVENTS_ALLOW_ANY_HOST": "true",
        "ROOMEVENTS_FETCH_MAX_WAIT_MS": "250",
    }
    assert settings_module.load(ingress, role="ingress").fetch_max_wait_ms == 250
    # `topics` never fetches: neither read nor validated.
    assert settings_module.load(kafka | {"ROOMEVENTS_FETCH_MAX_WAIT_MS": "0"}, role="topics").fetch_max_wait_ms == 10


def test_workers_need_the_port_they_share_fixed():
    ingress = {"KAFKA_BOOTSTRAP_SERVERS": "k:1", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t"}
    ingress |= {"ROOMEVENTS_ALLOW_ANY_HOST": "true", "ROOMEVENTS_WORKERS": "2"}
    with pytest.raises(settings_module.SettingsError, match="needs a fixed ROOMEVENTS_PORT"):
        settings_module.load(ingress | {"ROOMEVENTS_PORT": "0"}, role="ingress")
    assert settings_module.load(ingress | {"ROOMEVENTS_METRICS_PORT": "0"}, role="ingress").workers == 2
    # The materializer's workers share the health/metrics port: ROOMEVENTS_PORT is not its business.
    materializer = {"KAFKA_BOOTSTRAP_SERVERS": "k:1", "ROOMEVENTS_WORKERS": "2"}
    with pytest.raises(settings_module.SettingsError, match="needs a fixed ROOMEVENTS_METRICS_PORT"):
        settings_module.load(materializer | {"ROOMEVENTS_METRICS_PORT": "0"}, role="materializer")
    assert settings_module.load(materializer | {"ROOMEVENTS_PORT": "0"}, role="materializer").workers == 2
    # dev and the archive run one process whatever ROOMEVENTS_WORKERS says.
    assert settings_module.load({"ROOMEVENTS_WORKERS": "2", "ROOMEVENTS_PORT": "0"}, role="dev").workers == 1
    archive = materializer | {"ROOMEVENTS_DATABASE_URL": "postgresql://u:p@h/db", "ROOMEVENTS_METRICS_PORT": "0"}
    assert settings_module.load(archive, role="archive").workers == 1


async def test_materializer_and_topics_run_without_twilio_credentials(settings):
    env = without_twilio(service_env(settings))
    topics = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "topics", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(topics.communicate(), 60)
    assert topics.returncode == 0, err.decode()

    metrics_port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        "materializer",
        env=env | {"ROOMEVENTS_METRICS_PORT": str(metrics_port)},
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, f"http://127.0.0.1:{metrics_port}", timeout=40)  # partitions assigned
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, err.decode()


async def test_ingress_without_a_token_says_so(settings):
    env = service_env(settings)
    del env["TWILIO_AUTH_TOKEN"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "ingress", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert err.decode().strip() == "roomevents: configuration error: TWILIO_AUTH_TOKEN is required"


# ---------------------------------------------------------------- a busy port


@pytest.mark.parametrize(
    "role, variable",
    [("ingress", "ROOMEVENTS_PORT"), ("dev", "ROOMEVENTS_PORT"), ("materializer", "ROOMEVENTS_METRICS_PORT")],
)
def test_a_busy_port_is_one_line_and_exit_2(role, variable, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Nothing listens at the broker address: the port check comes before any Kafka client or broker.
        env = os.environ | {
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
            "TWILIO_AUTH_TOKEN": "t",
            "ROOMEVENTS_HOST": "127.0.0.1",
            "ROOMEVENTS_PUBLIC_URL": "https://rooms.example.com",
            variable: str(port),
            "ROOMEVENTS_DEV_DATA": str(tmp_path / "dev-data"),
            "PYTHONWARNINGS": "default",
        }
        started = time.monotonic()
        import subprocess

        done = subprocess.run(
            [sys.executable, "-m", "service.cli", role], env=env, capture_output=True, text=True, timeout=30
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("roomevents: port ") and f"{variable}={port}" in lines[0] and "in use" in lines[0]
    assert done.stdout == "" and elapsed < 10
    assert not (tmp_path / "dev-data").exists()  # dev started no broker


# ---------------------------------------------------------------- README settings table


def readme_settings_rows() -> list[tuple[str, str, str, str]]:
    text = README.read_text()
    section = text[text.index("## Settings") :]
    section = section[: section.index("\n## ", 4)]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows.append((cells[0].strip("`"), cells[1], cells[2], cells[3]))
    return rows


def test_readme_settings_table_is_the_settings_table():
    expected = [(v.name, ", ".join(v.roles), v.default, v.meaning) for v in settings_module.VARIABLES]
    assert readme_settings_rows() == expected


async def test_an_ingress_that_cannot_bind_closes_its_kafka_clients(settings):
    """The race the CLI's check cannot close (the port taken after it looked): start() fails with
    the OSError and leaves no producer or consumer open (no "unclosed" warnings, no hang)."""
    from service.metrics import Metrics
    from service.runtime import IngressServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = IngressServer(settings.with_overrides(port=taken.getsockname()[1]), Metrics())
        with pytest.raises(OSError):
            await server.start()
    assert not server.publisher.started
    assert server.publisher.producer._closed  # noqa: SLF001 - aiokafka's own flag
    assert server.follower.consumer._closed  # noqa: SLF001
