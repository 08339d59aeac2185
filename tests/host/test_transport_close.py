"""Closing a viewer's websocket is bounded, whatever the viewer does (real TLS on 127.0.0.1).

A viewer that stops reading (frozen — here a real viewer process, SIGSTOPped — or behind a
link that no longer drains) leaves the host's write buffer full; the websocket's close frame
is written with flow control, and before :data:`~rdesk.host.serve.transport.CLOSE_WAIT` the
close waited for that write forever: the viewer's handler never ended, and neither did the
host's stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.protocol import State

from rdesk.common.tasks import awaiting
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context
from rdesk.host.serve import transport as transport_module
from rdesk.host.serve.transport import WebsocketTransport, wait_handlers

CHUNK = bytes(1 << 20)  # zeros: sent uncompressed, as the host sends (compression=None)

#: A viewer that connects, says so, then does nothing (it is frozen with SIGSTOP).
VIEWER = """
import ssl, sys, time
from websockets.sync.client import connect
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE  # the host's self-signed certificate: not the point here
with connect(sys.argv[1], ssl=context, max_size=None, close_timeout=1):
    print("ready", flush=True)
    time.sleep(120)
"""


async def _held_by_flow_control(transport: WebsocketTransport) -> asyncio.Future[None]:
    """Send until a send no longer completes (the peer reads nothing); that send, pending."""
    for _ in range(256):
        send = asyncio.ensure_future(transport.send(CHUNK))
        await asyncio.wait({send}, timeout=1)
        if not send.done():
            assert transport.ws.paused  # websockets' own flow control holds it
            return send
        send.result()
    raise AssertionError("256 MiB went to a peer that reads nothing")


async def test_close_cuts_a_viewer_that_stopped_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(transport_module, "CLOSE_WAIT", 0.5)
    cert, key = ensure_host_certificate(tmp_path)
    frozen = asyncio.Event()
    outcome: asyncio.Future[tuple[State, bool]] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        transport = WebsocketTransport(ws)
        await frozen.wait()
        pending = await _held_by_flow_control(transport)
        # Without the bound, this close waited for the write buffer to drain: forever.
        await asyncio.wait_for(transport.close(1001, "host is shutting down"), 30)
        await asyncio.wait({pending}, timeout=5)
        outcome.set_result((ws.state, pending.done()))

    caplog.set_level(logging.WARNING, logger=transport_module.__name__)
    async with serve(handler, "127.0.0.1", 0, ssl=server_ssl_context(cert, key),
                     max_size=None, ping_interval=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        viewer = subprocess.Popen([sys.executable, "-c", VIEWER, f"wss://127.0.0.1:{port}/"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert viewer.stdout is not None
            assert await asyncio.to_thread(viewer.stdout.readline) == "ready\n"
            os.kill(viewer.pid, signal.SIGSTOP)  # frozen: reads nothing from now on
            frozen.set()
            state, send_ended = await asyncio.wait_for(outcome, 60)
        finally:
            viewer.kill()
            os.kill(viewer.pid, signal.SIGCONT)
            viewer.wait(10)
    assert state is State.CLOSED
    assert send_ended  # the send flow control held ended with the connection
    assert any("connection cut" in r.getMessage() for r in caplog.records), caplog.text


async def test_awaiting_names_the_chain_a_task_is_parked_in() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def inner() -> None:
        await gate

    async def outer() -> None:
        await inner()

    task = asyncio.create_task(outer(), name="stuck")
    await asyncio.sleep(0)
    try:
        line = awaiting(task)
        assert line.startswith("stuck: ")
        assert line.index("outer") < line.index("inner") < line.index("Future"), line
    finally:
        gate.set_result(None)
        await task


async def test_the_stop_cuts_idle_connections_and_abandons_stuck_handlers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What the host's stop waits for after closing its viewers: the connection handlers.
    One waits on a viewer that says nothing (cutting the connection ends it), one on
    something that never comes; before the bound, the stop waited for both forever."""
    monkeypatch.setattr(transport_module, "STOP_WAIT", 0.5)
    cert, key = ensure_host_certificate(tmp_path)
    never = asyncio.Event()
    entered: list[str] = []

    async def stuck_forever() -> None:
        await never.wait()

    async def handler(ws: ServerConnection) -> None:
        entered.append(ws.request.path if ws.request is not None else "?")
        if ws.request is not None and ws.request.path == "/stuck":
            await stuck_forever()
        else:
            await ws.recv()  # the viewer sends nothing: only a cut connection ends this

    caplog.set_level(logging.WARNING, logger=transport_module.__name__)
    server = await serve(handler, "127.0.0.1", 0, ssl=server_ssl_context(cert, key),
                         ping_interval=None, compression=None)
    port = server.sockets[0].getsockname()[1]
    viewers = [subprocess.Popen([sys.executable, "-c", VIEWER, f"wss://127.0.0.1:{port}{path}"],
                                stdout=subprocess.PIPE, text=True)
               for path in ("/idle", "/stuck")]
    try:
        for viewer in viewers:
            assert viewer.stdout is not None
            assert await asyncio.to_thread(viewer.stdout.readline) == "ready\n"
        assert sorted(entered) == ["/idle", "/stuck"]
        server.close(close_connections=False)  # as HostServer.stop, after closing its viewers
        await asyncio.wait_for(wait_handlers(server), 30)
        messages = [r.getMessage() for r in caplog.records]
        assert any("2 connection(s) still open" in m for m in messages), messages
        abandoned = [m for m in messages if "abandoned 1 connection handler" in m]
        assert abandoned and "stuck_forever" in abandoned[0], messages
    finally:
        never.set()
        for viewer in viewers:
            viewer.kill()
            viewer.wait(10)
        await server.wait_closed()
