"""The few ``bpf(2)`` calls the kernel splicer needs, through ctypes (no libbpf, no compiler).

A ``BPF_MAP_TYPE_SOCKHASH`` (key: a socket's cookie, u64; value: the peer socket), two hash
maps of credit (``usage[cookie] = {redirected, passing}``, written only by the program;
``limits[cookie] = {queued, base}``, written only by the relay), a ring buffer of *signals*
(cookies, read by the relay: :class:`Signals`) and one hand-assembled
``BPF_PROG_TYPE_SK_SKB`` program attached to the sockhash as ``BPF_SK_SKB_VERDICT``::

    if skb->len == 0: return SK_DROP                  # a bare FIN: nothing to carry
    key = bpf_get_socket_cookie(skb)                  # the socket this skb arrived on
    u = usage[key]
    if u and u.passing: return SK_PASS                # handed to the relay's copier
    l, peer = limits[key], sockhash[key]              # peer: a reference, released below
    if u and l and peer:
        acked = bpf_skc_to_tcp_sock(peer)->bytes_acked - l.base
        if u.redirected + skb->len - acked > l.queued:  # out of credit: the relay takes over
            u.passing = 1; signal(key); return SK_PASS
        u.redirected += skb->len
    return bpf_sk_redirect_hash(skb, map, &key, 0)    # out of the socket stored at key

so whatever arrives on a socket in the map leaves through the socket stored under that
socket's cookie while less than ``queued`` of it is unacknowledged by the peer's peer, and
the relay hears of a socket only when it ran out (``signal`` is ``bpf_ringbuf_output`` with a
forced wakeup: the ring's descriptor turns readable). A socket signals once, so a ring of
:func:`ring_size` never drops one. ``bytes_acked``'s place in ``struct tcp_sock`` is read from
the kernel's BTF (:func:`member_offset`; the verifier checks it against the same). The
verdict for one socket runs under that socket's lock: ``usage`` needs no atomics. The
constants are those of ``/usr/include/linux/bpf.h`` (uapi, stable).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import mmap
import os
import socket
import struct
from pathlib import Path

__all__ = ["BpfError", "Signals", "SockHash", "member_offset", "ring_size", "socket_cookie"]

# enum bpf_cmd
_MAP_CREATE, _MAP_UPDATE_ELEM, _MAP_DELETE_ELEM, _PROG_LOAD = 0, 2, 3, 5
_PROG_ATTACH, _PROG_DETACH = 8, 9
_MAP_TYPE_SOCKHASH = 18  # enum bpf_map_type
_PROG_TYPE_SK_SKB = 14  # enum bpf_prog_type
SK_SKB_VERDICT = 38  # enum bpf_attach_type
_FUNC_MAP_LOOKUP_ELEM, _FUNC_GET_SOCKET_COOKIE, _FUNC_SK_REDIRECT_HASH = 1, 46, 72  # bpf_func_id
_FUNC_RINGBUF_OUTPUT, _FUNC_SK_RELEASE, _FUNC_SKC_TO_TCP_SOCK = 130, 86, 137
_MAP_TYPE_HASH, _MAP_TYPE_RINGBUF = 1, 27
_RB_FORCE_WAKEUP = 2
_RINGBUF_BUSY, _RINGBUF_DISCARD, _RINGBUF_HDR = 1 << 31, 1 << 30, 8
_MAP_LOOKUP_ELEM = 1
_SK_PASS = 1
_PSEUDO_MAP_FD = 1
_ATTR_SIZE = 144  # sizeof(union bpf_attr) in this uapi; the kernel wants the tail zeroed
#: ``SO_COOKIE`` (asm-generic/socket.h; the same on every Linux architecture).
SO_COOKIE = 57
#: ``bpf`` syscall numbers (asm/unistd.h of each architecture).
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "i686": 357, "armv7l": 386,
            "ppc64le": 361, "s390x": 351, "loongarch64": 280}


class BpfError(OSError):
    """A ``bpf(2)`` call failed; ``str()`` is one line naming the call."""

    def __str__(self) -> str:
        return str(self.strerror)


_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: bytes, what: str) -> int:
    number = _SYS_BPF.get(os.uname().machine)
    if number is None:
        raise BpfError(0, f"bpf: no syscall number known for {os.uname().machine}")
    buf = ctypes.create_string_buffer(attr.ljust(_ATTR_SIZE, b"\0"), _ATTR_SIZE)
    result = _libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), buf,
                           ctypes.c_uint(_ATTR_SIZE))
    if result < 0:
        err = ctypes.get_errno()
        raise BpfError(err, f"bpf {what}: {os.strerror(err)}")
    return int(result)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One eBPF instruction: opcode, dst/src registers (4 bits each), offset, immediate."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


#: An instruction for :func:`_assemble`: (code, dst, src, off or a label to jump to, imm).
_Op = tuple[int, int, int, "int | str", int]


def _assemble(ops: list[_Op | str]) -> bytes:
    """Instructions and labels (a ``str``) into code: a jump's label becomes its offset. A
    ``ld_imm64`` (opcode 0x18) takes two slots."""
    where, slot = {}, 0
    for op in ops:
        if isinstance(op, str):
            where[op] = slot
        else:
            slot += 2 if op[0] == 0x18 else 1
    code, slot = [], 0
    for op in ops:
        if isinstance(op, str):
            continue
        kind, dst, src, off, imm = op
        size = 2 if kind == 0x18 else 1
        jump = where[off] - (slot + 1) if isinstance(off, str) else off
        code.append(_insn(kind, dst, src, jump, imm) + (_insn(0) if size == 2 else b""))
        slot += size
    return b"".join(code)


def _verdict_program(map_fd: int, usage_fd: int, limits_fd: int, signals_fd: int,
                     acked_at: int) -> bytes:
    """The verdict program (see the module docstring), with its four maps' descriptors and
    where ``bytes_acked`` is in this kernel's ``struct tcp_sock``."""
    mov64_reg, mov64_imm, add64_imm, add64_reg, sub64_reg = 0xBF, 0xB7, 0x07, 0x0F, 0x1F
    call, exit_, ja = 0x85, 0x95, 0x05
    ldx_w, ldx_dw, stx_dw, ld_imm64 = 0x61, 0x79, 0x7B, 0x18
    jeq_imm, jne_imm, jgt_reg = 0x15, 0x55, 0x2D

    def load_map(dst: int, fd: int) -> list[_Op | str]:
        return [(ld_imm64, dst, _PSEUDO_MAP_FD, 0, fd)]

    def key_arg(dst: int) -> list[_Op | str]:  # dst = &key (fp - 8)
        return [(mov64_reg, dst, 10, 0, 0), (add64_imm, dst, 0, 0, -8)]

    return _assemble([
        # an empty skb (the one carrying a FIN) is not sent on: the peer's psock would take
        # its zero-byte send for a broken pipe and stop sending to that socket.
        (ldx_w, 2, 1, 0, 0),  # r2 = skb->len
        (jeq_imm, 2, 0, "drop", 0),
        (mov64_reg, 6, 1, 0, 0),  # r6 = skb
        (mov64_reg, 7, 2, 0, 0),  # r7 = len
        (call, 0, 0, 0, _FUNC_GET_SOCKET_COOKIE),  # r0 = cookie(skb's socket)
        (stx_dw, 10, 0, -8, 0),  # key = r0
        *load_map(1, usage_fd), *key_arg(2),
        (call, 0, 0, 0, _FUNC_MAP_LOOKUP_ELEM),  # r0 = &usage[key]
        (jeq_imm, 0, 0, "redirect", 0),
        (mov64_reg, 8, 0, 0, 0),  # r8 = &usage[key]
        (ldx_dw, 3, 8, 8, 0),  # usage.passing: handed over
        (jne_imm, 3, 0, "pass", 0),
        *load_map(1, limits_fd), *key_arg(2),
        (call, 0, 0, 0, _FUNC_MAP_LOOKUP_ELEM),  # r0 = &limits[key]
        (jeq_imm, 0, 0, "redirect", 0),
        (ldx_dw, 3, 0, 0, 0),  # fp-16 = limits.queued
        (stx_dw, 10, 3, -16, 0),
        (ldx_dw, 3, 0, 8, 0),  # fp-24 = limits.base
        (stx_dw, 10, 3, -24, 0),
        *load_map(1, map_fd), *key_arg(2),
        (call, 0, 0, 0, _FUNC_MAP_LOOKUP_ELEM),  # r0 = the peer (a reference) or NULL
        (jeq_imm, 0, 0, "redirect", 0),
        (mov64_reg, 9, 0, 0, 0),  # r9 = peer
        (mov64_reg, 1, 0, 0, 0),
        (call, 0, 0, 0, _FUNC_SKC_TO_TCP_SOCK),  # r0 = its tcp_sock or NULL
        (jeq_imm, 0, 0, "release", 0),
        (ldx_dw, 3, 0, acked_at, 0),  # fp-32 = peer->bytes_acked
        (stx_dw, 10, 3, -32, 0),
        (mov64_reg, 1, 9, 0, 0),
        (call, 0, 0, 0, _FUNC_SK_RELEASE),
        (ldx_dw, 3, 8, 0, 0),  # r3 = usage.redirected + len
        (add64_reg, 3, 7, 0, 0),
        (ldx_dw, 4, 10, -32, 0),  # r4 = peer's acked since the join
        (ldx_dw, 5, 10, -24, 0),
        (sub64_reg, 4, 5, 0, 0),
        (mov64_reg, 5, 3, 0, 0),  # r5 = in flight with this segment
        (sub64_reg, 5, 4, 0, 0),
        (ldx_dw, 4, 10, -16, 0),
        (jgt_reg, 5, 4, "demote", 0),
        (stx_dw, 8, 3, 0, 0),  # usage.redirected = r3
        (ja, 0, 0, "redirect", 0),
        "release",
        (mov64_reg, 1, 9, 0, 0),
        (call, 0, 0, 0, _FUNC_SK_RELEASE),
        (ja, 0, 0, "redirect", 0),
        "demote",
        (mov64_imm, 3, 0, 0, 1),  # usage.passing = 1, for good
        (stx_dw, 8, 3, 8, 0),
        *load_map(1, signals_fd), *key_arg(2),  # signals.output(&key, 8): the relay wakes
        (mov64_imm, 3, 0, 0, 8),
        (mov64_imm, 4, 0, 0, _RB_FORCE_WAKEUP),
        (call, 0, 0, 0, _FUNC_RINGBUF_OUTPUT),
        "pass",
        (mov64_imm, 0, 0, 0, _SK_PASS),  # to this socket's own queue
        (exit_, 0, 0, 0, 0),
        "redirect",
        (mov64_reg, 1, 6, 0, 0),  # r1 = skb
        *load_map(2, map_fd), *key_arg(3),  # r2 = sockhash, r3 = &key
        (mov64_imm, 4, 0, 0, 0),  # flags 0: out of the peer (egress)
        (call, 0, 0, 0, _FUNC_SK_REDIRECT_HASH),
        (exit_, 0, 0, 0, 0),
        "drop",
        (mov64_imm, 0, 0, 0, 0),  # SK_DROP
        (exit_, 0, 0, 0, 0),
    ])


