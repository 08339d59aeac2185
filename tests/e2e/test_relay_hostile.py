"""A relay the viewer cannot trust, and a relay that goes away: real relay, host and CLI.

A real ``rdesk relay`` process and a real ``rdesk host --relay`` on Xvfb; the viewers are the
CLI verbs as subprocesses. Between them sits this test's own splicer, in front of the real
relay (the viewer is told it is the relay):

- **honest**: it forwards every message both ways and keeps a copy. After a snapshot and a
  typed text, the copy holds no password, no PNG or JPEG signature, no typed text and no key
  message: the relay sees only ciphertext;
- **impersonating**: it answers the tunnel itself with another host's genuine key (the
  ClientHello rewritten to that key's ID, so its responder answers);
- **swapping**: it asks the real relay for another registered host than the one asked for;
  as is (that host refuses a ClientHello naming another ID), or with the ClientHello
  rewritten (that host answers, genuinely, with its own key).

Every hostile one is refused before the viewer sends anything but its ClientHello: no
Finished, no record, so no credential. Then the relay is killed under a running viewer: the
viewer ends with one line, and the host registers again once a relay is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from rdesk.client.tls import client_ssl_context
from rdesk.host.relaylink import load_identity
from rdesk.host.security.tls import ensure_host_certificate, server_ssl_context
from rdesk.tunnel.errors import TunnelError
from rdesk.tunnel.host_side import accept_tunnel
from rdesk.tunnel.wire import MAX_WIRE_MESSAGE
from tests.e2e.conftest import PASSWORD
from tests.e2e.relaysite import assert_only_ciphertext, read_line, site, spawn, stop
from tests.xserver import Xvfb

REPO = Path(__file__).resolve().parents[2]
TYPED = "relays see nothing"


def _retarget(message: str | bytes, other_id: str) -> str | bytes:
    """A ClientHello rewritten to name ``other_id`` (its last 13 bytes); anything else as is."""
    if isinstance(message, bytes) and len(message) == 112 and message[0] == 1:
        return message[:-13] + other_id.replace("-", "").encode()
    return message


class _Recorded:
    """A websocket whose received messages are also appended to ``log``."""

    def __init__(self, ws: ServerConnection, log: list[str | bytes], other_id: str) -> None:
        self.ws, self.log, self.other_id = ws, log, other_id

    async def send(self, message: bytes) -> None:
        await self.ws.send(message)

    async def recv(self) -> str | bytes:
        message = await self.ws.recv()
        self.log.append(message)
        return _retarget(message, self.other_id)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)


class Splicer:
    """The test's relay: ``/connect`` only, in front of the real relay at ``upstream``."""

    def __init__(self, tmp: Path, upstream: int, mode: str, other_id: str = "",
                 identity_dir: Path | None = None) -> None:
        cert, key = ensure_host_certificate(tmp / "splicer")
        self.ssl = server_ssl_context(cert, key)
        self.upstream, self.mode, self.other_id = upstream, mode, other_id
        self.identity = load_identity(*ensure_host_certificate(identity_dir)) if identity_dir \
            else None
        #: Every message the viewer sent, and every one the host sent, in order.
        self.from_viewer: list[str | bytes] = []
        self.from_host: list[str | bytes] = []
        self.port = 0

    async def handle(self, viewer: ServerConnection) -> None:
        request = await viewer.recv()
        self.from_viewer.append(request)
        if self.mode == "impersonate":
            await viewer.send(json.dumps({"t": "spliced"}))
            assert self.identity is not None
            # Its own genuine host key, the ClientHello rewritten to the ID of that key.
            recorded = _Recorded(viewer, self.from_viewer, self.other_id)
            with contextlib.suppress(TunnelError):
                transport = await accept_tunnel(recorded, *self.identity, "viewer", timeout=10)
                self.from_viewer.append(await transport.recv())  # never: nothing comes
            return
        asked = json.loads(request)
        if self.mode.startswith("swap"):
            asked["id"] = self.other_id
        async with connect(f"wss://127.0.0.1:{self.upstream}/connect", ssl=client_ssl_context(),
                           max_size=MAX_WIRE_MESSAGE, compression=None) as host:
            await host.send(json.dumps(asked))
            await viewer.send(await host.recv())
            rewrite = self.other_id if self.mode == "swap+rewrite" else ""
            await asyncio.gather(self._pump(viewer, host, self.from_viewer, rewrite),
                                 self._pump(host, viewer, self.from_host))

    @staticmethod
    async def _pump(src: object, dst: object, log: list[str | bytes],
                    rewrite: str = "") -> None:
        try:
            async for message in src:  # type: ignore[attr-defined]
                log.append(message)
                await dst.send(_retarget(message, rewrite) if rewrite else message)  # type: ignore[attr-defined]
        except Exception:  # either side gone: end the other
            pass
        with contextlib.suppress(Exception):
            await dst.close()  # type: ignore[attr-defined]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Splicer]:
        async with serve(self.handle, "127.0.0.1", 0, ssl=self.ssl, compression=None,
                         max_size=MAX_WIRE_MESSAGE) as server:
            self.port = server.sockets[0].getsockname()[1]
            yield self

    def viewer_bytes(self) -> bytes:
        return b"".join(m if isinstance(m, bytes) else m.encode() for m in self.from_viewer)

    def all_bytes(self) -> bytes:
        return self.viewer_bytes() + b"".join(
            m if isinstance(m, bytes) else m.encode() for m in self.from_host)


