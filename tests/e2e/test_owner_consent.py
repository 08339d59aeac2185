"""Issue 18, defect 2: ``--consent ask`` refuses to start where nobody can answer.

Under systemd or ``nohup`` standard input is at end of file: the console that asks the local
user would end at once and every viewer would wait out the consent timeout and be rejected.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rdesk.client.connection import connect
from rdesk.client.errors import ConnectError
from rdesk.host.security.invites import InviteBook
from rdesk.host.serve.console import HostConsole
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb


def test_consent_ask_without_a_terminal_or_socket_refuses_at_start(tmp_path: Path) -> None:
    # Standard input is /dev/null, as under systemd or nohup, and there is no runtime
    # directory for the consent socket either: nobody could ever answer.
    host = subprocess.Popen(
        [sys.executable, "-m", "rdesk", "--config-dir", str(tmp_path), "host",
         "--consent", "ask", "--virtual", "320x240"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "no-such-dir")},
    )
    try:
        stdout, stderr = host.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        host.terminate()  # a host that started anyway: let it stop its own display
        stdout, stderr = host.communicate(timeout=30)
        raise AssertionError(f"the host started with no terminal to ask on: {stdout}") from None
    assert host.returncode != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "--consent ask needs a terminal to ask on (stdin is not one) or a runtime " \
        "directory" in lines[0]
    assert "listening" not in stdout


def test_a_console_whose_input_ended_refuses_viewers_at_once(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost]
) -> None:
    # The terminal went away after the host started: nobody can accept, so waiting out the
    # (here one hour) consent timeout would only keep the viewer hanging.
    host = host_factory(xvfb.display, consent="ask", consent_timeout=3600.0)
    lines: list[str] = []
    console = HostConsole(host.server, InviteBook(), lines.append)

    async def install() -> None:
        console.start(io.StringIO(""))
        host.server.consent = console

    host.call(install())

    async def login() -> None:
        conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
        await conn.close()

    with pytest.raises(ConnectError, match="refused"):
        asyncio.run(asyncio.wait_for(login(), 120))
    assert not host.server.viewers
    assert any("nobody can accept it" in line for line in lines), lines