#: The kernel's own types (BTF), where ``struct tcp_sock``'s fields are.
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
#: Bytes each BTF kind's record has after its 12-byte head, given its ``vlen``
#: (linux/btf.h: int, array, struct, union, enum, func_proto, var, datasec, decl_tag, enum64).
_BTF_TAIL = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8), 14: (4, 0),
             15: (0, 12), 17: (4, 0), 19: (0, 12)}


@functools.cache
def member_offset(struct_name: str, member: str, btf: Path = VMLINUX_BTF) -> int:
    """Byte offset of ``member`` in the kernel's ``struct struct_name``, from its BTF.

    :raises BpfError: when there is no BTF or no such struct or member."""
    try:
        data = btf.read_bytes()
    except OSError as exc:
        raise BpfError(exc.errno or 0, f"no kernel BTF ({btf}: {exc.strerror})") from None
    magic, _, _, head, types, types_len, strings, _ = struct.unpack_from("<HBBIIIII", data)
    if magic != 0xEB9F:
        raise BpfError(0, f"{btf}: not BTF")
    types, strings = head + types, head + strings

    def name(at: int) -> bytes:
        return data[strings + at:data.index(b"\0", strings + at)]

    at, end = types, types + types_len
    while at < end:
        name_at, info, _ = struct.unpack_from("<III", data, at)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if kind == 4 and name(name_at) == struct_name.encode():
            for i in range(vlen):
                m_name, _, m_off = struct.unpack_from("<III", data, at + 12 + 12 * i)
                if name(m_name) == member.encode():
                    return (m_off & 0xFFFFFF if info >> 31 else m_off) // 8
        fixed, each = _BTF_TAIL.get(kind, (0, 0))
        at += 12 + fixed + each * vlen
    raise BpfError(0, f"no {struct_name}.{member} in the kernel's BTF")


