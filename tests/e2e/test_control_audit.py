"""Issue 20, audit: every change of the control holder leaves one ``control_change`` line,
with the new and the old holder, who made the change and how (a real host, two viewers)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rdesk.client.connection import Connection, connect
from rdesk.host.credentials import HostCredentials
from rdesk.host.security.audit import AuditLog
from rdesk.host.security.passwords import PasswordStore
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb

VIEW_PASSWORD = "just watching"


async def _viewer(host: RunningHost, password: str, name: str) -> Connection:
    return await connect(host.url, password, known_hosts=None, pinned=host.fingerprint, name=name)


def _changes(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [
        {k: v for k, v in line.items() if k in ("holder", "old_holder", "by", "reason")}
        for line in lines if line.get("kind") == "control_change"
    ]


async def test_every_change_of_the_holder_is_audited(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost], tmp_path: Path
) -> None:
    control = PasswordStore.from_password(PASSWORD)
    credentials = HostCredentials(control, PasswordStore.from_password(VIEW_PASSWORD, control))
    host = host_factory(xvfb.display, credentials=credentials)
    audit = AuditLog(tmp_path / "audit.jsonl")
    on_event = host.server._on_event

    async def install() -> None:
        host.server._on_event = audit

    async def take_and_hand_back() -> None:
        host.server.deliver(host.server.board.take_local())
        host.server.deliver(host.server.board.take_local())  # already held: no second line
        host.server.deliver(host.server.board.release_local())

    host.call(install())
    a = await _viewer(host, PASSWORD, "alice")
    b = await _viewer(host, VIEW_PASSWORD, "bob")
    try:
        await a.wait_for(lambda: a.holder == a.viewer_id and b.viewer_id in a.peers, 10)
        await b.request_control()
        await a.wait_for(lambda: b.viewer_id in a.control_requests, 10)
        await a.answer_control(b.viewer_id, True)
        await b.wait_for(lambda: b.holder == b.viewer_id, 10)
        await b.release_control()
        await a.wait_for(lambda: a.holder != b.viewer_id, 10)
        await a.request_control()  # free: taken at once
        await b.wait_for(lambda: b.holder == a.viewer_id, 10)
        host.call(take_and_hand_back())
        await a.request_control()
        await b.wait_for(lambda: b.holder == a.viewer_id, 10)
        await a.sync()
    finally:
        await a.close()
        await b.wait_for(lambda: a.viewer_id not in b.peers, 10)
        await b.close()
    host.call(_wait_for_leaves(host))
    host.server._on_event = on_event
    audit.close()
    av, bv = f"viewer #{a.viewer_id}", f"viewer #{b.viewer_id}"
    assert _changes(tmp_path / "audit.jsonl") == [
        {"holder": a.viewer_id, "old_holder": "nobody", "by": av,
         "reason": "joined while control was free"},
        {"holder": b.viewer_id, "old_holder": a.viewer_id, "by": av, "reason": "request granted"},
        {"holder": "nobody", "old_holder": b.viewer_id, "by": bv, "reason": "released"},
        {"holder": a.viewer_id, "old_holder": "nobody", "by": av,
         "reason": "requested while control was free"},
        {"holder": "local user", "old_holder": a.viewer_id, "by": "local user",
         "reason": "taken back"},
        {"holder": "nobody", "old_holder": "local user", "by": "local user",
         "reason": "handed back"},
        {"holder": a.viewer_id, "old_holder": "nobody", "by": av,
         "reason": "requested while control was free"},
        {"holder": "nobody", "old_holder": a.viewer_id, "by": av, "reason": "the holder left"},
    ]


async def _wait_for_leaves(host: RunningHost) -> None:
    for _ in range(200):
        if not host.server.viewers:
            return
        await asyncio.sleep(0.05)
