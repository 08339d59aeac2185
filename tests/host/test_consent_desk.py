"""The consent desk (rdesk/host/serve/consent.py): who waits, who answers, and refusal when
nobody can."""

from __future__ import annotations

import asyncio

from rdesk.host.security.invites import InviteBook
from rdesk.host.serve.consent import ConsentDesk
from rdesk.host.serve.console import HostConsole


async def test_the_terminal_and_the_socket_answer_the_same_requests() -> None:
    lines: list[str] = []
    desk = ConsentDesk(lines.append)
    console = HostConsole(object(), InviteBook(), lines.append, desk)
    events: list[tuple[str, int]] = []
    desk.listen(lambda kind, request: events.append((kind, request.viewer_id)))
    desk.open("terminal")
    desk.open("socket")
    first = asyncio.create_task(desk(1, "alice", "control", "10.0.0.5"))
    second = asyncio.create_task(desk(2, "bob", "view", "10.0.0.6"))
    await asyncio.sleep(0)
    assert [r.viewer_id for r in desk.pending()] == [1, 2]
    assert any("#1 'alice' from 10.0.0.5 wants to connect" in line for line in lines)
    console.handle("accept 1")  # the terminal answers the first
    assert desk.answer(2, False)  # the socket the second
    assert await first is True and await second is False
    assert not desk.answer(1, False)  # answered already: the first answer won
    console.handle("reject 1")
    assert lines[-1] == "no viewer #1 is waiting for an answer"
    assert events == [("request", 1), ("request", 2), ("resolved", 1), ("resolved", 2)]


async def test_when_the_last_answerer_goes_waiting_viewers_are_refused() -> None:
    lines: list[str] = []
    desk = ConsentDesk(lines.append)
    desk.open("terminal")
    desk.open("socket")
    waiting = asyncio.create_task(desk(1, "alice", "control", "10.0.0.5"))
    await asyncio.sleep(0)
    desk.close("terminal")  # the socket still answers
    await asyncio.sleep(0)
    assert not waiting.done()
    desk.close("socket")
    assert await waiting is False
    assert await desk(2, "bob", "view", "10.0.0.6") is False  # refused without waiting
    assert "nobody can accept it" in lines[-1]
    assert not desk.pending()
