"""Issue 20, unauthenticated denial of service: connection caps at accept time, memory after
a flood, and authentication in its own pool (wrong guesses must not freeze other viewers).

Floods are bounded and stay on 127.0.0.x; the tests count events and bytes, never times.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import itertools
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from rdesk.client.connection import connect
from rdesk.client.tls import client_ssl_context
from rdesk.host.security.throttle import AuthThrottle, GlobalThrottle
from rdesk.protocol import CloseCode, limits
from rdesk.protocol.messages import PROTOCOL_VERSION
from tests.e2e.conftest import PASSWORD, RunningHost
from tests.e2e.pacedpaint import paint_and_count
from tests.xserver import Painter, Xvfb

HostFactory = Callable[..., RunningHost]

#: Sockets the flood opens (bounded; all from one address).
FLOOD = 300

# The flood runs in its own process so the host's memory (this process) is measured alone.
# Each socket completes what TLS it can, then sends half an HTTP request and waits: a
# slow-header (slowloris) client. It prints how many got through the TLS handshake.
_FLOOD_SCRIPT = textwrap.dedent("""
    import socket, ssl, sys
    port, count, local = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    held, tls = [], 0
    for _ in range(count):
        raw = socket.socket()
        raw.settimeout(10)
        raw.bind((local, 0))
        try:
            raw.connect(("127.0.0.1", port))
            conn = ctx.wrap_socket(raw)
            conn.sendall(b"GET /rdesk HTTP/1.1\\r\\nHost: x\\r\\n")
            tls += 1
            held.append(conn)
        except OSError:
            raw.close()
    print(tls, flush=True)
    sys.stdin.readline()  # hold every socket until told to let go
""")


def _rss() -> int:
    """This process's resident set size in bytes, from /proc, after glibc returned the heap's
    free pages to the system (``malloc_trim``): what is still resident is what is still in use,
    not the allocator's high-water mark."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _fd_count() -> int:
    """How many descriptors this process holds open."""
    return len(os.listdir("/proc/self/fd"))


async def _viewer_gets_a_frame(host: RunningHost) -> None:
    conn = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
    try:
        await conn.wait_exact(30)
    finally:
        await conn.close()


