"""Issue 20, bad text: a peer's string never reaches a terminal, a log or another viewer's
dialog with C0/C1 controls or bidi overrides in it; each is shown escaped instead."""

from __future__ import annotations

import asyncio
import json
import logging
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from rdesk.client.connection import connect
from rdesk.host.security.audit import AuditLog
from rdesk.host.security.text import shown
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb

HostFactory = Callable[..., RunningHost]

#: CSI (C1), OSC ... ST, NEL, a right-to-left override and an isolate: what a certificate's
#: subject may still carry; the protocol's string check now refuses all of them on the wire
#: (tests/protocol/test_string_rule.py), so :func:`shown` is the defence in depth.
EVIL = "mallory\u009b31m\u009d0;pwned\u009c\u0085\u202egnp.exe\u2066x\u2069"
#: What a viewer's name may still carry through the wire's string check and :func:`shown`
#: escapes: bidi marks, a line and a paragraph separator, zero-width characters.
WIRE_EVIL = "mallory\u200fgnp.exe\u200e\u061c\u2028x\u2029\u200b\ufeff"


def _unsafe(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]


def test_shown_escapes_controls_and_bidi_and_keeps_the_rest() -> None:
    assert shown("Zoë 東京 🙂") == "Zoë 東京 🙂"
    assert shown("a\u202eb") == "a\\u202eb"
    assert shown("\x1b[2J\u009b") == "\\x1b[2J\\x9b"
    assert _unsafe(shown(EVIL)) == [] and _unsafe(shown(WIRE_EVIL)) == []
    assert shown("x" * 500, limit=10) == "x" * 9 + "…"  # the limit holds the ellipsis
    assert len(shown("\u202e" * 64, limit=64)) <= 64


async def test_a_hostile_viewer_name_is_escaped_everywhere_it_is_shown(
    xvfb: Xvfb, host_factory: HostFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    host = host_factory(xvfb.display)
    said: list[str] = []
    on_event = host.server._on_event

    async def install() -> None:
        host.server.say = said.append
        host.server._on_event = audit

    host.call(install())
    caplog.set_level(logging.INFO)
    holder = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint,
                           name="owner")
    evil = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint,
                         name=WIRE_EVIL)
    try:
        await holder.wait_for(lambda: holder.holder == holder.viewer_id, 10)
        await evil.request_control()  # the holder is asked, with the name in the question
        await holder.wait_for(lambda: bool(holder.control_requests), 10)
        asked = next(iter(holder.control_requests.values())).name
    finally:
        await evil.close()
        await holder.close()
        # The disconnect lines (the ones naming the viewer) are written as the host forgets
        # each viewer: wait for that before the audit log is taken away.
        host.call(_until_no_viewers(host))
        host.server._on_event = on_event
        audit.close()
    joined = [line for line in said if "joined" in line and "mallory" in line]
    assert joined and all(_unsafe(line) == [] for line in said)
    assert shown(WIRE_EVIL) in joined[0]
    assert _unsafe(asked) == [] and asked.startswith("mallory")
    assert all(_unsafe(record.getMessage()) == [] for record in caplog.records)
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    names = [json.loads(line).get("name", "") for line in lines]
    assert any("mallory" in n for n in names) and all(_unsafe(n) == [] for n in names)


async def _until_no_viewers(host: RunningHost) -> None:
    for _ in range(200):
        if not host.server.viewers:
            return
        await asyncio.sleep(0.05)
