"""The few ``bpf(2)`` calls the kernel splicer needs, through ctypes (no libbpf, no compiler).

A ``BPF_MAP_TYPE_SOCKHASH`` (key: a socket's cookie, u64; value: the peer socket) and one
hand-assembled ``BPF_PROG_TYPE_SK_SKB`` program attached to it as ``BPF_SK_SKB_VERDICT``::

    key = bpf_get_socket_cookie(skb)                  # the socket this skb arrived on
    return bpf_sk_redirect_hash(skb, map, &key, 0)    # out of the socket stored at key

so whatever arrives on a socket in the map leaves, in the softirq that received it, through
the socket stored under that socket's cookie. The constants are those of
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
_FUNC_GET_SOCKET_COOKIE, _FUNC_SK_REDIRECT_HASH = 46, 72  # enum bpf_func_id
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


def _verdict_program(map_fd: int) -> bytes:
    """The verdict program (see the module docstring), with ``map_fd`` loaded as the map."""
    mov64_reg, mov64_imm, add64_imm, call, stx_dw, ld_imm64, exit_ = (
        0xBF, 0xB7, 0x07, 0x85, 0x7B, 0x18, 0x95)
    ldx_w, jeq_imm = 0x61, 0x15
    return b"".join([
        # An empty skb (the one carrying a FIN) is not sent on: the peer's psock would take
        # a zero-byte send for a broken pipe and stop sending to that socket.
        _insn(ldx_w, dst=2, src=1, off=0),  # r2 = skb->len
        _insn(jeq_imm, dst=2, off=11, imm=0),  # if r2 == 0: goto drop
        _insn(mov64_reg, dst=6, src=1),  # r6 = skb
        _insn(call, imm=_FUNC_GET_SOCKET_COOKIE),  # r0 = cookie(skb's socket)
        _insn(stx_dw, dst=10, src=0, off=-8),  # *(u64 *)(fp - 8) = r0
        _insn(mov64_reg, dst=1, src=6),  # r1 = skb
        _insn(ld_imm64, dst=2, src=_PSEUDO_MAP_FD, imm=map_fd), _insn(0),  # r2 = map
        _insn(mov64_reg, dst=3, src=10),
        _insn(add64_imm, dst=3, imm=-8),  # r3 = &key
        _insn(mov64_imm, dst=4, imm=0),  # r4 = flags: 0 = out of the peer (egress)
        _insn(call, imm=_FUNC_SK_REDIRECT_HASH),
        _insn(exit_),
        _insn(mov64_imm, dst=0, imm=0),  # drop: r0 = SK_DROP
        _insn(exit_),
    ])


def socket_cookie(sock: socket.socket) -> int:
    """The kernel's cookie of ``sock`` (``SO_COOKIE``), the key its peer is stored under."""
    raw = sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8)
    return int(struct.unpack("<Q", raw)[0])


class SockHash:
    """A sockhash of ``max_entries`` sockets with the verdict program attached.

    :raises BpfError: when the kernel refuses (no privilege, no sockmap support).
    """

    def __init__(self, max_entries: int) -> None:
        self.map_fd = _bpf(_MAP_CREATE, struct.pack("<IIIII", _MAP_TYPE_SOCKHASH, 8, 4,
                                                     max_entries, 0), "map create")
        self.prog_fd = -1
        try:
            program = _verdict_program(self.map_fd)
            code = ctypes.create_string_buffer(program, len(program))
            license_ = ctypes.create_string_buffer(b"GPL")
            log = ctypes.create_string_buffer(4096)
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

    def put(self, key: int, sock: socket.socket) -> None:
        """Store ``sock`` under ``key`` (adds it to the map: its input now runs the program)."""
        k, v = ctypes.c_uint64(key), ctypes.c_uint32(sock.fileno())
        _bpf(_MAP_UPDATE_ELEM, struct.pack("<IIQQQ", self.map_fd, 0, ctypes.addressof(k),
                                           ctypes.addressof(v), 0), "map update")

    def delete(self, key: int) -> None:
        """Remove the socket stored under ``key`` (missing keys are ignored)."""
        k = ctypes.c_uint64(key)
        try:
            _bpf(_MAP_DELETE_ELEM, struct.pack("<IIQ", self.map_fd, 0, ctypes.addressof(k)),
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
        for name in ("prog_fd", "map_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
