"""README.md's quick start, run top to bottom against `roomevents dev` as a user would run it.

Every block that README.md marks `<!-- walkthrough -->` is taken from the README itself (so this test
follows whatever it says): shell blocks run command by command in one bash session (variables carry
from block to block), Python blocks run with the .venv's Python. Each `# => a … b` comment states what
the command before it prints: every part must appear in its output, in order (whitespace ignored). A
read (a `curl` that sends no data) whose result is not there yet is asked again until it is or a
deadline passes: the read view follows the materializer, so a callback's effect shows up a moment
after its 204. The README's http://127.0.0.1:8080 becomes the test's free port.

Then dev is stopped and started again on the same data folder: the rooms are still there (dev is
durable by default).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from service.kafka.broker import free_port, locate_s3rver

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = "<!-- walkthrough -->"
README_BASE = "127.0.0.1:8080"
DEV_SID = "AC00000000000000000000000000000001"
DEV_TOKEN = "dev-auth-token-not-secret"
RESULT = re.compile(r"#\s*=>\s*(.*)$")
RETRY_FOR_S = 15.0


@dataclass
class Command:
    text: str
    expect: list[str] = field(default_factory=list)

    @property
    def is_read(self) -> bool:
        """A curl that sends nothing: safe to ask again."""
        return self.text.lstrip().startswith(("curl ", "LAST=$(curl")) and not re.search(
            r"\s(-d|--data\S*|-X|--request|-F)\s", self.text
        )


@dataclass
class Block:
    language: str
    source: str
    commands: list[Command]


def walkthrough_blocks(text: str) -> list[Block]:
    blocks = []
    for match in re.finditer(re.escape(MARKER) + r"\s*\n```(\w+)\n(.*?)\n```", text, re.S):
        language, source = match.group(1), match.group(2)
        commands: list[Command] = []
        lines = source.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            result = RESULT.search(line)
            if line.lstrip().startswith("#"):
                assert result and commands, f"a comment line that states no result: {line!r}"
                commands[-1].expect.append(result.group(1))
                i += 1
                continue
            chunk = [line]
            while chunk[-1].endswith("\\") and i + 1 < len(lines):
                i += 1
                chunk.append(lines[i])
            command = Command("\n".join(chunk))
            found = RESULT.search(chunk[-1])
            if found:
                command.expect.append(found.group(1))
            commands.append(command)
            i += 1
        if language == "python":  # one program: its results are checked against its whole output
            commands = [Command(source, [e for c in commands for e in c.expect])]
        blocks.append(Block(language, source, commands))
    return blocks


def unmet(expectations: list[str], output: str) -> str | None:
    """The first stated part not found in `output` (in order, whitespace ignored), else None."""
    squeezed = re.sub(r"\s+", "", output)
    for expectation in expectations:
        position = 0
        for part in filter(None, (p.strip() for p in re.split(r"…|\.\.\.", expectation))):
            found = squeezed.find(re.sub(r"\s+", "", part), position)
            if found < 0:
                return part
            position = found + len(re.sub(r"\s+", "", part))
    return None


class Bash:
    """One bash session: commands run in order, variables kept; output (stdout and stderr) per command."""

    END = "@@walkthrough-end@@"

    def __init__(self, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def run(self, command: str, timeout: float = 30.0) -> tuple[int, str]:
        # Braces keep assignments in this shell; stdin from /dev/null so nothing eats the session's input.
        self.proc.stdin.write(f"{{\n{command}\n}} < /dev/null\nprintf '\\n{self.END} %s\\n' \"$?\"\n")
        self.proc.stdin.flush()
        out = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no end of {command!r} within {timeout}s; output so far: {''.join(out)!r}"
                ) from None
            if line.startswith(self.END):
                return int(line.split()[1]), "".join(out)
            out.append(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


class Dev:
    """`roomevents dev` as a subprocess on a free port, with the README's dev credentials."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not (k.startswith(("ROOMEVENTS_", "TWILIO_")) or k == "KAFKA_BOOTSTRAP_SERVERS")
            or k in ("ROOMEVENTS_BROKER_BIN", "ROOMEVENTS_S3RVER_BIN")
        }
        env |= {"ROOMEVENTS_PORT": str(self.port), "ROOMEVENTS_DEV_DATA": str(data_dir)}
        script = Path(sys.executable).parent / "roomevents"
        command = [str(script), "dev"] if script.exists() else [sys.executable, "-m", "service.cli", "dev"]
        self.log = open(log_path, "ab")
        self.log_path = log_path
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"dev exited with {self.proc.returncode}: {self.output()}"
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"dev not ready within {timeout}s: {self.output()}"
            time.sleep(0.1)

    def get(self, path: str):
        request = urllib.request.Request(self.base + path)
        import base64

        request.add_header("Authorization", "Basic " + base64.b64encode(f"{DEV_SID}:{DEV_TOKEN}".encode()).decode())
        with urllib.request.urlopen(request, timeout=10) as resp:
            return orjson.loads(resp.read())

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def test_the_readme_marks_the_quick_start_as_runnable():
    blocks = walkthrough_blocks(README.read_text())
    assert len(blocks) >= 5 and {b.language for b in blocks} == {"sh", "python"}
    assert all(any(c.expect for c in b.commands) for b in blocks), "every runnable block states a result"
    sdk = next(b for b in blocks if b.language == "python").source
    assert "Client(" in sdk and "client.video.base_url" in sdk and len(sdk.strip().splitlines()) <= 5
    assert any("Streams/Rooms" in b.source and "curl -sN" in b.source and "Last-Event-ID" in b.source for b in blocks)


