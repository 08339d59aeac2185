"""The raw lane with real parts: a real relay, real host links, TLS end to end over TCP.

The host is a real :class:`RelayLink` whose raw handler is a TLS server with the host's own
certificate; the viewer takes the relay's ``raw`` answer to the splice port and checks the
host's key as rdesk viewers do. Both splicers where the machine allows the kernel one.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from pathlib import Path

import pytest

from rdesk.protocol.fingerprint import key_fingerprint
from rdesk.protocol.rawlane import PREAMBLE_BYTES, REFUSED, preamble
from rdesk.tunnel.rawdial import dial_splice_port
from tests.relay.harness import (
    host_identity,
    id_of,
    linked,
    make_link,
    quiet,
    running_relay,
    viewer,
)
from tests.relay.instances import instance_pair
from tests.relay.rawpeers import (
    RawEchoHost,
    echo_raw,
    echo_raw_from,
    open_fds,
    raw_answer,
    raw_quiet,
    raw_viewer,
)


@pytest.fixture(params=["kernel", "userspace"])
def kernel(request: pytest.FixtureRequest) -> bool:
    if request.param == "kernel":
        from rdesk.relay.rawsplice import open_splicer

        splicer, why = open_splicer("auto")
        splicer.close()
        if why is not None:
            pytest.skip(f"no kernel splicer here: {why}")
    return bool(request.param == "kernel")


async def test_a_viewer_reaches_the_host_tls_end_to_end(tmp_path: Path, kernel: bool) -> None:
    host = RawEchoHost(tmp_path / "h")
    fds = open_fds()
    async with running_relay(tmp_path / "relay",
                             splicer="kernel" if kernel else "userspace") as relay:
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_raw=host)):
            hid = id_of(tmp_path / "h")
            for _ in range(3):
                reader, writer, fp = await raw_viewer(relay, hid)
                # The TLS session is the host's: its own certificate, checked against the ID.
                assert fp == key_fingerprint(host_identity(tmp_path / "h").cert_der)
                writer.write(b"x" * 100_000)
                got = await asyncio.wait_for(reader.readexactly(100_005), 20)
                assert got == b"host:" + b"x" * 100_000
                writer.close()
                await raw_quiet(relay)
            await quiet(relay, hosts=1)
            assert host.served == 3
        kinds = relay.kinds()
        assert kinds.count("raw_join") == 3 and kinds.count("raw_end") == 3
        assert [e["lane"] for k, e in relay.events if k == "rendezvous"] == ["raw"] * 3
        end = relay.last("raw_end")
        # TLS records both ways: more than the payload, and never a payload byte logged.
        assert int(str(end["viewer_bytes"])) > 100_000 and int(str(end["host_bytes"])) > 100_005
        assert relay.last("raw_join")["splicer"] == ("kernel" if kernel else "userspace")
    assert open_fds() <= fds + 2


async def test_lanes_are_asked_for_by_both_ends(tmp_path: Path) -> None:
    """A viewer that does not ask for the raw lane, or a host that cannot take it, gets the
    websocket lane as before; a relay with --no-splice gives it to everyone."""
    raw_host = RawEchoHost(tmp_path / "h")
    async with running_relay(tmp_path / "relay") as relay:
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_raw=raw_host)):
            ws, answer = await viewer(relay, id_of(tmp_path / "h"))  # no ?lanes=raw
            assert answer == {"t": "spliced"}
            await ws.close()
        async with linked(make_link(relay, host_identity(tmp_path / "h"))):  # no on_raw
            ws, answer = await raw_answer(relay, id_of(tmp_path / "h"))
            assert answer == {"t": "spliced"}
            await ws.close()
        await quiet(relay)
    async with running_relay(tmp_path / "relay", splice=False) as relay:
        assert relay.server.raw is None
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_raw=raw_host)):
            ws, answer = await raw_answer(relay, id_of(tmp_path / "h"))
            assert answer == {"t": "spliced"}
            await ws.close()
    assert raw_host.served == 0


async def test_a_host_that_cannot_reach_the_splice_port_answers_on_data(
        tmp_path: Path) -> None:
    """A balancer that forwards only the websocket port: the host's raw connection fails, it
    answers on /data, and the viewer that asked for raw is spliced on the websocket lane."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()  # nothing listens there
    raw_host = RawEchoHost(tmp_path / "h")
    async with running_relay(tmp_path / "relay", splice_address=f"127.0.0.1:{dead}") as relay, \
            linked(make_link(relay, host_identity(tmp_path / "h"), on_raw=raw_host)):
        ws, answer = await raw_answer(relay, id_of(tmp_path / "h"))
        assert answer == {"t": "spliced"}
        await ws.send(b"ping")
        assert await asyncio.wait_for(ws.recv(), 10) == b"host:ping"
        await ws.close()
        await quiet(relay, hosts=1)
    assert raw_host.served == 0


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_viewer_on_one_instance_host_on_another(tmp_path: Path,
                                                      request: pytest.FixtureRequest,
                                                      kind: str) -> None:
    host = RawEchoHost(tmp_path / "h")
    async with instance_pair(tmp_path, request, kind) as (a, b, _):
        async with linked(make_link(b, host_identity(tmp_path / "h"), on_raw=host)):
            await echo_raw(a, id_of(tmp_path / "h"))
            await raw_quiet(a)
        # The pair was joined on A, where the viewer was: the host dialled A's splice port.
        assert a.kinds().count("raw_join") == 1 and "raw_join" not in b.kinds()
        assert a.last("rendezvous")["via"] == "b" and a.last("rendezvous")["lane"] == "raw"


