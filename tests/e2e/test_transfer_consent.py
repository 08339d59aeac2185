"""``--consent ask`` extends to file transfers: each put and get asks the host's user.

A real host on Xvfb with ``--consent ask``, its console reading a real pipe as the host's
terminal, a real viewer over real TLS, real files: accepted, refused, and unanswered (the
consent timeout) transfers, and the connection serving on while a question waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from rdesk.client.connection import connect
from rdesk.client.transfer import TransferError, Transfers
from rdesk.host.security.invites import InviteBook
from rdesk.host.serve.console import HostConsole
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb


async def _line(lines: list[str], pattern: str, after: int = 0) -> tuple[int, re.Match[str]]:
    """The first console line from ``after`` on that matches ``pattern`` (waits up to 30 s)."""
    for _ in range(300):
        for index in range(after, len(lines)):
            found = re.search(pattern, lines[index])
            if found:
                return index + 1, found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no console line matches {pattern!r}: {lines}")


async def test_each_transfer_asks_the_hosts_user_and_a_refusal_stores_nothing(
        xvfb: Xvfb, host_factory: Callable[..., RunningHost], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    inbox = tmp_path / "inbox"
    host = host_factory(xvfb.display, transfer_dir=inbox, consent="ask", consent_timeout=4.0)
    lines: list[str] = []
    console = HostConsole(host.server, InviteBook(), lines.append)
    read, write = os.pipe()
    terminal = os.fdopen(write, "w", buffering=1)

    async def install() -> None:
        console.start(os.fdopen(read))
        host.server.consent = console

    host.call(install())
    source = tmp_path / "a.txt"
    source.write_bytes(b"abc")
    try:
        login = asyncio.ensure_future(connect(host.url, PASSWORD, known_hosts=None,
                                              pinned=host.fingerprint, name="tester"))
        seen, found = await _line(lines, r"viewer #(\d+) 'tester' .* wants to connect")
        terminal.write(f"accept {found[1]}\n")
        conn = await asyncio.wait_for(login, 30)
        try:
            transfers = Transfers(conn)
            put = asyncio.ensure_future(transfers.put(source))
            seen, found = await _line(lines, r"#(\d+) 'tester' .* wants to upload 'a.txt' "
                                             r"\(3 bytes\) \[control\]: `accept \1`", seen)
            await conn.ping()  # the question holds the transfer, not the connection
            assert not put.done() and not inbox.exists()  # nothing opened before the answer
            terminal.write(f"accept {found[1]}\n")
            done = await asyncio.wait_for(put, 30)
            assert done.ok and (inbox / "a.txt").read_bytes() == b"abc"

            put = asyncio.ensure_future(transfers.put(source, "b.txt"))
            seen, found = await _line(lines, r"#(\d+) .* wants to upload 'b.txt'", seen)
            terminal.write(f"reject {found[1]}\n")
            with pytest.raises(TransferError, match="the host's user refused the upload"):
                await asyncio.wait_for(put, 30)
            assert sorted(os.listdir(inbox)) == ["a.txt"]  # nothing of b.txt, not even partial

            # Nobody answers: refused once the consent timeout ran out, nothing written.
            get = asyncio.ensure_future(transfers.get("a.txt", tmp_path / "back.txt"))
            seen, _ = await _line(lines, r"wants to download 'a.txt' \(3 bytes\)", seen)
            with pytest.raises(TransferError, match="did not answer in time"):
                await asyncio.wait_for(get, 30)
            assert not (tmp_path / "back.txt").exists()
            await conn.ping()  # and the viewer is still served
        finally:
            await conn.close()
    finally:
        terminal.close()
    # Audited as logins' consent is, with what was asked.
    decisions = [r.getMessage() for r in caplog.records
                 if r.getMessage().startswith("consent ") and "reason=" in r.getMessage()]
    assert len(decisions) == 3, decisions
    for decision, (answer, what) in zip(decisions, [("admitted", "upload a.txt"),
                                                    ("refused", "upload b.txt"),
                                                    ("timed", "download a.txt")], strict=True):
        assert f"decision={answer}" in decision and what in decision, decision
    refused = [r.getMessage() for r in caplog.records
               if r.getMessage().startswith("transfer ") and "refused" in r.getMessage()]
    assert len(refused) == 2, refused
