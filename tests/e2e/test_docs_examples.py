"""The docs are true: every shell example marked runnable runs against a real host.

A fenced block that opens with ```` ```sh runnable ```` in ``README.md`` or ``docs/*.md`` is
run line by line (bash, each line must exit 0) against a real ``rdesk host`` process sharing
an Xvfb on which a real X client records the input it receives. The examples take the host
from ``$H`` and the login options from ``$OPTS`` (``--fingerprint ... --password-file
~/.rdesk-pass``: the ``~`` inside the quotes is expanded by rdesk, not the shell), as the docs
say; ``$HOME`` is a fresh folder. The README's sample banner is compared with the one the host
really prints.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.xserver import Recorder, Xvfb

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```(\S+)([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
W, H = 800, 600


def blocks(kind: str, marker: str) -> list[tuple[str, str]]:
    """``(where, text)`` of every fenced block of language ``kind`` marked ``marker``."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in _BLOCK.finditer(text):
            if match[1] == kind and marker in match[2].split():
                line = text[: match.start()].count("\n") + 1
                found.append((f"{doc.relative_to(REPO)}:{line}", match[3]))
    return found


def commands(block: str) -> list[str]:
    """The block's command lines (blank lines and whole-line comments left out)."""
    lines = block.splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


@dataclass
class DocsHost:
    proc: subprocess.Popen[str]
    banner: list[str]
    url: str
    env: dict[str, str]
    home: Path
    work: Path
    recorder: Recorder


def _read_banner(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.lstrip().startswith("e.g."):
            return lines
    raise AssertionError(f"no banner: {lines} {proc.stderr.read() if proc.stderr else ''}")


@pytest.fixture
def docs_host(xvfb_factory: Callable[..., Xvfb], tmp_path: Path) -> Iterator[DocsHost]:
    xvfb = xvfb_factory(W, H)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    bindir = Path(sys.executable).parent
    env = {**os.environ, "HOME": str(home), "PATH": f"{bindir}:{os.environ['PATH']}"}
    env.pop("RDESK_PASSWORD", None)
    # No password file: the host makes a one-time password and prints it, as in the README.
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path / "host-config"), "host",
         "--display", xvfb.display, "--bind", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=env,
    )
    try:
        banner = _read_banner(proc)
        fields = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
                  for line in banner[1:] if ":" in line}
        url = fields["connect"].split()[0]
        password = fields["one-time password"].split()[0]
        (home / ".rdesk-pass").write_text(password + "\n")
        fingerprint = fields["fingerprint"]
        env.update(H=url, OPTS=f"--fingerprint {fingerprint} --password-file ~/.rdesk-pass")
        with Recorder(xvfb.display) as recorder:
            yield DocsHost(proc, banner, url, env, home, work, recorder)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_the_docs_have_runnable_examples() -> None:
    """The marker is in use where the docs show commands a real host can run."""
    where = {spot.split(":")[0] for spot, _ in blocks("sh", "runnable")}
    assert {"README.md", "docs/input.md", "docs/config.md"} <= where, where
    for _, block in blocks("sh", "runnable"):
        assert commands(block)


def test_every_runnable_example_exits_0(docs_host: DocsHost) -> None:
    ran = []
    for spot, block in blocks("sh", "runnable"):
        for line in commands(block):
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", line], cwd=docs_host.work,
                env=docs_host.env, capture_output=True, text=True, timeout=120,
                stdin=subprocess.DEVNULL,
            )
            assert result.returncode == 0, (spot, line, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr, (spot, line, result.stderr)
            ran.append(line)
    # The effects, where cheap: the X client saw keys and clicks, the snapshots are the screen.
    kinds = {event["type"] for event in docs_host.recorder.events(timeout=2)}
    assert {"key_press", "button_press"} <= kinds, kinds
    for name in ("shot.png", "do-shot.png"):
        with Image.open(docs_host.work / name) as image:
            assert image.size == (W, H)
    assert (docs_host.home / "certs" / "alice.crt").exists()  # `--out ~/certs` was expanded
    assert (docs_host.home / "other-host").is_dir()
    assert any(line.startswith("rdesk watch") for line in ran)


def test_the_readme_banner_is_what_the_host_prints(docs_host: DocsHost) -> None:
    [(_, sample)] = blocks("text", "banner")

    def labels(lines: list[str]) -> list[str]:
        return [line.split(":", 1)[0].strip() for line in lines]

    printed = docs_host.banner
    assert labels(sample.splitlines()) == labels(printed), (sample, printed)
    sample_lines, real = sample.splitlines(), dict(zip(labels(printed), printed, strict=True))
    # Each line has the shape the host prints (values differ: name, port, key, password).
    shapes = {
        "capture": r"  capture:     (shm, changes from X DAMAGE|mss.*)",
        "connect": r"  connect:     wss://\S+:\d+    \(browser: https://\S+:\d+/\)",
        "fingerprint": r"  fingerprint: SHA256:[A-Za-z0-9+/]{43}",
        "browser": r"  browser:     SHA-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}",
        "one-time password": r"  one-time password: [a-z0-9]{4}(-[a-z0-9]{4}){3}   \(valid for "
                             r"this run; set a permanent one with `rdesk passwd`\)",
    }
    for label, shape in shapes.items():
        assert re.fullmatch(shape, real[label]), (label, real[label])
        [line] = [s for s in sample_lines if s.split(":", 1)[0].strip() == label]
        assert re.fullmatch(shape, line), (label, line)
    assert sample_lines[-1] == printed[-1]
