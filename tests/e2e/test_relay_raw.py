"""The raw lane end to end: a real ``rdesk relay``, a real ``rdesk host --relay --no-listen`` on
Xvfb, the CLI verbs as subprocesses, the host's own TLS through bytes the relay only copies.

- the host reached by ID on the raw lane: ``rdesk snapshot`` pixel-exact, ``rdesk type`` seen
  by a real X client, the relay's audit log showing the raw rendezvous, join and end, and the
  host's showing the login from ``relay:<session>``; ``--relay-lane ws`` takes the tunnel;
- a relay with ``--no-splice``: the viewer falls back to the websocket lane by itself, and
  ``--relay-lane raw`` is refused in one line;
- a relay in front of the real one: honest, a copy of the raw bytes holds no password, PNG,
  JPEG or typed text; hostile (the viewer joined to another genuine host, or to the relay's
  own TLS server with another host's key), the viewer refuses before any credential.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from rdesk.client.tls import client_ssl_context
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context
from rdesk.protocol.rawlane import GO, PREAMBLE_BYTES
from tests.e2e.relaysite import Site, assert_only_ciphertext, site, stop
from tests.e2e.test_relay_hostile import _other_id
from tests.xserver import Painter, Xvfb, assert_images_equal

TYPED = "raw lane typing"


def _host_events(s: Site, kind: str, name: str = "host") -> list[dict[str, object]]:
    log = s.tmp / f"{name}-audit.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [e for e in events if e.get("kind") == kind]


@pytest.mark.timeout(240)
async def test_snapshot_and_type_by_id_on_the_raw_lane(xvfb: Xvfb, tmp_path: Path) -> None:
    async with site(tmp_path, xvfb.display) as s:
        await s.snapshot_and_type(s.port, xvfb.display, 21, TYPED)
        shot = tmp_path / "shot.png"
        code, _, err = await s.cli(s.port, "snapshot", s.host_id, "-o", str(shot),
                                   "--relay-lane", "ws")
        assert code == 0, err
        lanes = [e["lane"] for e in s.relay_events("rendezvous")]
        sessions = [str(e["session"]) for e in s.relay_events("rendezvous")]
        joins = [str(e["session"]) for e in s.relay_events("raw_join")]
        ends = s.relay_events("raw_end")
    assert lanes == ["raw", "raw", "ws"]
    assert joins == sessions[:2] and [str(e["session"]) for e in ends] == joins
    assert int(str(ends[0]["host_bytes"])) > 10_000  # the snapshot's screen came this way
    logins = [e["source"] for e in _host_events(s, "auth_success")]
    assert logins == [f"relay:{session}" for session in sessions]
    assert f"{s.host_id} SHA256:" in (tmp_path / "viewer" / "known_hosts").read_text()


@pytest.mark.timeout(240)
async def test_a_relay_without_the_raw_lane(xvfb: Xvfb, tmp_path: Path) -> None:
    async with site(tmp_path, xvfb.display, relay=("--no-splice",)) as s:
        with Painter(xvfb.display, seed=22) as painter:
            shot = tmp_path / "shot.png"
            code, _, err = await s.cli(s.port, "snapshot", s.host_id, "-o", str(shot))
            assert code == 0, err
            assert_images_equal(Image.open(shot).convert("RGB"), painter.expected())
        code, out, err = await s.cli(s.port, "snapshot", s.host_id, "-o", str(shot),
                                     "--relay-lane", "raw")
        assert code == 7 and out == "", err
        assert err.strip() == (f"rdesk: error: relay 127.0.0.1:{s.port} offered no raw lane to "
                               f"{s.host_id} (asked for the raw lane only)")
        assert [e["lane"] for e in s.relay_events("rendezvous")] == ["ws", "ws"]


async def _pump(src: Any, dst: Any) -> None:
    with contextlib.suppress(Exception):
        async for message in src:
            await dst.send(message)
    with contextlib.suppress(Exception):
        await dst.close()


class FrontRelay:
    """A relay of the test's own in front of the real one, on ``/connect`` only.

    ``honest``: the real relay's ``raw`` answer is passed on with its port changed to this
    front's recorder, which copies bytes to the real splice port and keeps them. ``swap``: it
    asks the real relay for ``other_id`` instead. ``impersonate``: it answers ``raw`` itself and
    serves TLS on its own splice port with another genuine host's certificate.
    """

    def __init__(self, tmp: Path, upstream: int, mode: str, other_id: str = "") -> None:
        cert, key = ensure_host_certificate(tmp / "front")
        self.ssl = server_ssl_context(cert, key)
        self.other = server_ssl_context(*ensure_host_certificate(tmp / "other-host"))
        self.upstream, self.mode, self.other_id = upstream, mode, other_id
        self.port = self.splice_port = 0
        self.target = 0  # the real relay's splice port
        self.copied = bytearray()
        self.plaintext = bytearray()  # what the impersonator decrypted

    async def handle(self, viewer: ServerConnection) -> None:
        request = json.loads(await viewer.recv())
        if self.mode == "impersonate":
            ticket = base64.b64encode(b"\x07" * 32).decode()
            await viewer.send(json.dumps({"t": "raw", "address": None,
                                          "port": self.splice_port, "ticket": ticket}))
            await viewer.wait_closed()
            return
        if self.mode == "swap":
            request["id"] = self.other_id
        path = viewer.request.path if viewer.request is not None else "/connect"
        async with connect(f"wss://127.0.0.1:{self.upstream}{path}", ssl=client_ssl_context(),
                           compression=None) as real:
            await real.send(json.dumps(request))
            answer = json.loads(await real.recv())
            if answer.get("t") == "raw" and self.mode == "honest":
                self.target, answer["port"] = answer["port"], self.splice_port
            if answer.get("t") == "raw" and self.mode == "unreachable":
                answer["port"] = self.dead_port  # a balancer that forwards only wss
            await viewer.send(json.dumps(answer))
            if answer.get("t") == "spliced":  # the websocket lane: splice frames as they are
                await asyncio.gather(_pump(viewer, real), _pump(real, viewer))
            else:  # the raw lane: the websocket's part ends when either side closes it
                ends = {asyncio.ensure_future(viewer.wait_closed()),
                        asyncio.ensure_future(real.wait_closed())}
                await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
                for end in ends:
                    end.cancel()

    async def splice(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.mode == "impersonate":
                await reader.readexactly(PREAMBLE_BYTES)
                writer.write(GO)
                await writer.drain()
                await writer.start_tls(self.other)
                while chunk := await reader.read(65536):
                    self.plaintext += chunk
                return
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)

            async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                while chunk := await src.read(65536):
                    self.copied += chunk
                    dst.write(chunk)
                    await dst.drain()
                dst.close()

            await asyncio.gather(pump(reader, up_w), pump(up_r, writer))
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @property
    def dead_port(self) -> int:
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port: int = closed.getsockname()[1]
        closed.close()  # nothing listens there
        return port

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FrontRelay]:
        tcp = await asyncio.start_server(self.splice, "127.0.0.1", 0)
        self.splice_port = tcp.sockets[0].getsockname()[1]
        async with tcp, serve(self.handle, "127.0.0.1", 0, ssl=self.ssl,
                              compression=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            yield self


@pytest.mark.timeout(240)
async def test_an_honest_relay_copies_only_ciphertext_on_the_raw_lane(
        xvfb: Xvfb, tmp_path: Path) -> None:
    async with site(tmp_path, xvfb.display) as s:
        front = FrontRelay(tmp_path, s.port, "honest")
        async with front.running():
            await s.snapshot_and_type(front.port, xvfb.display, 23, TYPED)
        assert [e["lane"] for e in s.relay_events("rendezvous")] == ["raw", "raw"]
    seen = bytes(front.copied)
    assert len(seen) > 10_000  # the screen did cross it
    assert_only_ciphertext(seen, TYPED.encode(), b"GET /rdesk")


@pytest.mark.parametrize("mode", ["swap", "impersonate"])
@pytest.mark.timeout(240)
async def test_a_hostile_relay_on_the_raw_lane_is_refused_before_any_credential(
        mode: str, xvfb: Xvfb, tmp_path: Path) -> None:
    async with site(tmp_path, xvfb.display) as s:
        other = await s.start_host(xvfb.display, "other-host")  # a second genuine host
        try:
            front = FrontRelay(tmp_path, s.port, mode, await _other_id(tmp_path))
            async with front.running():
                code, out, err = await s.cli(front.port, "snapshot", s.host_id,
                                             "-o", str(tmp_path / "x.png"))
        finally:
            await stop(other)
        logins = [e for name in ("host", "other-host") for kind in ("auth_success", "auth_failure")
                  for e in _host_events(s, kind, name)]
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "refusing to connect" in err and f"not {s.host_id}" in err, err
    assert not (tmp_path / "x.png").exists()
    # Refused as the TLS handshake ended: the impersonator read nothing at all (not even the
    # websocket's opening request), and nothing of a login reached any host.
    assert bytes(front.plaintext) == b""
    assert logins == []


@pytest.mark.timeout(240)
async def test_a_viewer_that_cannot_reach_the_splice_port_takes_the_websocket_lane(
        xvfb: Xvfb, tmp_path: Path) -> None:
    async with site(tmp_path, xvfb.display) as s:
        front = FrontRelay(tmp_path, s.port, "unreachable")
        async with front.running():
            await s.snapshot_and_type(front.port, xvfb.display, 24, TYPED)
        lanes = [e["lane"] for e in s.relay_events("rendezvous")]
        refused = [e["reason"] for e in s.relay_events("raw_refused")]
    # Each verb was offered the raw lane, could not reach it, and asked again on the
    # websocket lane (the tunnel), which worked; the host's raw sockets were let go.
    assert lanes == ["raw", "ws", "raw", "ws"]
    assert refused == ["viewer left", "viewer left"]