async def test_slow_header_flood_is_capped_at_accept_and_memory_returns(
    xvfb: Xvfb, host_factory: HostFactory
) -> None:
    host = host_factory(xvfb.display)
    for _ in range(3):  # warm up: pools, caches, the first TLS contexts
        await _viewer_gets_a_frame(host)
    gc.collect()
    before = _rss()
    flood = subprocess.Popen(
        [sys.executable, "-c", _FLOOD_SCRIPT, str(host.port), str(FLOOD), "127.0.0.2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert flood.stdout is not None and flood.stdin is not None
        line = await asyncio.to_thread(flood.stdout.readline)
        through = int(line)
        # Only the per-source cap's worth got as far as a TLS handshake; the rest were reset
        # at accept, before the host spent a TLS buffer on them.
        per_source = host.server.settings.max_handshakes_per_source
        assert through <= per_source, (through, per_source)
        assert host.server.gate.refused >= FLOOD - per_source
        # A real viewer from another address still gets in and gets a frame meanwhile.
        await _viewer_gets_a_frame(host)
        during = _rss()
        flood.stdin.write("\n")
        flood.stdin.flush()
    finally:
        flood.communicate(timeout=60)
    # Once the flood is gone its connections are given back and their memory with them.
    for _ in range(200):
        if host.server.gate.count() == 0:
            break
        await asyncio.sleep(0.05)
    assert host.server.gate.count() == 0
    await _viewer_gets_a_frame(host)
    after = _rss()
    tolerance = 24 * 1024 * 1024  # a few TLS buffers and allocator slack, not 300 of them
    assert during - before < tolerance, (before, during)
    assert after - before < tolerance, (before, after)


# --- wrong guesses must not freeze other viewers ---------------------------------------------

#: The parallel guessers of the second phase.
GUESSERS = 16


async def _guess_until(host: RunningHost, local: str, stop: asyncio.Event) -> int:
    """Wrong guesses from ``local``, one after another, until ``stop``; how many were answered."""
    guesses = 0
    while not stop.is_set():
        ws = await ws_connect(host.url + "/rdesk", ssl=client_ssl_context(), compression=None,
                              local_addr=(local, 0))
        try:
            hello = json.loads(await ws.recv())
            await ws.send(json.dumps({
                "t": "auth", "version": PROTOCOL_VERSION, "nonce": hello["nonce"],
                "method": "password", "secret": "wrong guess", "name": "guesser"}))
            while True:  # the host's Close message, then the websocket close
                await asyncio.wait_for(ws.recv(), 60)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == CloseCode.AUTH_FAILED
            guesses += 1
        finally:
            await ws.close()
    return guesses


def _fast_penalties(host: RunningHost) -> None:
    async def install() -> None:
        host.server.throttle = AuthThrottle(
            base=0.001, ceiling=0.01, global_throttle=GlobalThrottle(limit=10**6))

    host.call(install())


async def test_parallel_wrong_guesses_do_not_freeze_a_watcher(
    xvfb: Xvfb, host_factory: HostFactory
) -> None:
    # No per-source delay to speak of and sixteen sources: every guess costs a hash at once.
    host = host_factory(xvfb.display)
    _fast_penalties(host)
    with Painter(xvfb.display, dump=False) as painter:
        watcher = await connect(host.url, PASSWORD, known_hosts=None, pinned=host.fingerprint)
        try:
            await watcher.wait_exact(30)
            quiet = await paint_and_count(painter, watcher)
            stop = asyncio.Event()
            guessers = [asyncio.create_task(_guess_until(host, f"127.0.0.{2 + i}", stop))
                        for i in range(GUESSERS)]
            try:
                await watcher.wait_for(lambda: host.server.auth_attempts >= GUESSERS, 60)
                attacked = await paint_and_count(painter, watcher)
            finally:
                stop.set()
                guesses = sum(await asyncio.gather(*guessers))
        finally:
            await watcher.close()
    assert guesses >= GUESSERS  # the guessing really ran through the attacked phase
    # The watcher kept getting updates while the host hashed wrong guesses.
    assert attacked >= quiet // 2, (quiet, attacked, guesses)


def _tls_handshake(port: int, local: str, context: ssl.SSLContext) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=15,
                                  source_address=(local, 0)) as raw:
        context.wrap_socket(raw).close()


async def test_plaintext_garbage_and_tls_alerts_on_the_tls_port_leave_their_reason(
    xvfb: Xvfb, host_factory: HostFactory
) -> None:
    host = host_factory(xvfb.display)
    seen = host.record_events()
    for local, garbage in (("127.0.0.3", b"GET /rdesk HTTP/1.1\r\nHost: x\r\n\r\n"),
                           ("127.0.0.4", b"\x16\x03\x01\x00\x05hello"),
                           ("127.0.0.8", b"")):  # silent: connects and closes
        reader, writer = await asyncio.open_connection("127.0.0.1", host.port,
                                                       local_addr=(local, 0))
        if garbage:
            writer.write(garbage)
            await writer.drain()
            await asyncio.wait_for(reader.read(65536), 15)  # the host closes
        writer.close()
    # A TLS 1.2 client (the host speaks 1.3 only), and one that refuses the host's
    # self-signed certificate with an alert (it trusts only the system's CAs).
    old_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old_tls.check_hostname, old_tls.verify_mode = False, ssl.CERT_NONE
    old_tls.maximum_version = ssl.TLSVersion.TLSv1_2
    refusing = ssl.create_default_context()
    refusing.check_hostname = False
    for local, context in (("127.0.0.6", old_tls), ("127.0.0.7", refusing)):
        # A blocking socket, as browsers and most clients use: OpenSSL writes its alert to
        # the socket before the failure returns (asyncio's client drops it unsent).
        with pytest.raises(OSError):  # the SSLError of the refusal (or the host's reset)
            await asyncio.to_thread(_tls_handshake, host.port, local, context)
    await _viewer_gets_a_frame(host)  # a real login leaves no such line
    for _ in range(200):
        if len([k for k, _ in seen if k == "rejected"]) >= 5:
            break
        await asyncio.sleep(0.05)
    rejected = sorted((f["source"], f["reason"]) for kind, f in seen if kind == "rejected")
    assert rejected == [("127.0.0.3", "TLS handshake failed: HTTP_REQUEST"),
                        ("127.0.0.4", "TLS handshake failed: UNEXPECTED_MESSAGE"),
                        ("127.0.0.6", "TLS handshake failed: UNSUPPORTED_PROTOCOL"),
                        ("127.0.0.7", "TLS handshake failed: TLSV1_ALERT_UNKNOWN_CA"),
                        ("127.0.0.8", "handshake not completed")]


async def test_websocket_layer_refusals_are_audited_as_what_they_are(
    xvfb: Xvfb, host_factory: HostFactory
) -> None:
    host = host_factory(xvfb.display)
    seen = host.record_events()
    # Over the websocket's own limit (the largest message a viewer may send, an upload's
    # chunk): refused by the websocket layer; a text message over the control limit but under
    # that one: refused by the codec. Both close with 1009 and leave one line with the code.
    for address, message in (("127.0.0.5", b"x" * (limits.MAX_VIEWER_MESSAGE + 1)),
                             ("127.0.0.6", "x" * (limits.MAX_CONTROL_MESSAGE + 1))):
        ws = await ws_connect(host.url + "/rdesk", ssl=client_ssl_context(), compression=None,
                              local_addr=(address, 0), max_size=None)
        await ws.recv()  # the hello
        await ws.send(message)  # one byte over the limit
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 15)
        assert ws.close_code == CloseCode.TOO_BIG
    for _ in range(200):
        if sum(kind == "protocol_error" for kind, _ in seen) >= 2:
            break
        await asyncio.sleep(0.05)
    errors = sorted((f for kind, f in seen if kind == "protocol_error"),
                    key=lambda f: str(f["source"]))
    assert errors == [
        {"source": "127.0.0.5", "code": 1009, "reason": "message over the size limit"},
        {"source": "127.0.0.6", "code": 1009,
         "reason": f"control message exceeds {limits.MAX_CONTROL_MESSAGE} bytes"},
    ]


