"""The attack battery (issue 8): each attack gets a clear close or error, the host keeps
serving a good viewer (which still gets an exact refresh afterwards), nothing reaches input and
nothing leaks. See docs/security.md, "The attack battery"."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import os
import socket
import ssl
import struct
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from rdesk.client.connection import AuthenticationFailed, ConnectError, Connection, connect
from rdesk.client.framebuffer import decode_image
from rdesk.client.known_hosts import HostKeyMismatch
from rdesk.client.tls import client_ssl_context
from rdesk.host.security.throttle import AuthThrottle, GlobalThrottle
from rdesk.protocol import CloseCode, limits
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import RemoteProtocolError
from rdesk.protocol.messages import PROTOCOL_VERSION
from rdesk.protocol.updates import Rect
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.xserver import Xvfb

HostFactory = Callable[..., RunningHost]


class SpyInjector:
    """Counts every call that would reach the display."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def pointer(self, owner: int, x: int, y: int, buttons: int) -> None:
        self.calls.append(("pointer", owner, x, y, buttons))

    def wheel(self, owner: int, x: int, y: int, dx: int, dy: int) -> None:
        self.calls.append(("wheel", owner))

    def key(self, owner: int, keysym: int, down: bool) -> None:
        self.calls.append(("key", owner, keysym, down))

    def release_all(self, owner: int) -> None:
        pass  # bookkeeping, not input

    def report_drops_to(self, callback: Callable[[int, int], None]) -> None:
        pass  # the server's audit hook for rate-limit drops, not input

    def __getattr__(self, name: str) -> Callable[..., None]:  # newer injector methods
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.calls.append((name, *args))


class ViewCredentials:
    def check(self, secret: str) -> str | None:
        return "view" if secret == PASSWORD else None


@pytest.fixture
def spy() -> SpyInjector:
    return SpyInjector()


@pytest.fixture
def guarded(xvfb: Xvfb, host_factory: HostFactory, spy: SpyInjector) -> RunningHost:
    """A host whose input goes to a spy: attacks must never reach it."""
    return host_factory(xvfb.display, injector=lambda display: spy)


async def _viewer(host: RunningHost, **kwargs: Any) -> Connection:
    return await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint, **kwargs)


@pytest.fixture
async def good(guarded: RunningHost) -> AsyncIterator[Connection]:
    conn = await _viewer(guarded)
    await conn.wait_exact(30)
    yield conn
    await conn.close()


async def _still_serving(host: RunningHost, conn: Connection) -> None:
    await conn.refresh()
    await conn.wait_exact(30)
    assert not conn.closed.done()
    again = await _viewer(host)
    await again.close()


async def _raw(host: RunningHost, **kwargs: Any) -> Any:
    return await ws_connect(
        host.url + "/rdesk", ssl=client_ssl_context(), max_size=2**24, compression=None,
        **kwargs,
    )


async def _close_code(ws: Any) -> int:
    with pytest.raises(ConnectionClosed) as err:
        for _ in range(20):
            await asyncio.wait_for(ws.recv(), 15)
    assert err.value.rcvd is not None, err.value
    return int(err.value.rcvd.code)


def _auth(hello: dict[str, Any], **override: Any) -> str:
    auth = {"t": "auth", "version": PROTOCOL_VERSION, "nonce": hello["nonce"],
            "method": "password", "secret": PASSWORD, "name": "raw"}
    auth.update(override)
    return json.dumps(auth)


# --- transport ------------------------------------------------------------------------------


async def test_plaintext_ws_and_tcp_garbage(guarded: RunningHost, good: Connection,
                                            spy: SpyInjector) -> None:
    with pytest.raises((InvalidHandshake, OSError, EOFError, asyncio.TimeoutError)):
        await ws_connect(f"ws://127.0.0.1:{guarded.port}/rdesk", open_timeout=10)
    for garbage in (b"GET /rdesk HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096), b"\x00" * 10):
        reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
        writer.write(garbage)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), 15)  # the host closes; no HTTP answer
        assert b"HTTP" not in data
        writer.close()
    await _still_serving(guarded, good)
    assert spy.calls == [] and guarded.server.auth_attempts == 0 + 2  # good viewer + again


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("offer", ["tls12-cbc", "tls10", "tls11"])
async def test_weak_tls_offers_are_refused(guarded: RunningHost, good: Connection,
                                           offer: str) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if offer == "tls12-cbc":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE+AES128+SHA:ECDHE+AES256+SHA:AES128-SHA")
    else:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        version = ssl.TLSVersion.TLSv1 if offer == "tls10" else ssl.TLSVersion.TLSv1_1
        try:
            ctx.minimum_version = ctx.maximum_version = version
        except (ValueError, ssl.SSLError):
            pytest.skip("this OpenSSL cannot even offer " + offer)
    with pytest.raises((ssl.SSLError, OSError, ConnectionError)):
        await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", guarded.port, ssl=ctx), 15
        )
    await _still_serving(guarded, good)


