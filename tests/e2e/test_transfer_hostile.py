"""A hostile host against a real viewer's transfers, over real TLS websockets on 127.0.0.1.

The host end is scripted (it speaks the wire itself); the viewer is the client library. The
host can attack a viewer as well as the other way round: nothing it sends may write outside
the file the user asked for, replace a file, or leave a partial one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from rdesk.client.connection import connect
from rdesk.client.transfer import TransferError, Transfers
from rdesk.host.security.tls import (
    certificate_fingerprint,
    ensure_host_certificate,
    server_ssl_context,
)
from rdesk.protocol.transfer import CHUNK, WINDOW

Script = Callable[[ServerConnection], Awaitable[None]]


def _data(transfer_id: int, data: bytes, offset: int = 0) -> bytes:
    """A binary chunk (rdesk/protocol/chunks.py), built by hand: a host need not use our codec."""
    return struct.pack("!BBHIQI", 2, 0, 0, transfer_id, offset, len(data)) + data


async def _welcome(ws: ServerConnection) -> None:
    nonce = base64.b64encode(b"n" * 16).decode()
    await ws.send(json.dumps({"t": "hello", "protocol": "rdesk", "version": 1, "nonce": nonce,
                              "methods": "password", "server": "evil"}))
    await ws.recv()  # auth
    await ws.send(json.dumps({"t": "welcome", "role": "control", "viewer_id": 1, "width": 64,
                              "height": 48, "name": "evil"}))


async def _request(ws: ServerConnection, kind: str) -> dict[str, object]:
    """The viewer's next message of type ``kind`` (others, like pings, are skipped)."""
    while True:
        frame = await ws.recv()
        if isinstance(frame, bytes):
            continue  # a chunk of an upload
        message = json.loads(frame)
        if message["t"] == kind:
            return message


async def _run(tmp_path: Path, script: Script,
               body: Callable[[Transfers], Awaitable[None]]) -> None:
    cert, key = ensure_host_certificate(tmp_path / "cert")

    async def host(ws: ServerConnection) -> None:
        await _welcome(ws)
        await script(ws)
        await ws.wait_closed()

    async with serve(host, "127.0.0.1", 0, ssl=server_ssl_context(cert, key)) as server:
        port = server.sockets[0].getsockname()[1]
        conn = await connect(f"wss://127.0.0.1:{port}", "pw", known_hosts=None,
                             pinned=certificate_fingerprint(cert))
        try:
            await asyncio.wait_for(body(Transfers(conn)), 20)
        finally:
            await conn.close()


async def test_data_past_the_announced_size_ends_the_get_and_leaves_no_file(
        tmp_path: Path) -> None:
    async def script(ws: ServerConnection) -> None:
        get = await _request(ws, "xfer_get")
        await ws.send(json.dumps({"t": "xfer_ready", "id": get["id"], "name": "f",
                                  "size": 2 * CHUNK}))
        for n in range(3):  # one chunk more than announced
            await ws.send(_data(int(str(get["id"])), b"x" * CHUNK, n * CHUNK))

    dest = tmp_path / "out.bin"

    async def body(transfers: Transfers) -> None:
        with pytest.raises(TransferError, match=r"broke the transfer protocol: .*more than its"):
            await transfers.get("f", dest)
        await asyncio.wait_for(transfers.conn.closed, 10)  # a hostile host is dropped

    await _run(tmp_path, script, body)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if "rdesk-part" in p.name] == []


async def test_a_wrong_digest_or_short_file_is_not_kept(tmp_path: Path) -> None:
    async def script(ws: ServerConnection) -> None:
        for _ in range(2):
            get = await _request(ws, "xfer_get")
            await ws.send(json.dumps({"t": "xfer_ready", "id": get["id"], "name": "f", "size": 3}))
            await _request(ws, "xfer_credit")
            await ws.send(_data(int(str(get["id"])), b"abc" if get["name"] == "a" else b"ab"))
            await ws.send(json.dumps({"t": "xfer_end", "id": get["id"],
                                      "sha256": hashlib.sha256(b"abd").hexdigest()}))

    async def body(transfers: Transfers) -> None:
        with pytest.raises(TransferError, match="SHA-256 of the bytes received differs"):
            await transfers.get("a", tmp_path / "a")
        with pytest.raises(TransferError, match="received 2 of 3 bytes"):
            await transfers.get("b", tmp_path / "b")

    await _run(tmp_path, script, body)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


async def test_a_listing_hides_hostile_names_and_is_bounded(tmp_path: Path) -> None:
    async def script(ws: ServerConnection) -> None:
        first = await _request(ws, "xfer_list")
        for name in ("ok.txt", "../../etc/passwd", "a\u200ftxt.exe", ".hidden"):
            await ws.send(json.dumps({"t": "xfer_entry", "id": first["id"], "name": name,
                                      "size": 1}))
        await ws.send(json.dumps({"t": "xfer_done", "id": first["id"], "ok": True, "name": "",
                                  "size": 4, "sha256": "", "reason": ""}))
        second = await _request(ws, "xfer_list")
        for n in range(1002):
            await ws.send(json.dumps({"t": "xfer_entry", "id": second["id"], "name": f"f{n}",
                                      "size": 1}))

    async def body(transfers: Transfers) -> None:
        assert await transfers.listing() == [("ok.txt", 1)]
        with pytest.raises(TransferError, match="listing is too long"):
            await transfers.listing()  # too long: the connection is closed as hostile

    await _run(tmp_path, script, body)


async def test_a_put_confirmed_with_another_digest_fails(tmp_path: Path) -> None:
    local = tmp_path / "up.txt"
    local.write_bytes(b"payload")

    async def script(ws: ServerConnection) -> None:
        put = await _request(ws, "xfer_put")
        await ws.send(json.dumps({"t": "xfer_ready", "id": put["id"], "name": "up.txt",
                                  "size": 7}))
        await ws.send(json.dumps({"t": "xfer_credit", "id": put["id"], "chunks": WINDOW}))
        await _request(ws, "xfer_end")
        await ws.send(json.dumps({"t": "xfer_done", "id": put["id"], "ok": True,
                                  "name": "up.txt", "size": 7, "sha256": "0" * 64,
                                  "reason": ""}))

    async def body(transfers: Transfers) -> None:
        with pytest.raises(TransferError, match="another SHA-256"):
            await transfers.put(local)

    await _run(tmp_path, script, body)


async def test_a_message_for_no_transfer_closes_the_connection(tmp_path: Path) -> None:
    async def script(ws: ServerConnection) -> None:
        await _request(ws, "xfer_list")
        await ws.send(_data(777, b"unasked"))

    async def body(transfers: Transfers) -> None:
        with pytest.raises(TransferError, match="for no transfer"):
            await transfers.listing()

    await _run(tmp_path, script, body)