def test_readme_walkthrough_against_dev(tmp_path):
    blocks = walkthrough_blocks(README.read_text())
    data_dir = tmp_path / "dev-data"
    dev = Dev(data_dir, tmp_path / "dev.log")
    bash = Bash(ROOT)
    try:
        dev.wait_ready()
        durable = locate_s3rver() is not None
        for block in blocks:
            for command in block.commands:
                text = command.text.replace(README_BASE, f"127.0.0.1:{dev.port}")
                deadline = time.monotonic() + RETRY_FOR_S
                while True:
                    if block.language == "python":
                        done = subprocess.run(
                            [sys.executable, "-c", text], cwd=ROOT, capture_output=True, text=True, timeout=60
                        )
                        status, output = done.returncode, done.stdout + done.stderr
                    else:
                        status, output = bash.run(text)
                    missing = unmet(command.expect, output)
                    if missing is None or not command.is_read or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)  # the read view catches up: ask again
                assert missing is None, (
                    f"README command\n{command.text}\nprinted (exit {status})\n{output}\nwithout the stated {missing!r}"
                )
                if block.language == "python" or "--max-time" not in text:
                    assert status == 0, f"README command\n{command.text}\nexited {status}:\n{output}"
        status, room = bash.run("echo $ROOM")
        room = room.strip()
        assert re.fullmatch(r"RM[0-9a-f]{32}", room)
    finally:
        bash.close()
        code = dev.stop()
    assert code == 0, dev.output()

    banner = (tmp_path / "dev.log").read_text()
    if not durable:
        assert "IN MEMORY" in banner
        assert shutil.which("node") is None, "node is here but s3rver is not: scripts/bootstrap should install it"
        return
    # Durable: a new dev on the same folder still has the rooms, as they were.
    assert "data kept in" in banner
    again = Dev(data_dir, tmp_path / "dev-again.log")
    try:
        again.wait_ready()
        doc = again.get(f"/v1/Rooms/{room}")
        assert (doc["sid"], doc["unique_name"], doc["status"]) == (room, "demo", "completed")
        assert [r["unique_name"] for r in again.get("/v1/Rooms")["rooms"]] == ["sdk-demo"]
    finally:
        assert again.stop() == 0, again.output()