@pytest.mark.timeout(240)
async def test_an_honest_relay_carries_only_ciphertext(xvfb: Xvfb, tmp_path: Path) -> None:
    async with site(tmp_path, xvfb.display) as s:
        splicer = Splicer(tmp_path, s.port, "honest")
        async with splicer.running():
            await s.snapshot_and_type(splicer.port, xvfb.display, 5, TYPED)
    seen = splicer.all_bytes()
    assert len(splicer.from_host) > 4 and len(seen) > 10_000  # the screen did cross it
    assert_only_ciphertext(seen, TYPED.encode())


@pytest.mark.parametrize("mode", ["impersonate", "swap", "swap+rewrite"])
@pytest.mark.timeout(240)
async def test_a_hostile_relay_is_refused_before_any_credential(
    mode: str, xvfb: Xvfb, tmp_path: Path,
) -> None:
    async with site(tmp_path, xvfb.display) as s:
        other = await s.start_host(xvfb.display, "other-host")  # a second genuine host
        try:
            assert other.stdout is not None
            other_id = await _other_id(tmp_path)
            splicer = Splicer(tmp_path, s.port, mode, other_id, tmp_path / "other-host")
            async with splicer.running():
                code, out, err = await s.cli(splicer.port, "snapshot", s.host_id,
                                             "-o", str(tmp_path / "x.png"))
        finally:
            await stop(other)
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    if mode == "swap":  # the other host refuses a ClientHello naming another ID: no tunnel
        assert "the tunnel failed" in err, err
    else:  # the viewer refuses the other key itself (HostIdentityError)
        assert "refusing to connect" in err and f"not {s.host_id}" in err, err
    # What the viewer sent the relay: its connect request and its ClientHello, nothing more.
    sent = splicer.from_viewer
    assert [type(m) for m in sent] == [str, bytes] and len(sent[1]) == 112, sent
    assert PASSWORD.encode() not in splicer.viewer_bytes()
    assert not (tmp_path / "x.png").exists()


async def _other_id(tmp: Path) -> str:
    from rdesk.protocol.hostid import host_id
    from rdesk.relay import proof

    _, der = load_identity(*ensure_host_certificate(tmp / "other-host"))
    return host_id(proof.spki_of_certificate(der))


@pytest.mark.timeout(240)
async def test_relay_killed_mid_session(xvfb: Xvfb, tmp_path: Path) -> None:
    async with site(tmp_path, xvfb.display, listen=True) as s:
        watch = await spawn("-m", "rdesk", "--config-dir", str(tmp_path / "viewer"), "watch",
                             s.host_id, "--relay", f"wss://127.0.0.1:{s.port}",
                             "--password-file", str(s.password_file), "--duration", "120")
        assert watch.stdout is not None and watch.stderr is not None
        await read_line(watch.stdout, "upd/s")  # following the screen through the relay
        assert s.relay is not None and s.host is not None and s.host.stdout is not None
        s.relay.kill()
        await s.relay.wait()
        err = (await asyncio.wait_for(watch.stderr.read(), 60)).decode()
        assert await asyncio.wait_for(watch.wait(), 30) != 0
        assert len(err.strip().splitlines()) == 1 and err.startswith("rdesk: error:"), err
        lost = await read_line(s.host.stdout, "lost the relay")
        assert lost.startswith("rdesk host: lost the relay") and "still served" in lost
        # Meanwhile the host serves direct viewers as before.
        url = next(line.split()[1] for line in s.banner if "connect:" in line)
        pin = next(line.split()[1] for line in s.banner if "fingerprint:" in line)
        direct = await spawn("-m", "rdesk", "--config-dir", str(tmp_path / "viewer"),
                             "snapshot", url, "--fingerprint", pin, "--password-file",
                             str(s.password_file), "-o", str(tmp_path / "direct.png"))
        _, direct_err = await asyncio.wait_for(direct.communicate(), 90)
        assert direct.returncode == 0, direct_err
        await s.start_relay(s.port)  # the relay comes back on the same address
        line = await read_line(s.host.stdout, "registered as", timeout=90)
        assert s.host_id in line
        code, _, err = await s.cli(s.port, "snapshot", s.host_id, "-o", str(tmp_path / "y.png"))
        assert code == 0, err
