"""The splice port against peers that do not play: slow ones (slowloris), many silent ones, and
forged, reused or cross-end tickets — each closed with its one line while the relay goes on
serving real viewers, and nothing left behind (no pending task, no ticket, no descriptor).

Real parts: a real relay on 127.0.0.1, a real host link with its TLS server on the raw socket,
real TCP sockets from other 127.0.0.0/8 addresses (other sources for the per-source limits).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from pathlib import Path

from rdesk.protocol.rawlane import PREAMBLE_BYTES, REFUSED, preamble
from tests.relay.harness import Relay, host_identity, id_of, linked, make_link, running_relay
from tests.relay.rawpeers import (
    RawEchoHost,
    echo_raw_from,
    open_fds,
    raw_answer,
    raw_quiet,
)


async def _open(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Everything the relay sends until it closes (bounded: a hang is a failure)."""
    try:
        return await asyncio.wait_for(reader.read(), 15)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _dribble(writer: asyncio.StreamWriter, data: bytes, pause: float) -> None:
    """Send ``data`` a byte at a time (a slowloris); stops quietly once the relay closes."""
    with contextlib.suppress(OSError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(pause)


async def _until(what: str, condition: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


async def test_slow_and_silent_peers_are_timed_out_while_others_are_served(
        tmp_path: Path) -> None:
    host = RawEchoHost(tmp_path / "h")
    fds = open_fds()
    async with running_relay(tmp_path / "relay", preamble_timeout=1.5) as relay:
        raw = relay.server.raw
        assert raw is not None
        port = raw.port.port
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_raw=host)):
            hid = id_of(tmp_path / "h")
            # Three silent sockets, and three that dribble a valid-looking preamble a byte
            # every 0.1 s: each byte comes in time, the whole preamble would not.
            silent = [await _open(port, "127.0.0.3") for _ in range(3)]
            slow = [await _open(port, "127.0.0.4") for _ in range(3)]
            drips = [asyncio.ensure_future(_dribble(w, preamble(b"\x07" * 32), 0.1))
                     for _, w in slow]
            await _until("six sockets owing their preamble", lambda: len(raw.port.pending) >= 6)
            # Meanwhile a real viewer from elsewhere is spliced to the host and echoed.
            await echo_raw_from(relay, hid, "127.0.0.2")
            answers = await asyncio.gather(*(_answer(r, w) for r, w in silent + slow))
            assert answers == [REFUSED + b"no preamble in time\n"] * 6
            await asyncio.gather(*drips)
            await raw_quiet(relay)
            assert host.served == 1
        refused = [e for k, e in relay.events if k == "raw_refused"]
        assert {e["source"] for e in refused} == {"127.0.0.3", "127.0.0.4"}
    assert open_fds() <= fds + 2


async def test_sockets_beyond_the_pending_cap_are_refused_at_once(tmp_path: Path) -> None:
    fds = open_fds()
    async with running_relay(tmp_path / "relay", preamble_timeout=30,
                             max_raw_pending=4) as relay:
        raw = relay.server.raw
        assert raw is not None
        held = [await _open(raw.port.port, "127.0.0.3") for _ in range(4)]
        await _until("four sockets owing their preamble", lambda: len(raw.port.pending) == 4)
        # The fifth is told at once (not after the 30 s timeout), and closed.
        assert await _answer(*await _open(raw.port.port, "127.0.0.5")) == (
            REFUSED + b"relay is busy: too many sockets without a ticket\n")
        for _, writer in held:  # gone before their preamble: nothing kept of them
            writer.close()
        await _until("the held sockets dropped", lambda: not raw.port.pending)
        await raw_quiet(relay)
    assert open_fds() <= fds + 2


async def _ticket_refused(relay: Relay, ticket: bytes) -> bytes:
    raw = relay.server.raw
    assert raw is not None
    reader, writer = await _open(raw.port.port, "127.0.0.6")
    writer.write(preamble(ticket))
    return await _answer(reader, writer)


async def test_forged_reused_and_stale_tickets_name_nothing(tmp_path: Path) -> None:
    host = RawEchoHost(tmp_path / "h")
    fds = open_fds()
    used = REFUSED + b"unknown, expired or used ticket\n"
    async with running_relay(tmp_path / "relay", ticket_lifetime=1.0) as relay, \
            linked(make_link(relay, host_identity(tmp_path / "h"), on_raw=host)):
        hid = id_of(tmp_path / "h")
        ws, answer = await raw_answer(relay, hid)
        ticket = base64.b64decode(answer["ticket"])
        # A forgery one bit away from a live ticket names nothing, and spends nothing: the
        # live ticket is refused afterwards only because it lapses, not because of the probe.
        assert await _ticket_refused(relay, bytes([ticket[0] ^ 1]) + ticket[1:]) == used
        reason = await asyncio.wait_for(ws.recv(), 10)  # the viewer never dialled
        assert "the viewer did not reach the splice port in time" in str(reason)
        assert await _ticket_refused(relay, ticket) == used  # lapsed with its session
        await ws.close()
        # Garbage of exactly a preamble's size, and bytes after a good-looking one.
        assert await _ticket_refused(relay, b"\xff" * 32) == used
        assert (await _answer(*await _raw_send(relay, b"\x16\x03\x01" + b"\0" * (
            PREAMBLE_BYTES - 3)))) == REFUSED + b"not a raw lane preamble\n"
        await raw_quiet(relay)
    assert open_fds() <= fds + 2


async def _raw_send(relay: Relay, data: bytes
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    raw = relay.server.raw
    assert raw is not None
    reader, writer = await _open(raw.port.port, "127.0.0.7")
    writer.write(data)
    return reader, writer


def test_a_source_address_is_usable_here() -> None:
    """The tests above take 127.0.0.2-7 as other sources: Linux routes all of 127/8 to lo."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.7", 0))
    finally:
        sock.close()
