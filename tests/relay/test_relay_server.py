"""The relay with real parts: TLS websockets on 127.0.0.1, a real RelayLink, real viewers.

Every test ends with the relay quiet (no waiting viewer, splice, session or stray socket)
and no task of the test's left running.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from rdesk.protocol.errors import CloseCode
from rdesk.relay import proof
from rdesk.relay.directory import MemoryDirectory
from rdesk.relay.messages import (
    Challenge,
    Connect,
    Data,
    Prove,
    Register,
    Rendezvous,
    decode,
    encode,
)
from tests.relay.harness import (
    Identity,
    host_identity,
    linked,
    make_link,
    open_ws,
    other_tasks,
    quiet,
    raw_host,
    running_relay,
    viewer,
)


async def _refusal(ws: ClientConnection) -> tuple[str, int | None]:
    """The relay's ``refused`` reason and the close code that follows it."""
    answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert answer["t"] == "refused", answer
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    return answer["reason"], ws.close_code


async def test_a_viewer_reaches_a_registered_host_through_the_splice(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        identity = host_identity(tmp_path / "host")
        async with linked(make_link(relay, identity)) as link:
            registered = relay.last("register")
            assert registered["id"] == link.host_id and registered["replaced"] is False
            token = relay.server.tokens.check(relay.token) if relay.server.tokens else None
            assert token is not None and registered["token"] == token.id
            ws, answer = await viewer(relay, link.host_id)
            assert answer == {"t": "spliced"}
            await ws.send(b"hello")
            assert await ws.recv() == b"host:hello"
            big = bytes(range(256)) * 4096  # 1 MiB, a large tunnel record
            await ws.send(big)
            assert await ws.recv() == b"host:" + big
            await ws.close()
            await quiet(relay, hosts=1)
        end = relay.last("splice_end")
        assert end["viewer_bytes"] == 5 + len(big) and end["host_bytes"] == 15 + len(big)
        await quiet(relay)
    assert relay.last("unregister")["id"] == link.host_id
    assert relay.kinds()[-1] == "relay_stop"
    assert not other_tasks()


async def test_health_and_readiness_and_404(tmp_path: Path) -> None:
    async def get(port: int, path: str) -> str:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        return data.decode().splitlines()[0]

    async with running_relay(tmp_path) as relay:
        port = relay.server.port
        assert await get(port, "/healthz") == "HTTP/1.1 200 OK"
        assert await get(port, "/readyz") == "HTTP/1.1 200 OK"
        assert await get(port, "/other") == "HTTP/1.1 404 Not Found"
        relay.server.draining = True
        assert await get(port, "/readyz") == "HTTP/1.1 503 Service Unavailable"
        assert await get(port, "/healthz") == "HTTP/1.1 200 OK"
        relay.server.draining = False
        await quiet(relay)

    class Unreachable(MemoryDirectory):
        """A shared directory that cannot be reached right now."""

        async def ready(self) -> bool:
            return False

    async with running_relay(tmp_path, directory=Unreachable()) as relay:
        assert await get(relay.port, "/readyz") == "HTTP/1.1 503 Service Unavailable"
        assert await get(relay.port, "/healthz") == "HTTP/1.1 200 OK"
    assert not other_tasks()


async def test_an_unknown_or_offline_id_is_refused(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        identity = host_identity(tmp_path / "host")
        link = make_link(relay, identity)
        ws, answer = await viewer(relay, link.host_id)  # never registered
        assert answer == {"t": "refused", "reason": "unknown or offline ID"}
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == CloseCode.POLICY
        async with linked(link):
            pass
        ws, answer = await viewer(relay, link.host_id)  # registered, then gone
        assert answer["reason"] == "unknown or offline ID"
        await ws.wait_closed()
        assert relay.last("connect_refused")["reason"] == "unknown or offline ID"
        await quiet(relay)
    assert not other_tasks()


async def test_a_wrong_or_missing_token_is_refused(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        identity = host_identity(tmp_path / "host")
        for token, reason in [("rdt_wrong", "enrolment token refused"),
                              (None, "an enrolment token is required")]:
            link = make_link(relay, identity, token=token)
            async with linked(link, registered=False):
                while link.last_error is None:
                    await asyncio.sleep(0.02)
                assert link.last_error == reason
                assert not link.registered.is_set()
            assert relay.last("register_refused") == {
                "source": "127.0.0.1", "id": link.host_id, "reason": reason}
        assert not relay.server.hosts.live
        await quiet(relay)
    assert not other_tasks()


async def test_an_id_claimed_with_a_foreign_key_or_proof_is_refused(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        mine = host_identity(tmp_path / "mine")
        theirs = host_identity(tmp_path / "theirs")
        victim = make_link(relay, theirs)
        my_spki = proof.spki_of_certificate(mine.cert_der)
        # The victim's ID with my key: the ID is not the hash of the key.
        ws = await open_ws(relay, "/host")
        await ws.send(encode(Register(victim.host_id, my_spki, relay.token, 1)))
        assert await _refusal(ws) == ("the ID is not the hash of this key", CloseCode.POLICY)
        # The victim's ID and key, but I cannot sign for it.
        ws = await open_ws(relay, "/host")
        await ws.send(encode(Register(victim.host_id, victim.spki, relay.token, 1)))
        challenge = decode(await ws.recv())
        assert isinstance(challenge, Challenge)
        signed = proof.register_input(challenge.nonce, relay.server.fingerprint, victim.host_id)
        await ws.send(encode(Prove(proof.sign(mine.key, signed))))
        assert await _refusal(ws) == ("proof of key ownership failed", CloseCode.POLICY)
        # A proof the victim made for another relay is no good here either.
        ws = await open_ws(relay, "/host")
        await ws.send(encode(Register(victim.host_id, victim.spki, relay.token, 1)))
        challenge = decode(await ws.recv())
        assert isinstance(challenge, Challenge)
        signed = proof.register_input(challenge.nonce, "SHA256:another-relay", victim.host_id)
        await ws.send(encode(Prove(proof.sign(theirs.key, signed))))
        assert await _refusal(ws) == ("proof of key ownership failed", CloseCode.POLICY)
        assert not relay.server.hosts.live
        await quiet(relay)
    assert not other_tasks()


async def test_garbage_and_oversized_control_messages_are_refused(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        ws = await open_ws(relay, "/host")
        await ws.send('{"t":"heartbeat"}')
        assert await _refusal(ws) == ("unexpected heartbeat while awaiting register",
                                      CloseCode.PROTOCOL_ERROR)
        ws = await open_ws(relay, "/connect")
        await ws.send(b"\x00binary")
        assert (await _refusal(ws))[0] == "relay control messages are text frames"
        ws = await open_ws(relay, "/connect")
        await ws.send("x" * 5000)  # over the 4 KiB limit before it is spliced
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == CloseCode.TOO_BIG
        await quiet(relay)
    assert not other_tasks()


async def test_a_second_registration_with_the_same_key_replaces_the_first(
    tmp_path: Path,
) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        identity = host_identity(tmp_path / "host")
        first = make_link(relay, identity, backoff=(30.0, 30.0))
        async with linked(first):
            async with linked(make_link(relay, identity)) as second:
                while first.registered.is_set():
                    await asyncio.sleep(0.02)
                assert first.last_error == "replaced by a newer registration"
                ws, answer = await viewer(relay, second.host_id)
                assert answer == {"t": "spliced"}
                await ws.send(b"x")
                assert await ws.recv() == b"host:x"
                await ws.close()
                await quiet(relay, hosts=1)
            await quiet(relay)
        assert relay.last("register")["replaced"] is True
    assert not other_tasks()


async def test_data_connections_must_answer_a_live_rendezvous_with_the_hosts_proof(
    tmp_path: Path,
) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        identity = host_identity(tmp_path / "host")
        stranger = host_identity(tmp_path / "stranger")
        control = await raw_host(relay, identity)
        host_id = next(iter(relay.server.hosts.live.values())).host_id
        viewer_ws = await open_ws(relay, "/connect")
        await viewer_ws.send(encode(Connect(host_id, 1)))
        rendezvous = decode(await control.recv())
        assert isinstance(rendezvous, Rendezvous) and rendezvous.url is None

        def data(key: Identity, session: str) -> str:
            signed = proof.data_input(session, relay.server.fingerprint, host_id)
            return encode(Data(host_id, session, proof.sign(key.key, signed)))

        for message, reason in [(data(identity, "x" * 22), "no such rendezvous"),
                                (data(stranger, rendezvous.session),
                                 "proof of key ownership failed")]:
            ws = await open_ws(relay, "/data")
            await ws.send(message)
            assert await _refusal(ws) == (reason, CloseCode.POLICY)
            assert relay.last("data_refused")["reason"] == reason
        good = await open_ws(relay, "/data")
        await good.send(data(identity, rendezvous.session))
        assert json.loads(await viewer_ws.recv()) == {"t": "spliced"}
        replay = await open_ws(relay, "/data")  # the same proof again: already answered
        await replay.send(data(identity, rendezvous.session))
        assert await _refusal(replay) == ("no such rendezvous", CloseCode.POLICY)
        await viewer_ws.send(b"ping")
        assert await good.recv() == b"ping"
        await good.close()
        await viewer_ws.wait_closed()
        await control.close()
        await quiet(relay)
    assert not other_tasks()
