"""The raw splicers with real TCP sockets on 127.0.0.1: both kinds, the same contract.

Each pair is two real loopback connections: the test's "viewer" and "host" sockets on one
end, the relay's two accepted sockets (``a`` and ``b``) joined by the splicer on the other.
The kernel cases are skipped only when :func:`open_splicer` says the kernel splicer is not
available here, with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rdesk.relay.bpf import VMLINUX_BTF, BpfError, member_offset
from rdesk.relay.rawsplice import (
    Keepalive,
    KernelSpliceUnavailable,
    Splicer,
    UserspaceSplicer,
    open_splicer,
)
from rdesk.relay.sockmap import KernelSplicer

MB = 1024 * 1024


@pytest.fixture(params=["userspace", "kernel"])
async def splicer(request: pytest.FixtureRequest) -> AsyncIterator[Splicer]:
    if request.param == "kernel":
        made, reason = open_splicer("auto", max_pairs=1024, close_timeout=5.0)
        if reason is not None:
            made.close()
            pytest.skip(f"kernel splicer unavailable: {reason}")
        assert made.kind == "kernel"
    else:
        made = UserspaceSplicer(max_pairs=1024, close_timeout=5.0)
    try:
        yield made
    finally:
        made.close()


class Pair:
    """The test's two ends (``viewer`` to relay side ``a``, ``host`` to ``b``)."""

    def __init__(self, listener: socket.socket) -> None:
        self.viewer = socket.create_connection(listener.getsockname())
        self.a, _ = listener.accept()
        self.host = socket.create_connection(listener.getsockname())
        self.b, _ = listener.accept()
        for sock in (self.viewer, self.host):
            sock.setblocking(False)

    def close(self) -> None:
        for sock in (self.viewer, self.host, self.a, self.b):
            sock.close()


@pytest.fixture
def listener() -> AsyncIterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    yield sock  # type: ignore[misc]
    sock.close()


async def recv_all(sock: socket.socket, until_eof: bool = True, limit: int = 0) -> bytes:
    """What ``sock`` receives until EOF (or until ``limit`` bytes)."""
    loop = asyncio.get_running_loop()
    out = bytearray()
    while not limit or len(out) < limit:
        chunk = await loop.sock_recv(sock, 256 * 1024)
        if not chunk:
            break
        out += chunk
    return bytes(out)


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_both_ways_at_once_in_order(splicer: Splicer, listener: socket.socket) -> None:
    pair = Pair(listener)
    loop = asyncio.get_running_loop()
    rng = random.Random(14)
    up, down = rng.randbytes(3 * MB), rng.randbytes(2 * MB + 17)
    join = asyncio.create_task(splicer.join(pair.a, pair.b, first_to_a=b"G"))
    assert await loop.sock_recv(pair.viewer, 1) == b"G"  # the go byte comes first

    async def send(sock: socket.socket, data: bytes) -> None:
        i = 0
        while i < len(data):
            step = 1 + rng.randrange(70000)
            await loop.sock_sendall(sock, data[i:i + step])
            i += step
        sock.shutdown(socket.SHUT_WR)

    got_host, got_viewer, _, _ = await asyncio.gather(
        recv_all(pair.host), recv_all(pair.viewer), send(pair.viewer, up),
        send(pair.host, down))
    assert got_host == up and got_viewer == down
    result = await join
    assert (result.a_to_b, result.b_to_a, result.reason[2:]) == (len(up), len(down), "closed")
    assert result.reason in ("a closed", "b closed")
    pair.close()


@pytest.mark.parametrize("closer", ["viewer", "host"])
async def test_no_loss_when_one_side_closes_at_once(splicer: Splicer, listener: socket.socket,
                                                    closer: str) -> None:
    """One side sends 8 MB and closes at once: the other receives all of it, then EOF."""
    pair = Pair(listener)
    loop = asyncio.get_running_loop()
    join = asyncio.create_task(splicer.join(pair.a, pair.b))
    data = random.Random(1).randbytes(8 * MB)
    sender, receiver = (pair.viewer, pair.host) if closer == "viewer" else (pair.host,
                                                                           pair.viewer)
    await asyncio.sleep(0)

    async def send_and_close() -> None:
        await loop.sock_sendall(sender, data)
        sender.close()

    sending = asyncio.create_task(send_and_close())
    await asyncio.sleep(0.3)  # the receiver lags: the end arrives while much is queued
    assert await recv_all(receiver) == data
    await sending
    receiver.close()
    result = await join
    assert result.reason == ("a closed" if closer == "viewer" else "b closed")
    assert (result.a_to_b if closer == "viewer" else result.b_to_a) == 8 * MB