async def test_swapped_certificate_under_pinned_viewer_sends_no_credential(
    guarded: RunningHost, good: Connection
) -> None:
    before = guarded.server.auth_attempts
    wrong = "SHA256:" + "A" * 43
    with pytest.raises(HostKeyMismatch):
        await connect(guarded.url, PASSWORD, known_hosts=None, pinned=wrong)
    assert guarded.server.auth_attempts == before
    await _still_serving(guarded, good)


async def test_compression_is_never_negotiated(guarded: RunningHost, good: Connection) -> None:
    ws = await ws_connect(guarded.url + "/rdesk", ssl=client_ssl_context(),
                          compression="deflate")
    try:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.recv()  # the hello arrives uncompressed
    finally:
        await ws.close()
    await _still_serving(guarded, good)


# --- authentication -------------------------------------------------------------------------


async def _wrong_password(host: RunningHost, local: str = "127.0.0.1") -> int:
    ws = await _raw(host, local_addr=(local, 0))
    hello = json.loads(await ws.recv())
    await ws.send(_auth(hello, secret="wrong guess"))
    return await _close_code(ws)


def _fast_throttle(host: RunningHost, **global_kwargs: Any) -> AuthThrottle:
    async def install() -> AuthThrottle:
        throttle = AuthThrottle(base=0.001, ceiling=0.01,
                                global_throttle=GlobalThrottle(**global_kwargs))
        host.server.throttle = throttle
        return throttle

    return host.call(install())


async def test_fifty_wrong_passwords_from_one_source(guarded: RunningHost, good: Connection,
                                                     spy: SpyInjector) -> None:
    throttle = _fast_throttle(guarded, limit=10**6, rotate_after=10)
    codes = [await _wrong_password(guarded) for _ in range(50)]
    assert set(codes) <= {CloseCode.AUTH_FAILED, CloseCode.POLICY}
    assert throttle.failures("127.0.0.1") >= 45
    # A password the user chose is never rotated: the good viewer still gets in.
    await _still_serving(guarded, good)
    assert spy.calls == []


async def test_one_time_password_rotates_under_attack(
    xvfb: Xvfb, host_factory: HostFactory
) -> None:
    from rdesk.host.credentials import HostCredentials
    from rdesk.host.security.passwords import PasswordStore

    credentials = HostCredentials(PasswordStore.one_time())
    first = credentials.control.one_time_password
    host = host_factory(xvfb.display, credentials=credentials)
    said: list[str] = []
    host.server.say = said.append
    _fast_throttle(host, limit=10**6, rotate_after=10)
    for _ in range(10):
        assert await _wrong_password(host) == CloseCode.AUTH_FAILED
    second = credentials.control.one_time_password
    assert second and second != first
    assert any(second in line for line in said)  # the local user is shown the new one
    with pytest.raises(AuthenticationFailed):
        await connect(host.url, first or "", known_hosts=None, pinned=host.fingerprint)
    conn = await connect(host.url, second, known_hosts=None, pinned=host.fingerprint)
    await conn.close()


async def test_wrong_passwords_spread_over_sources(guarded: RunningHost, good: Connection) -> None:
    throttle = _fast_throttle(guarded, limit=30, window=600, lockout=600)
    sources = [f"127.0.0.{i}" for i in range(2, 8)]
    for _ in range(6):
        for source in sources:
            code = await _wrong_password(guarded, source)
            assert code in (CloseCode.AUTH_FAILED, CloseCode.POLICY)
    for source in sources:
        assert 1 <= throttle.failures(source) <= 6
    assert throttle.locked(time.monotonic())  # 36 failures > 30 per window: global lockout
    guarded.server.throttle = AuthThrottle()  # lift it so the good viewer may log in again
    await _still_serving(guarded, good)


async def test_replayed_auth_message_is_refused(guarded: RunningHost, good: Connection) -> None:
    ws = await _raw(guarded)
    captured = _auth(json.loads(await ws.recv()))
    await ws.close()
    ws = await _raw(guarded)
    await ws.recv()  # a fresh hello with a fresh nonce
    await ws.send(captured)
    assert await _close_code(ws) == CloseCode.AUTH_FAILED
    await _still_serving(guarded, good)


