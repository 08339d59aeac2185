"""Issue 6 end to end: several viewers, roles enforced on the host, control hand-off, consent,
fan-out with shared encodes, and a slow viewer that never slows a fast one."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from rdesk.client.connection import AuthenticationFailed, ConnectError, Connection, connect
from rdesk.client.tls import client_ssl_context
from rdesk.host.credentials import HostCredentials
from rdesk.host.security.invites import InviteBook
from rdesk.host.security.passwords import PasswordStore
from rdesk.host.serve.console import HostConsole
from rdesk.protocol.messages import PROTOCOL_VERSION
from rdesk.protocol.presence import LOCAL_USER, NOBODY
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Painter, Recorder, Xvfb, assert_images_equal, grab_root

VIEW_PASSWORD = "just watching"


def _credentials() -> HostCredentials:
    return HostCredentials(
        PasswordStore.from_password(PASSWORD), PasswordStore.from_password(VIEW_PASSWORD)
    )


async def _viewer(host: RunningHost, password: str = PASSWORD, name: str = "v") -> Connection:
    return await connect(host.url, password, known_hosts=None, pinned=host.fingerprint, name=name)


def _injector(display: str):  # type: ignore[no-untyped-def]
    from rdesk.host.input.inject import PynputInjector

    return PynputInjector(display)


async def _pixel(conn: Connection, xy: tuple[int, int], rgb: tuple[int, int, int],
                 timeout: float = 15) -> None:
    await conn.wait_for(lambda: conn.framebuffer.image.getpixel(xy) == rgb, timeout)


# --- fan-out -----------------------------------------------------------------------------------


async def test_viewers_at_one_quality_share_each_encode(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost]
) -> None:
    host = host_factory(xvfb.display)
    with Painter(xvfb.display, seed=5) as painter:
        viewers = [await _viewer(host, name=f"v{i}") for i in range(5)]
        try:
            for v in viewers:
                await v.wait_exact(30)
            cache, source = host.server.cache, host.server.source
            encodes, frames = cache.encodes, source.frame_id
            asks = cache.hits + cache.misses
            await asyncio.to_thread(painter.rect, 200, 130, 30, 20, "00ff00")
            for v in viewers:
                await _pixel(v, (210, 140), (0, 255, 0))
                await v.wait_exact(15)
            new_encodes, new_frames = cache.encodes - encodes, source.frame_id - frames
            new_asks = cache.hits + cache.misses - asks
            # One tile changed. Every viewer asked for it (at least once), but however many
            # viewers there are, each frame's tile is encoded once per codec: a lossy first
            # pass and at most one lossless refresh.
            assert new_asks >= len(viewers)
            assert 1 <= new_encodes <= 2 * new_frames, (new_encodes, new_frames, new_asks)
            for v in viewers:
                assert_images_equal(v.framebuffer.image, grab_root(xvfb.display))
        finally:
            for v in viewers:
                await v.close()


async def test_stalled_viewer_never_slows_a_fast_one(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost]
) -> None:
    host = host_factory(xvfb.display)
    with Painter(xvfb.display, seed=2) as painter:
        fast, slow = await _viewer(host, name="fast"), await _viewer(host, name="slow")
        try:
            await fast.wait_exact(30)
            await slow.wait_exact(30)
            slow.ws.transport.pause_reading()  # stops reading: no acks, TCP fills up
            slow_link = host.server.viewers[slow.viewer_id].link
            colours = [(i * 20 % 256, 255 - i * 20, (i * 70) % 256) for i in range(1, 13)]
            for rgb in colours:
                await asyncio.to_thread(painter.rect, 300, 200, 40, 40, bytes(rgb).hex())
                # The fast viewer sees every one of these distinct changes.
                await _pixel(fast, (310, 210), rgb)
                # The slow one holds at most its window of updates in flight, never a backlog.
                assert slow_link.session.flow.count <= slow_link.session.flow.window
            sent_to_slow = slow_link.updates_sent
            assert sent_to_slow < fast.stats.updates
            slow.ws.transport.resume_reading()
            await _pixel(slow, (310, 210), colours[-1])
            await slow.wait_exact(20)
            assert_images_equal(slow.framebuffer.image, grab_root(xvfb.display))
            # Catching up took the current pixels, not the 12 intermediate frames.
            assert slow_link.updates_sent - sent_to_slow <= slow_link.session.flow.window + 3
        finally:
            await fast.close()
            await slow.close()


# --- roles and control -------------------------------------------------------------------------


async def test_control_handoff_is_enforced_on_the_host(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost]
) -> None:
    host = host_factory(xvfb.display, credentials=_credentials(), injector=_injector)
    with Recorder(xvfb.display) as rec:
        a = await _viewer(host, name="alice")
        b = await _viewer(host, VIEW_PASSWORD, name="bob")
        try:
            assert a.role == "control" and b.role == "view"
            await a.wait_for(lambda: a.holder == a.viewer_id and b.viewer_id in a.peers, 10)
            await b.wait_for(lambda: b.holder == a.viewer_id and a.viewer_id in b.peers, 10)

            # View-only: dropped on the host, and the host says so.
            await b.key(ord("q"), True)
            await b.key(ord("q"), False)
            refused = await b.sync()
            assert not refused.ok and "view-only" in refused.reason

            # Request → the holder is asked → grant → input works.
            await b.request_control()
            await a.wait_for(lambda: b.viewer_id in a.control_requests, 10)
            await a.answer_control(b.viewer_id, True)
            await b.wait_for(lambda: b.holder == b.viewer_id, 10)
            await a.wait_for(lambda: a.holder != a.viewer_id, 10)
            await b.key(ord("x"), True)
            await b.key(ord("x"), False)
            assert (await b.sync()).ok
            await asyncio.to_thread(rec.wait_for_text, "x", 10)

            # The former holder is now refused.
            await a.key(ord("y"), True)
            await a.key(ord("y"), False)
            assert not (await a.sync()).ok

            # The host's local user takes control back: everyone's input is dropped.
            host.call(_take_local(host))
            await b.wait_for(lambda: b.holder == LOCAL_USER, 10)
            await b.key(ord("z"), True)
            await b.key(ord("z"), False)
            answer = await b.sync()
            assert not answer.ok and "local user" in answer.reason
            await asyncio.sleep(0.3)
            assert rec.typed_text() == "x"  # only the granted input ever arrived
        finally:
            await a.close()
            await b.close()


async def _take_local(host: RunningHost) -> None:
    host.server.deliver(host.server.board.take_local())


async def test_refused_request_and_departure(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost]
) -> None:
    host = host_factory(xvfb.display, credentials=_credentials())
    a = await _viewer(host, name="alice")
    b = await _viewer(host, VIEW_PASSWORD, name="bob")
    try:
        await a.wait_for(lambda: a.holder == a.viewer_id, 10)
        await b.request_control()
        await a.wait_for(lambda: b.viewer_id in a.control_requests, 10)
        await a.answer_control(b.viewer_id, False)
        await b.wait_for(lambda: any("refused" in n for n in b.notices), 10)
        assert b.holder == a.viewer_id
        # A viewer that does not hold control cannot grant itself anything.
        await b.answer_control(b.viewer_id, True)
        await b.sync()
        assert b.holder == a.viewer_id
        await a.close()
        # The holder left: control is free, and the remaining viewer is told.
        await b.wait_for(lambda: b.holder == NOBODY and a.viewer_id not in b.peers, 10)
    finally:
        await b.close()


async def test_shared_control_lets_every_controller_type(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost]
) -> None:
    host = host_factory(xvfb.display, injector=_injector, shared_control=True)
    a, b = await _viewer(host, name="a"), await _viewer(host, name="b")
    try:
        for v in (a, b):
            await v.key(ord("k"), True)
            await v.key(ord("k"), False)
            assert (await v.sync()).ok
    finally:
        await a.close()
        await b.close()


# --- admission ----------------------------------------------------------------------------------


async def _first_messages_after_auth(host: RunningHost) -> list[str | bytes]:
    """Authenticate with a raw websocket and return everything the host sends until it closes."""
    ws = await ws_connect(host.url + "/rdesk", ssl=client_ssl_context(), max_size=2**24)
    hello = json.loads(await ws.recv())
    await ws.send(json.dumps({"t": "auth", "version": PROTOCOL_VERSION, "nonce": hello["nonce"],
                              "method": "password", "secret": PASSWORD, "name": "raw"}))
    received: list[str | bytes] = []
    try:
        async for message in ws:
            received.append(message)
    except Exception:
        pass
    return received


class _Decide:
    """A consent answer given by the test instead of a person."""

    def __init__(self, answer: bool | None) -> None:
        self.answer = answer
        self.asked: list[tuple[int, str, str, str]] = []

    async def __call__(self, viewer_id: int, name: str, role: str, source: str) -> bool:
        self.asked.append((viewer_id, name, role, source))
        if self.answer is None:
            await asyncio.Event().wait()  # nobody answers
        return bool(self.answer)


@pytest.mark.parametrize(("answer", "reason"), [(False, "refused"), (None, "in time")])
async def test_rejected_or_unanswered_viewers_never_see_a_pixel(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost], answer: bool | None, reason: str
) -> None:
    host = host_factory(xvfb.display, consent="ask", consent_timeout=1.0)
    decide = _Decide(answer)
    host.server.consent = decide
    received = await _first_messages_after_auth(host)
    assert decide.asked and decide.asked[0][1] == "raw"
    assert all(isinstance(m, str) for m in received)  # no binary update, ever
    assert [json.loads(m)["t"] for m in received] == ["notice", "close"]
    assert reason in json.loads(received[-1])["reason"]
    with pytest.raises(ConnectError, match=reason):
        await _viewer(host)


async def test_accepted_viewer_gets_in(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost]
) -> None:
    host = host_factory(xvfb.display, consent="ask")
    host.server.consent = _Decide(True)
    v = await _viewer(host)
    await v.wait_exact(20)
    await v.close()


async def test_max_viewers_refuses_with_a_reason(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost]
) -> None:
    host = host_factory(xvfb.display, max_viewers=1)
    first = await _viewer(host)
    try:
        with pytest.raises(ConnectError, match="limit of 1 viewers"):
            await _viewer(host)
    finally:
        await first.close()


async def test_invite_codes_grant_their_role_once(
    xvfb: Xvfb, host_factory: Callable[..., RunningHost]
) -> None:
    invites = InviteBook()
    host = host_factory(
        xvfb.display,
        credentials=HostCredentials(PasswordStore.from_password(PASSWORD), invites=invites),
    )
    lines: list[str] = []
    console = HostConsole(host.server, invites, lines.append)
    host.call(_run(console.handle, "invite view 5"))
    code = lines[-1].split()[-1]
    assert code.startswith("inv-")
    v = await _viewer(host, code)
    assert v.role == "view"
    await v.close()
    with pytest.raises(AuthenticationFailed):
        await _viewer(host, code)  # one use only
    expired = invites.create("control", 0.5, time.monotonic())
    await asyncio.sleep(0.6)
    with pytest.raises(AuthenticationFailed):
        await _viewer(host, expired)


async def _run(func: Callable[[str], None], arg: str) -> None:
    func(arg)


def test_console_commands_report_clearly(tmp_path: Path) -> None:
    class _Server:
        from rdesk.host.serve.control import ControlBoard

        board = ControlBoard()
        delivered: list[object] = []

        def deliver(self, items: list[object]) -> None:
            self.delivered.extend(items)

        def kick(self, viewer_id: int) -> bool:
            return False

    lines: list[str] = []
    console = HostConsole(_Server(), InviteBook(), lines.append)
    for command in ("help", "viewers", "grant 3", "kick 9", "invite admin", "bogus", "take"):
        console.handle(command)
    assert lines[0].startswith("commands:")
    assert "no viewers" in lines[1]
    assert "has not asked" in lines[2]
    assert "no viewer #9" in lines[3]
    assert "role must be" in lines[4]
    assert "unknown command" in lines[5]