async def _refusal(port: int, data: bytes, *, close: bool = False,
                   source: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(data)
    if close:
        writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def test_bad_input_on_the_splice_port(tmp_path: Path) -> None:
    host = RawEchoHost(tmp_path / "h")
    fds = open_fds()
    async with running_relay(tmp_path / "relay", preamble_timeout=0.5,
                             connect_rate=(0.5, 12)) as relay:
        raw = relay.server.raw
        assert raw is not None
        port = raw.port.port
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_raw=host)):
            hid = id_of(tmp_path / "h")
            assert await _refusal(port, b"GET / HTTP/1.1\r\n" * 4) == (
                REFUSED + b"not a raw lane preamble\n")
            assert await _refusal(port, b"rdeskraw", close=True) == (
                REFUSED + b"closed after 8 bytes of its preamble\n")
            assert await _refusal(port, b"") == REFUSED + b"no preamble in time\n"
            assert await _refusal(port, preamble(b"\x00" * 32)) == (
                REFUSED + b"unknown, expired or used ticket\n")
            # A ticket is good once: the viewer's, replayed after its session began.
            ws, answer = await raw_answer(relay, hid)
            ticket = base64.b64decode(answer["ticket"])
            sock = await dial_splice_port("127.0.0.1", answer["port"], ticket)
            assert await _refusal(port, preamble(ticket)) == (
                REFUSED + b"unknown, expired or used ticket\n")
            sock.close()
            await ws.close()
            await raw_quiet(relay)
            # A flood from one source is cut by its bucket (burst 12) ...
            answers = [await _refusal(port, b"x" * PREAMBLE_BYTES, source="127.0.0.3")
                       for _ in range(16)]
            assert answers[:12] == [REFUSED + b"not a raw lane preamble\n"] * 12
            assert answers[-1] == REFUSED + b"rate-limited: too many splice attempts\n"
            # ... and the relay still serves the others (another source address).
            await echo_raw_from(relay, hid, "127.0.0.2")
            await raw_quiet(relay)
        # Audited by source, the 1st, 10th, 100th... refusal: a flood is not a flood of lines.
        flood = [e["count"] for k, e in relay.events
                 if k == "raw_refused" and e.get("source") == "127.0.0.3"]
        assert flood == [1, 10]
        assert "rate_limited" in relay.kinds()
    assert open_fds() <= fds + 2


async def test_a_viewer_that_never_comes_frees_the_host_socket(tmp_path: Path) -> None:
    host = RawEchoHost(tmp_path / "h")
    async with running_relay(tmp_path / "relay", ticket_lifetime=1.0) as relay, \
            linked(make_link(relay, host_identity(tmp_path / "h"), on_raw=host)):
        ws, answer = await raw_answer(relay, id_of(tmp_path / "h"))
        assert answer["t"] == "raw"
        # The viewer keeps its websocket but never dials: refused when its ticket lapses.
        reason = await asyncio.wait_for(ws.recv(), 10)
        assert "the viewer did not reach the splice port in time" in str(reason)
        await raw_quiet(relay)
        await quiet(relay, hosts=1)
    assert host.served == 0


async def test_drain_waits_for_joined_raw_pairs(tmp_path: Path) -> None:
    host = RawEchoHost(tmp_path / "h")
    async with running_relay(tmp_path / "relay") as relay:
        async with linked(make_link(relay, host_identity(tmp_path / "h"), on_raw=host)):
            reader, writer, _ = await raw_viewer(relay, id_of(tmp_path / "h"))
            drain = asyncio.ensure_future(relay.server.drain(30))
            await asyncio.sleep(0.2)
            writer.write(b"still")  # the pair runs on while the relay drains
            assert await asyncio.wait_for(reader.readexactly(10), 10) == b"host:still"
            assert not drain.done()
            writer.close()
            await asyncio.wait_for(drain, 20)
        assert relay.last("relay_drain")["raw"] == 1
        assert "raw_end" in relay.kinds()