def sockstat_tcp_pages() -> int:
    """The kernel's TCP memory in pages (/proc/net/sockstat)."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1])
    raise AssertionError("no TCP line in /proc/net/sockstat")


async def push_until_stalled(sock: socket.socket, limit: int) -> bytes:
    """Send random bytes on ``sock`` until it takes nothing for 2 s (or ``limit`` bytes);
    what was sent, exactly."""
    loop = asyncio.get_running_loop()
    rng, sent = random.Random(7), bytearray()
    chunk = rng.randbytes(65536)
    while len(sent) < limit:
        try:
            n = sock.send(chunk)
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(sock.fileno(), writable.set_result, None)
            try:
                await asyncio.wait_for(writable, 2.0)
            except TimeoutError:
                break
            finally:
                loop.remove_writer(sock.fileno())
            continue
        sent += chunk[:n]
        chunk = chunk[n:] or rng.randbytes(65536)
    return bytes(sent)


@pytest.mark.parametrize("credit", [1 * MB, 16 * MB])
async def test_a_receiver_that_stops_reading_stalls_its_sender(splicer: Splicer,
                                                               listener: socket.socket,
                                                               credit: int) -> None:
    """The host stops reading: the viewer's sends stall after a bounded amount, and once the
    host reads again it gets every byte in order (the kernel splicer hands that direction to
    its userspace copier once the credit ran out and the kernel's queue drained; with 16 MB
    of credit more is redirected than the host's socket can hold, so the copier must wait)."""
    if isinstance(splicer, KernelSplicer):
        splicer.max_queued = credit
    elif credit != MB:
        pytest.skip("the credit is the kernel splicer's")
    pair = Pair(listener)
    join = asyncio.create_task(splicer.join(pair.a, pair.b))
    await asyncio.sleep(0)
    sent = await push_until_stalled(pair.viewer, 400 * MB)
    assert len(sent) < 48 * MB  # socket buffers, the relay's one read, the kernel's credit
    assert not join.done()
    pair.viewer.shutdown(socket.SHUT_WR)
    assert await recv_all(pair.host) == sent
    pair.host.close()
    result = await asyncio.wait_for(join, 10)
    assert (result.reason, result.a_to_b) == ("a closed", len(sent))
    pair.viewer.close()


async def test_a_bulk_transfer_arrives_whole(splicer: Splicer, listener: socket.socket) -> None:
    """64 MiB one way (16 times the kernel splicer's credit) as fast as the viewer can send
    and the host read: every byte, in order, and the pair ends cleanly. On loopback one send
    can land 5 MiB before the relay runs, so the kernel splicer may hand the direction over;
    either way no byte waits for a timer (there is none: a lost signal would hang here)."""
    pair = Pair(listener)
    loop = asyncio.get_running_loop()
    data = random.Random(64).randbytes(64 * MB)
    join = asyncio.create_task(splicer.join(pair.a, pair.b))
    await asyncio.sleep(0)

    async def send() -> None:
        await loop.sock_sendall(pair.viewer, data)
        pair.viewer.shutdown(socket.SHUT_WR)

    got, _ = await asyncio.gather(recv_all(pair.host), send())
    assert got == data
    pair.host.close()
    result = await join
    assert (result.reason, result.a_to_b) == ("a closed", 64 * MB)
    pair.close()


@pytest.mark.parametrize("paced", [True, False])
async def test_the_kernels_credit_follows_what_the_host_acknowledged(
        listener: socket.socket, paced: bool) -> None:
    """64 MiB, 16 times the kernel splicer's credit, to a host that reads all it gets stays
    in the kernel: the program measures its credit against what the host's side acknowledged
    (no timer, no hand-over), and its count is exact. Paced: 512 KiB at a time, the host
    having each before the next (``in flight`` never nears the credit, so this holds on a
    loaded machine too); else as fast as the viewer can send, where only a host side slower
    than 4 MiB of backlog would take it out of the kernel (so that is not asserted)."""
    made, reason = open_splicer("auto")
    if reason is not None:
        pytest.skip(f"kernel splicer unavailable: {reason}")
    assert isinstance(made, KernelSplicer)
    pair = Pair(listener)
    loop = asyncio.get_running_loop()
    data = random.Random(65).randbytes(64 * MB)
    join = asyncio.create_task(made.join(pair.a, pair.b))
    await asyncio.sleep(0)
    joined = next(iter(made.pairs))
    got = bytearray()
    if paced:
        for at in range(0, len(data), 512 * 1024):
            step = data[at:at + 512 * 1024]
            await loop.sock_sendall(pair.viewer, step)
            got += await recv_all(pair.host, limit=len(step))  # nothing more was sent
    else:
        got += (await asyncio.gather(recv_all(pair.host, limit=len(data)),
                                     loop.sock_sendall(pair.viewer, data)))[0]
    assert got == data
    if paced:
        assert joined.copiers == [None, None] and joined.redirected == [None, None]
        assert made.map.usage(joined.keys[0]) == (64 * MB, False)
    pair.viewer.shutdown(socket.SHUT_WR)
    assert await recv_all(pair.host) == b""
    made.close()
    assert (await join).reason == "splicer closed"
    pair.close()


async def test_cancel_closes_both(splicer: Splicer, listener: socket.socket) -> None:
    pair = Pair(listener)
    before = fds()
    join = asyncio.create_task(splicer.join(pair.a, pair.b))
    await asyncio.sleep(0.05)
    join.cancel()
    with pytest.raises(asyncio.CancelledError):
        await join
    assert await recv_all(pair.viewer) == b"" and await recv_all(pair.host) == b""
    assert fds() == before - 2  # a and b closed
    for sock in (pair.viewer, pair.host):
        sock.close()


async def test_a_reset_ends_the_pair(splicer: Splicer, listener: socket.socket) -> None:
    pair = Pair(listener)
    loop = asyncio.get_running_loop()
    join = asyncio.create_task(splicer.join(pair.a, pair.b, first_to_a=b"G"))
    assert await loop.sock_recv(pair.viewer, 1) == b"G"
    await loop.sock_sendall(pair.viewer, b"hello")
    assert await recv_all(pair.host, limit=5) == b"hello"
    pair.viewer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    pair.viewer.close()
    result = await asyncio.wait_for(join, 10)
    assert result.reason == "a reset" and result.a_to_b == 5
    with contextlib.suppress(ConnectionResetError):
        assert await recv_all(pair.host) == b""
    pair.host.close()


async def test_keepalive_is_set_on_both(splicer: Splicer, listener: socket.socket) -> None:
    pair = Pair(listener)
    join = asyncio.create_task(splicer.join(pair.a, pair.b))
    await asyncio.sleep(0.05)
    expected = Keepalive()
    for sock in (pair.a, pair.b):
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert (sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)) == (
                    expected.idle, expected.interval, expected.count)
    pair.viewer.close()
    pair.host.close()
    await asyncio.wait_for(join, 10)


