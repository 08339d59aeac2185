"""The few ``bpf(2)`` calls the kernel splicer needs, through ctypes (no libbpf, no compiler).

A ``BPF_MAP_TYPE_SOCKHASH`` (key: a socket's cookie, u64; value: the peer socket), two hash
maps of credit (``usage[cookie] = {redirected, passing}``, written only by the program;
``limits[cookie]``, written only by the relay) and one hand-assembled
``BPF_PROG_TYPE_SK_SKB`` program attached to the sockhash as ``BPF_SK_SKB_VERDICT``::

    if skb->len == 0: return SK_DROP                  # a bare FIN: nothing to carry
    key = bpf_get_socket_cookie(skb)                  # the socket this skb arrived on
    u, l = usage[key], limits[key]
    if u and l:
        if u.passing: return SK_PASS                  # handed to the relay's copier
        if u.redirected + skb->len > l: u.passing = 1; return SK_PASS
        u.redirected += skb->len
    return bpf_sk_redirect_hash(skb, map, &key, 0)    # out of the socket stored at key

so whatever arrives on a socket in the map leaves, in the softirq that received it, through
the socket stored under that socket's cookie, until its credit runs out. The verdict for one
socket runs under that socket's lock: ``usage`` needs no atomics. The constants are those of
``/usr/include/linux/bpf.h`` (uapi, stable).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import struct

__all__ = ["BpfError", "SockHash", "socket_cookie"]

# enum bpf_cmd
_MAP_CREATE, _MAP_UPDATE_ELEM, _MAP_DELETE_ELEM, _PROG_LOAD = 0, 2, 3, 5
_PROG_ATTACH, _PROG_DETACH = 8, 9
_MAP_TYPE_SOCKHASH = 18  # enum bpf_map_type
_PROG_TYPE_SK_SKB = 14  # enum bpf_prog_type
SK_SKB_VERDICT = 38  # enum bpf_attach_type
_FUNC_MAP_LOOKUP_ELEM, _FUNC_GET_SOCKET_COOKIE, _FUNC_SK_REDIRECT_HASH = 1, 46, 72  # bpf_func_id
_MAP_TYPE_HASH = 1
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


def _verdict_program(map_fd: int, usage_fd: int, limits_fd: int) -> bytes:
    """The verdict program (see the module docstring), with its three maps' descriptors."""
    mov64_reg, mov64_imm, add64_imm, add64_reg, call, exit_ = 0xBF, 0xB7, 0x07, 0x0F, 0x85, 0x95
    ldx_w, ldx_dw, stx_dw, ld_imm64 = 0x61, 0x79, 0x7B, 0x18
    jeq_imm, jne_imm, jgt_reg = 0x15, 0x55, 0x2D

    def load_map(dst: int, fd: int) -> list[bytes]:
        return [_insn(ld_imm64, dst=dst, src=_PSEUDO_MAP_FD, imm=fd), _insn(0)]

    def key_arg(dst: int) -> list[bytes]:  # dst = &key (fp - 8)
        return [_insn(mov64_reg, dst=dst, src=10), _insn(add64_imm, dst=dst, imm=-8)]

    return b"".join([
        # 0-1: an empty skb (the one carrying a FIN) is not sent on: the peer's psock would
        # take its zero-byte send for a broken pipe and stop sending to that socket.
        _insn(ldx_w, dst=2, src=1, off=0),  # r2 = skb->len
        _insn(jeq_imm, dst=2, off=36, imm=0),  # if r2 == 0: goto drop (38)
        _insn(mov64_reg, dst=6, src=1),  # 2: r6 = skb
        _insn(mov64_reg, dst=7, src=2),  # 3: r7 = len
        _insn(call, imm=_FUNC_GET_SOCKET_COOKIE),  # 4: r0 = cookie(skb's socket)
        _insn(stx_dw, dst=10, src=0, off=-8),  # 5: key = r0
        *load_map(1, usage_fd), *key_arg(2),  # 6-9
        _insn(call, imm=_FUNC_MAP_LOOKUP_ELEM),  # 10: r0 = &usage[key]
        _insn(jeq_imm, dst=0, off=14, imm=0),  # 11: none: goto redirect (26)
        _insn(mov64_reg, dst=8, src=0),  # 12: r8 = &usage[key]
        *load_map(1, limits_fd), *key_arg(2),  # 13-16
        _insn(call, imm=_FUNC_MAP_LOOKUP_ELEM),  # 17: r0 = &limits[key]
        _insn(jeq_imm, dst=0, off=7, imm=0),  # 18: none: goto redirect (26)
        _insn(ldx_dw, dst=3, src=8, off=8),  # 19: r3 = usage.passing
        _insn(jne_imm, dst=3, off=15, imm=0),  # 20: passing: goto pass (36)
        _insn(ldx_dw, dst=3, src=8, off=0),  # 21: r3 = usage.redirected
        _insn(add64_reg, dst=3, src=7),  # 22: r3 += len
        _insn(ldx_dw, dst=4, src=0, off=0),  # 23: r4 = limit
        _insn(jgt_reg, dst=3, src=4, off=9),  # 24: over the limit: goto demote (34)
        _insn(stx_dw, dst=8, src=3, off=0),  # 25: usage.redirected = r3
        _insn(mov64_reg, dst=1, src=6),  # 26 redirect: r1 = skb
        *load_map(2, map_fd), *key_arg(3),  # 27-30: r2 = sockhash, r3 = &key
        _insn(mov64_imm, dst=4, imm=0),  # 31: flags 0: out of the peer (egress)
        _insn(call, imm=_FUNC_SK_REDIRECT_HASH),  # 32
        _insn(exit_),  # 33
        _insn(mov64_imm, dst=3, imm=1),  # 34 demote: usage.passing = 1, for good
        _insn(stx_dw, dst=8, src=3, off=8),  # 35
        _insn(mov64_imm, dst=0, imm=_SK_PASS),  # 36 pass: to this socket's own queue
        _insn(exit_),  # 37
        _insn(mov64_imm, dst=0, imm=0),  # 38 drop: SK_DROP
        _insn(exit_),  # 39
    ])


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