MESSAGES_OF_EVERY_TYPE = [
    {"t": "hello", "protocol": "rdesk", "version": 1, "nonce": "x", "methods": "password",
     "server": "x"},
    {"t": "welcome", "role": "control", "viewer_id": 1, "width": 1, "height": 1, "name": ""},
    {"t": "screen", "width": 10, "height": 10},
    {"t": "ack", "seq": 0},
    {"t": "ping", "id": 1},
    {"t": "pong", "id": 1},
    {"t": "pointer", "x": 1, "y": 1, "buttons": 1},
    {"t": "wheel", "x": 1, "y": 1, "dx": 0, "dy": 1},
    {"t": "key", "keysym": 0x61, "down": True},
    {"t": "sync", "id": 1},
    {"t": "input_ack", "id": 1, "ok": True, "reason": ""},
    {"t": "refresh"},
    {"t": "clipboard", "text": "x"},
    {"t": "control", "request": True},
]


@pytest.mark.parametrize("message", MESSAGES_OF_EVERY_TYPE, ids=lambda m: m["t"])
async def test_any_message_before_auth_is_refused(guarded: RunningHost, good: Connection,
                                                  spy: SpyInjector,
                                                  message: dict[str, Any]) -> None:
    ws = await _raw(guarded)
    await ws.recv()
    await ws.send(json.dumps(message))
    assert await _close_code(ws) in (CloseCode.PROTOCOL_ERROR, CloseCode.AUTH_FAILED)
    await ws.close()
    ws = await _raw(guarded)  # an update (binary) before auth too
    await ws.recv()
    await ws.send(struct.pack("!BBHIQ", 1, 0, 0, 0, 0))
    assert await _close_code(ws) == CloseCode.PROTOCOL_ERROR
    await _still_serving(guarded, good)
    assert spy.calls == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("x" * (limits.MAX_CONTROL_MESSAGE + 1), CloseCode.TOO_BIG),
        ('{"t":"no_such_type"}', CloseCode.PROTOCOL_ERROR),
        ('{"t":"key","keysym":"a","down":true}', CloseCode.PROTOCOL_ERROR),
        ('{"t":"pointer","x":-1,"y":0,"buttons":0}', CloseCode.PROTOCOL_ERROR),
        ('{"t":"pointer","x":1e309,"y":0,"buttons":0}', CloseCode.PROTOCOL_ERROR),
        ('{"t":"ack","seq":0,"seq":1}', CloseCode.PROTOCOL_ERROR),
        ("[1,2,3]", CloseCode.PROTOCOL_ERROR),
        ('{"t":"key",', CloseCode.PROTOCOL_ERROR),
        (b"\xff\xfe\xfd", CloseCode.PROTOCOL_ERROR),
    ],
    ids=["one-byte-over", "unknown-type", "wrong-field-type", "negative", "huge-float",
         "duplicate-key", "not-object", "truncated-json", "binary-after-auth"],
)
async def test_malformed_after_auth_closes_only_that_viewer(
    guarded: RunningHost, good: Connection, spy: SpyInjector, payload: str | bytes, code: int
) -> None:
    ws = await _raw(guarded)
    await ws.send(_auth(json.loads(await ws.recv())))
    assert json.loads(await ws.recv())["t"] == "welcome"
    await ws.send(payload)
    assert await _close_code(ws) == code
    await _still_serving(guarded, good)
    assert spy.calls == []


async def test_bad_utf8_text_frame(guarded: RunningHost, good: Connection) -> None:
    """A text frame that is not UTF-8 is refused by the websocket layer (1007)."""
    ws = await _raw(guarded)
    await ws.recv()
    # Bypass websockets' own encoding: write a raw text frame with invalid UTF-8.
    from websockets.frames import Frame, Opcode

    ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xc3\x28"))
    ws.send_data()
    code = await _close_code(ws)
    assert code in (1007, CloseCode.PROTOCOL_ERROR)
    await _still_serving(guarded, good)


# --- policy ---------------------------------------------------------------------------------


async def test_view_only_viewer_input_never_reaches_the_display(
    xvfb: Xvfb, host_factory: HostFactory, spy: SpyInjector
) -> None:
    host = host_factory(xvfb.display, credentials=ViewCredentials(),
                        injector=lambda display: spy)
    conn = await _viewer(host)
    try:
        assert conn.role == "view"
        for i in range(50):
            await conn.pointer(i, i, 1)
            await conn.key(0x61, True)
            await conn.key(0x61, False)
            await conn.wheel(1, 1, 0, 1)
        answer = await conn.sync()
        assert not answer.ok
        await conn.refresh()
        await conn.wait_exact(30)
        assert spy.calls == []
    finally:
        await conn.close()