async def test_500_pairs_at_once_and_no_descriptor_left(splicer: Splicer,
                                                        listener: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    before = fds()
    pairs = [Pair(listener) for _ in range(500)]
    joins = [asyncio.create_task(splicer.join(p.a, p.b, first_to_a=b"G")) for p in pairs]

    async def talk(i: int, p: Pair) -> None:
        assert await loop.sock_recv(p.viewer, 1) == b"G"
        ask, answer = b"%05d" % i * 19, b"%05d" % i * 32  # 95 and 160 bytes
        await loop.sock_sendall(p.viewer, ask)
        assert await recv_all(p.host, limit=len(ask)) == ask
        await loop.sock_sendall(p.host, answer)
        assert await recv_all(p.viewer, limit=len(answer)) == answer
        p.viewer.close()
        assert await recv_all(p.host) == b""
        p.host.close()

    await asyncio.gather(*(talk(i, p) for i, p in enumerate(pairs)))
    results = await asyncio.wait_for(asyncio.gather(*joins), 30)
    assert all(r.reason == "a closed" and (r.a_to_b, r.b_to_a) == (95, 160) for r in results)
    assert fds() == before


async def test_full_splicer_refuses_and_closes(listener: socket.socket) -> None:
    splicer = UserspaceSplicer(max_pairs=1)
    first, second = Pair(listener), Pair(listener)
    join = asyncio.create_task(splicer.join(first.a, first.b))
    await asyncio.sleep(0)
    result = await splicer.join(second.a, second.b)
    assert result.reason == "splicer full"
    assert second.a.fileno() == -1 and second.b.fileno() == -1
    splicer.close()
    assert (await join).reason == "splicer closed"
    first.close()
    second.close()


def test_without_privilege_the_userspace_one_and_the_reason() -> None:
    """In a user namespace (root there, no CAP_BPF in the real one) BPF is refused: ``auto``
    comes back with the userspace splicer and a one-line reason; ``kernel`` refuses with it."""
    code = ("from rdesk.relay.rawsplice import open_splicer\n"
            "s, reason = open_splicer('auto')\nprint(s.kind)\nprint(reason)\n"
            "try:\n    open_splicer('kernel')\nexcept Exception as exc:\n    print(exc)\n")
    try:
        out = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c",
                              code], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no user namespace here: {exc}")
    kind, reason, forced = out.stdout.splitlines()
    assert kind == "userspace"
    assert reason == forced == ("bpf map create: Operation not permitted "
                                "(needs CAP_BPF and CAP_NET_ADMIN)")


