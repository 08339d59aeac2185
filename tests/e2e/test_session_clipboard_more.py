"""The clipboard's options, with real parts: PRIMARY (``--clipboard-primary``) both ways
between xclip on Xvfb and a real viewer, and recordings, which keep no clipboard text unless
the host runs with ``--record-clipboard``.

The host is the one of tests/e2e/test_session_clipboard.py: a real host on its own Xvfb with
the product's clipboard hub, viewers over real TLS websockets.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rdesk.cli import main
from rdesk.client.clipboard import ClipboardRefused, get_text, set_text
from rdesk.client.connection import connect
from rdesk.host.clipboard import ClipboardHub, start_clipboard
from rdesk.recording.format import Kind, read_recording
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb

pytestmark = pytest.mark.skipif(shutil.which("xclip") is None, reason="needs xclip")


def _xclip(display: str, selection: str, text: str | None = None) -> str:
    """Read ``selection`` (``text`` None), or own it with ``text`` (xclip's child keeps it)."""
    args = ["xclip", "-selection", selection, "-o" if text is None else "-i"]
    out = subprocess.run(args, input=None if text is None else text.encode(), timeout=20,
                         env=dict(os.environ, DISPLAY=display), capture_output=text is None)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode() if text is None else ""


@pytest.fixture
def display(xvfb_factory: Callable[..., Xvfb]) -> str:
    return xvfb_factory(320, 240).display


@pytest.fixture
def hosts(host_factory: Callable[..., RunningHost]) -> Iterator[Callable[..., RunningHost]]:
    hubs: list[ClipboardHub] = []

    def make(display: str, **settings: Any) -> RunningHost:
        host = host_factory(display, **settings)

        async def attach() -> None:
            hub = start_clipboard(host.server.settings, display, host.server.event)
            hubs.append(hub)
            setattr(host.server, "clipboard", hub)  # noqa: B010 — what rdesk/host/app.py does

        host.call(attach())
        return host

    yield make
    for hub in hubs:
        hub.close()


async def _session(host: RunningHost, display: str, selection: str) -> None:
    """A viewer's text into ``selection`` on the host, then the host's text out of it."""
    async with await connect(host.url, PASSWORD, known_hosts=None,
                             pinned=host.fingerprint) as conn:
        await set_text(conn, "pasted in: hunter2 ✓", selection)
        assert await asyncio.to_thread(_xclip, display, selection) == "pasted in: hunter2 ✓"
        await asyncio.to_thread(_xclip, display, selection, "copied out: sw0rdfish")
        await conn.wait_for(lambda: conn.clipboard.texts.get(selection) == "copied out: "
                            "sw0rdfish", 30)
        assert await get_text(conn, selection) == "copied out: sw0rdfish"


async def test_primary_both_ways_only_with_the_option(display: str, hosts: Any) -> None:
    """``--clipboard-primary``: the mouse selection goes both ways, as CLIPBOARD does; without
    it the host refuses PRIMARY with the reason, and leaves it alone."""
    await _session(hosts(display, clipboard="both", clipboard_primary=True), display, "primary")

    plain = hosts(display, clipboard="both")
    await asyncio.to_thread(_xclip, display, "primary", "the owner's selection")
    async with await connect(plain.url, PASSWORD, known_hosts=None,
                             pinned=plain.fingerprint) as conn:
        with pytest.raises(ClipboardRefused, match="--clipboard-primary"):
            await set_text(conn, "not wanted", "primary")
    assert await asyncio.to_thread(_xclip, display, "primary") == "the owner's selection"


async def _recording(records: Path) -> Path:
    deadline = asyncio.get_running_loop().time() + 20
    while True:  # the host closes the recording once it saw the viewer go
        paths = list(records.glob("*.rdrec"))
        if paths and Kind.END in {r.kind for r in read_recording(paths[0]).records()}:
            return paths[0]
        assert asyncio.get_running_loop().time() < deadline, paths
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("asked", [False, True])
async def test_recordings_keep_clipboard_text_only_when_asked(
        display: str, hosts: Any, tmp_path: Path, asked: bool,
        capsys: pytest.CaptureFixture[str]) -> None:
    records = tmp_path / "rec"
    host = hosts(display, clipboard="both", record_dir=records, record_clipboard=asked)
    await _session(host, display, "clipboard")
    path = await _recording(records)
    kinds = [r.kind for r in read_recording(path).records()]
    assert Kind.UPDATE in kinds
    raw = path.read_bytes()
    assert main(["--config-dir", str(tmp_path), "play", str(path), "--export-png",
                 str(tmp_path / "png")]) == 0
    shown = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("rdesk: clipboard at ")]
    if not asked:  # neither the text nor its base64, either way
        assert Kind.CLIPBOARD not in kinds and b"clip_" not in raw
        assert b"hunter2" not in raw and b"aHVudGVyMi" not in raw and b"sw0rdfish" not in raw
        assert shown == []
        return
    assert Kind.CLIPBOARD in kinds
    # The host's text twice: pushed when xclip took the selection, then answering the get.
    assert [line.split(" ", 4)[4] for line in shown] == [
        "viewer to host, clipboard, 22 bytes: pasted in: hunter2 \\u2713",
        "host to viewer, clipboard, 21 bytes: copied out: sw0rdfish",
        "host to viewer, clipboard, 21 bytes: copied out: sw0rdfish",
    ], shown