def _update(fd: int, key: int, value: bytes) -> None:
    k, v = ctypes.c_uint64(key), ctypes.create_string_buffer(value, len(value))
    _bpf(_MAP_UPDATE_ELEM, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(k),
                                       ctypes.addressof(v), 0), "map update")


def _lookup(fd: int, key: int, size: int) -> bytes:
    k, v = ctypes.c_uint64(key), ctypes.create_string_buffer(size)
    _bpf(_MAP_LOOKUP_ELEM, struct.pack("<IIQQ", fd, 0, ctypes.addressof(k),
                                       ctypes.addressof(v)), "map lookup")
    return v.raw


def socket_cookie(sock: socket.socket) -> int:
    """The kernel's cookie of ``sock`` (``SO_COOKIE``), the key its peer is stored under."""
    raw = sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8)
    return int(struct.unpack("<Q", raw)[0])


def ring_size(max_entries: int) -> int:
    """Bytes of signal ring for ``max_entries`` sockets: one signal of 16 bytes (header and
    cookie) each, rounded up to a power of two pages."""
    size = mmap.PAGESIZE
    while size < 16 * max_entries:
        size *= 2
    return size


class Signals:
    """The program's signal ring, mapped: :meth:`take` returns the cookies written since.

    The ring's descriptor (``fd``) is readable while a signal is unread. One reader only."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size, page = fd, size, mmap.PAGESIZE
        # the consumer's position (ours to write), then the producer's and the data, read-only
        self.consumer = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.data = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                              offset=page)

    def take(self) -> list[int]:
        """The cookies signalled and not yet taken, oldest first."""
        start = position = struct.unpack_from("<Q", self.consumer, 0)[0]
        end = struct.unpack_from("<Q", self.data, 0)[0]
        cookies, page = [], mmap.PAGESIZE
        while position < end:
            at = page + (position & (self.size - 1))
            length = struct.unpack_from("<I", self.data, at)[0]
            if length & _RINGBUF_BUSY:  # being written: the next wakeup brings it
                break
            if not length & _RINGBUF_DISCARD:
                cookies.append(struct.unpack_from("<Q", self.data, at + _RINGBUF_HDR)[0])
            size = length & ~(_RINGBUF_BUSY | _RINGBUF_DISCARD)
            position += (size + _RINGBUF_HDR + 7) & ~7
        if position != start:
            struct.pack_into("<Q", self.consumer, 0, position)
        return cookies

    def close(self) -> None:
        self.consumer.close()
        self.data.close()


class SockHash:
    """A sockhash of ``max_entries`` sockets with the verdict program attached, and its
    :class:`Signals` (``signals``).

    :raises BpfError: when the kernel refuses (no privilege, no sockmap support).
    """

    def __init__(self, max_entries: int) -> None:
        self.map_fd = self.usage_fd = self.limits_fd = self.ring_fd = self.prog_fd = -1
        self.signals: Signals | None = None
        try:
            self.map_fd = _bpf(_MAP_CREATE, struct.pack("<IIIII", _MAP_TYPE_SOCKHASH, 8, 4,
                                                         max_entries, 0), "map create")
            self.usage_fd = _bpf(_MAP_CREATE, struct.pack("<IIIII", _MAP_TYPE_HASH, 8, 16,
                                                           max_entries, 0), "map create")
            self.limits_fd = _bpf(_MAP_CREATE, struct.pack("<IIIII", _MAP_TYPE_HASH, 8, 16,
                                                            max_entries, 0), "map create")
            size = ring_size(max_entries)
            self.ring_fd = _bpf(_MAP_CREATE, struct.pack("<IIIII", _MAP_TYPE_RINGBUF, 0, 0,
                                                          size, 0), "ring create")
            self.signals = Signals(self.ring_fd, size)
            program = _verdict_program(self.map_fd, self.usage_fd, self.limits_fd,
                                       self.ring_fd, member_offset("tcp_sock", "bytes_acked"))
            code = ctypes.create_string_buffer(program, len(program))
            license_ = ctypes.create_string_buffer(b"GPL")
            log = ctypes.create_string_buffer(16384)
            attr = struct.pack("<IIQQIIQ", _PROG_TYPE_SK_SKB, len(program) // 8,
                               ctypes.addressof(code),
                               ctypes.addressof(license_), 1, len(log),
                               ctypes.addressof(log))
            try:
                self.prog_fd = _bpf(_PROG_LOAD, attr, "program load")
            except BpfError as exc:
                # the verifier's reason is the last line before its statistics
                detail = [line for line in log.value.decode(errors="replace").splitlines()
                          if line.strip() and not line.startswith("processed ")]
                hint = (" (reading the peer's TCP state needs CAP_PERFMON)"
                        if detail and "skc_to_tcp_sock" in detail[-1] else "")
                raise BpfError(exc.errno, f"{exc.strerror}"
                               + (f" ({detail[-1]})" if detail else "") + hint) from None
            _bpf(_PROG_ATTACH, struct.pack("<III", self.map_fd, self.prog_fd, SK_SKB_VERDICT),
                 "program attach")
        except BaseException:
            self.close()
            raise

    def put(self, key: int, sock: socket.socket, queued: int, base: int) -> None:
        """Store ``sock`` under ``key`` (adds it to the map: its input now runs the program):
        what arrives on socket ``key`` goes out of ``sock`` while less than ``queued`` bytes of
        it are not acknowledged by ``sock``'s peer, whose ``bytes_acked`` is ``base`` now."""
        _update(self.usage_fd, key, struct.pack("<QQ", 0, 0))
        _update(self.limits_fd, key, struct.pack("<QQ", queued, base))
        _update(self.map_fd, key, struct.pack("<I", sock.fileno()))

    def usage(self, key: int) -> tuple[int, bool]:
        """(bytes redirected from socket ``key``, whether it switched to passing)."""
        redirected, passing = struct.unpack("<QQ", _lookup(self.usage_fd, key, 16))
        return redirected, bool(passing)

    def delete(self, key: int) -> None:
        """Remove what is stored under ``key`` (missing keys are ignored)."""
        for fd in (self.map_fd, self.usage_fd, self.limits_fd):
            k = ctypes.c_uint64(key)
            try:
                _bpf(_MAP_DELETE_ELEM, struct.pack("<IIQ", fd, 0, ctypes.addressof(k)),
                     "map delete")
            except BpfError as exc:
                if exc.errno != 2:  # ENOENT: already gone (the kernel drops closed sockets)
                    raise

    def close(self) -> None:
        """Detach the program, unmap the ring and close every descriptor; idempotent."""
        if self.prog_fd >= 0 and self.map_fd >= 0:
            with contextlib.suppress(BpfError):  # closing the map detaches it as well
                _bpf(_PROG_DETACH, struct.pack("<III", self.map_fd, self.prog_fd,
                                               SK_SKB_VERDICT), "program detach")
        if self.signals is not None:
            self.signals.close()
            self.signals = None
        for name in ("prog_fd", "map_fd", "usage_fd", "limits_fd", "ring_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