# --- resources ------------------------------------------------------------------------------


def _resources(host: RunningHost) -> tuple[int, int]:
    async def tasks() -> int:
        return len(asyncio.all_tasks())

    return host.call(tasks()), len(os.listdir("/proc/self/fd"))


async def test_connect_close_cycles_do_not_leak(guarded: RunningHost, good: Connection) -> None:
    _fast_throttle(guarded, limit=10**6)
    for _ in range(10):  # warm up caches and pools
        await _wrong_password(guarded)
    gc.collect()
    tasks_before, fds_before = _resources(guarded)
    tracemalloc.start()
    try:
        snapshot_before = tracemalloc.get_traced_memory()[0]
        for i in range(200):
            if i % 2:
                ws = await _raw(guarded)
                await ws.recv()
                await ws.close()
            else:
                _reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
                writer.close()
        await asyncio.sleep(1)
        for _ in range(100):
            tasks_after, fds_after = _resources(guarded)
            if tasks_after <= tasks_before + 2 and fds_after <= fds_before + 4:
                break
            await asyncio.sleep(0.1)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - snapshot_before
    finally:
        tracemalloc.stop()
    assert tasks_after <= tasks_before + 2, (tasks_before, tasks_after)
    assert fds_after <= fds_before + 4, (fds_before, fds_after)
    assert grown < 20 * 1024 * 1024, grown  # generous: no per-connection growth
    await _still_serving(guarded, good)


async def test_viewer_that_never_answers_pings_is_dropped(guarded: RunningHost,
                                                          good: Connection) -> None:
    """A silent peer: it authenticates, then never reads or pongs. The host must not keep it
    (nor its tasks) forever; the websocket keepalive or stall timeout ends it."""
    raw = socket.create_connection(("127.0.0.1", guarded.port))
    ctx = client_ssl_context()
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    tls.sendall(
        b"GET /rdesk HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    tls.settimeout(15)
    assert b"101" in tls.recv(4096).split(b"\r\n", 1)[0]
    # ...and now say nothing at all: the handshake deadline must end it.
    tls.settimeout(60)
    data = b""
    try:
        while chunk := tls.recv(65536):
            data += chunk
    except (OSError, ssl.SSLError):
        pass
    tls.close()
    assert data  # at least a close frame came before the host hung up
    await _still_serving(guarded, good)


async def test_exception_in_one_session_closes_only_it(guarded: RunningHost, good: Connection,
                                                       spy: SpyInjector) -> None:
    victim = await _viewer(guarded)
    # The host files the viewer just after its Welcome is written (on the host's own thread).
    for _ in range(500):
        conn = guarded.server.viewers.get(victim.viewer_id)
        if conn is not None:
            break
        await asyncio.sleep(0.01)
    assert conn is not None

    async def explode(message: Any) -> None:
        raise RuntimeError("injected bug")

    conn._input = explode  # type: ignore[method-assign]
    await victim.pointer(5, 5)
    lost = await asyncio.wait_for(victim.closed, 15)
    assert lost.code == CloseCode.INTERNAL_ERROR
    assert "injected bug" not in str(lost)  # no exception text leaks
    await _still_serving(guarded, good)


# --- a hostile host -------------------------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack("!I", len(ihdr)) + chunk
            + struct.pack("!I", zlib.crc32(chunk)) + b"\x00" * 64)


@pytest.mark.parametrize("size", [(60000, 60000), (65535, 1), (1, 65535), (17, 16)])
def test_viewer_refuses_enormous_declared_image(size: tuple[int, int]) -> None:
    rect = Rect(0, 0, 16, 16, Encoding.PNG, _png_header(*size))
    with pytest.raises(RemoteProtocolError):
        decode_image(rect)


def test_viewer_refuses_image_bomb_quickly() -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4000, 4000)).save(buffer, format="PNG")  # small file, large pixels
    with pytest.raises(RemoteProtocolError):
        decode_image(Rect(0, 0, 64, 64, Encoding.PNG, buffer.getvalue()))


async def test_unreachable_port_is_a_clean_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectError):
        await connect(f"wss://127.0.0.1:{port}", PASSWORD, known_hosts=None,
                      pinned="SHA256:" + "A" * 43, timeout=5)