class SockHash:
    """A sockhash of ``max_entries`` sockets with the verdict program attached.

    :raises BpfError: when the kernel refuses (no privilege, no sockmap support).
    """

    def __init__(self, max_entries: int) -> None:
        self.map_fd = self.usage_fd = self.limits_fd = self.prog_fd = -1
        try:
            self.map_fd = _bpf(_MAP_CREATE, struct.pack("<IIIII", _MAP_TYPE_SOCKHASH, 8, 4,
                                                         max_entries, 0), "map create")
            self.usage_fd = _bpf(_MAP_CREATE, struct.pack("<IIIII", _MAP_TYPE_HASH, 8, 16,
                                                           max_entries, 0), "map create")
            self.limits_fd = _bpf(_MAP_CREATE, struct.pack("<IIIII", _MAP_TYPE_HASH, 8, 8,
                                                            max_entries, 0), "map create")
            program = _verdict_program(self.map_fd, self.usage_fd, self.limits_fd)
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
                detail = log.value.decode(errors="replace").strip().splitlines()
                raise BpfError(exc.errno, f"{exc.strerror}"
                               + (f" ({detail[-1]})" if detail else "")) from None
            _bpf(_PROG_ATTACH, struct.pack("<III", self.map_fd, self.prog_fd, SK_SKB_VERDICT),
                 "program attach")
        except BaseException:
            self.close()
            raise

    def put(self, key: int, sock: socket.socket, limit: int) -> None:
        """Store ``sock`` under ``key`` (adds it to the map: its input now runs the program),
        with ``limit`` bytes that may be redirected from the socket whose cookie is ``key``."""
        _update(self.usage_fd, key, struct.pack("<QQ", 0, 0))
        _update(self.limits_fd, key, struct.pack("<Q", limit))
        _update(self.map_fd, key, struct.pack("<I", sock.fileno()))

    def raise_limit(self, key: int, limit: int) -> None:
        """Let the program redirect up to ``limit`` bytes in all from socket ``key``."""
        _update(self.limits_fd, key, struct.pack("<Q", limit))

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
        """Detach the program and close both descriptors; idempotent."""
        if self.prog_fd >= 0 and self.map_fd >= 0:
            with contextlib.suppress(BpfError):  # closing the map detaches it as well
                _bpf(_PROG_DETACH, struct.pack("<III", self.map_fd, self.prog_fd,
                                               SK_SKB_VERDICT), "program detach")
        for name in ("prog_fd", "map_fd", "usage_fd", "limits_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