def test_auto_is_the_kernel_splicer_as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("not root")
    made, reason = open_splicer()
    try:
        assert (made.kind, reason) == ("kernel", None)
    finally:
        made.close()


def _refuses(**_: object) -> Splicer:
    raise KernelSpliceUnavailable("bpf map create: Operation not permitted")


def test_the_choice_of_splicer() -> None:
    """``auto`` falls back with the kernel's reason, ``kernel`` refuses with it, ``userspace``
    never tries, anything else is an error."""
    made, reason = open_splicer("auto", kernel=_refuses)
    assert (made.kind, reason) == ("userspace", "bpf map create: Operation not permitted")
    with pytest.raises(KernelSpliceUnavailable, match=r"^bpf map create: Operation not"):
        open_splicer("kernel", kernel=_refuses)
    made, reason = open_splicer("userspace", kernel=_refuses)
    assert (made.kind, reason) == ("userspace", None)
    made, reason = open_splicer("kernel", kernel=lambda **kw: UserspaceSplicer(**kw))
    assert (made.kind, reason) == ("userspace", None)  # what the maker made
    with pytest.raises(ValueError, match="unknown splicer 'fast'"):
        open_splicer("fast")


async def test_kernel_splicer_close_frees_everything(listener: socket.socket) -> None:
    """Closing the kernel splicer ends its pairs and closes the map, the program and its
    epoll set: no descriptor is left (twice, so a leak would show)."""
    before = fds()
    for _ in range(2):
        made, reason = open_splicer("auto")
        if reason is not None:
            pytest.skip(f"kernel splicer unavailable: {reason}")
        pair = Pair(listener)
        join = asyncio.create_task(made.join(pair.a, pair.b, first_to_a=b"G"))
        assert await asyncio.get_running_loop().sock_recv(pair.viewer, 1) == b"G"
        made.close()
        made.close()  # idempotent
        assert (await join).reason == "splicer closed"
        pair.close()
    assert fds() == before


def test_member_offsets_come_from_the_kernels_btf(tmp_path: Path) -> None:
    """``bytes_acked`` is found in the running kernel's BTF (where the verifier checks the
    program's read against it); a missing file or member is a one-line BpfError."""
    if not VMLINUX_BTF.exists():
        pytest.skip("no kernel BTF here")
    at = member_offset("tcp_sock", "bytes_acked")
    assert 0 < at < 8192 and at % 8 == 0
    with pytest.raises(BpfError, match=r"^no tcp_sock\.no_such_field in the kernel's BTF$"):
        member_offset("tcp_sock", "no_such_field")
    with pytest.raises(BpfError, match=r"^no kernel BTF \(.*: No such file or directory\)$"):
        member_offset("tcp_sock", "bytes_acked", tmp_path / "nothing")
    (tmp_path / "junk").write_bytes(b"\0" * 64)
    with pytest.raises(BpfError, match="not BTF"):
        member_offset("tcp_sock", "bytes_acked", tmp_path / "junk")