_CYCLES_SCRIPT = textwrap.dedent("""
    import socket, sys
    port, count = int(sys.argv[1]), int(sys.argv[2])
    reset = 0
    for _ in range(count):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.close()
        except ConnectionResetError:  # over the handshake cap: reset at accept
            reset += 1
    print("done", reset, flush=True)
""")


async def _cycle_burst(host: RunningHost, count: int) -> None:
    """``count`` bare TCP connect/close cycles against ``host``, then wait until every admission
    slot is given back and the burst's collection ran, and a viewer still gets a frame."""
    collections = host.server.collections
    cycles = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CYCLES_SCRIPT, str(host.port), str(count),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await cycles.communicate()
    assert out.startswith(b"done"), err.decode()[-400:]
    for _ in range(400):  # every slot given back, and the burst's collection run
        if host.server.gate.count() == 0 and host.server.collections > collections:
            break
        await asyncio.sleep(0.05)
    assert host.server.collections > collections
    await _viewer_gets_a_frame(host)
    assert host.server.gate.count() == 0


async def test_bare_connect_close_cycles_give_their_memory_back(
    xvfb: Xvfb, host_factory: HostFactory
) -> None:
    host = host_factory(xvfb.display)
    for _ in range(3):
        await _viewer_gets_a_frame(host)
    # A leak is what every burst adds once the first one has warmed every cache and pool: the
    # first burst's 24-34 MiB of growth (without malloc_trim) was measured to be glibc keeping
    # freed heap, not live memory. The host runs in this process beside pytest, whose RSS
    # moves by megabytes either way between two bursts late in the whole suite (-8.4 to +1.9
    # MiB measured; in a test run alone 0-0.7 MiB), so RSS bounds only what glibc keeps, over
    # all four bursts; a leak of live Python memory is read from tracemalloc (the host's own
    # allocations and this process's, which between bursts are only the host's): the median of
    # the bursts' increments, which one jump does not move, while a leak of even 1 KiB per
    # cycle adds 2 MiB to every burst (measured: 2.1-2.4 MiB with one put into the accept
    # gate for the measure; without it medians of 18-138 KiB, single bursts -290 to +310).
    # Descriptors and threads come back exactly.
    # No log records while measuring: pytest's capture keeps every record of a test, and
    # under the whole suite's log levels that alone added megabytes (2.7 MiB at DEBUG).
    logging.disable(logging.CRITICAL)
    try:
        await _cycle_burst(host, 2000)
        gc.collect()
        rss, fds, threads = _rss(), _fd_count(), threading.active_count()
        tracemalloc.start()
        traced = [tracemalloc.get_traced_memory()[0]]
        for _ in range(4):
            await _cycle_burst(host, 2000)
            gc.collect()
            traced.append(tracemalloc.get_traced_memory()[0])
        grown = _rss() - rss
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)
    increments = sorted(b - a for a, b in itertools.pairwise(traced))
    median = (increments[1] + increments[2]) // 2
    assert median < 768 * 1024, f"{median >> 10} KiB more per 2000 cycles (median of " \
        f"{[i >> 10 for i in increments]} KiB)"
    assert grown < 24 * 1024 * 1024, f"{grown >> 10} KiB more resident after 8000 cycles"
    assert (_fd_count(), threading.active_count()) == (fds, threads)
