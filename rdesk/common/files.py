"""Small file helpers shared by host and viewer (standard library only).

A process killed at any moment (SIGKILL, power cut) leaves each file these write either absent
or complete, and leaves no temporary file behind where the kernel can help: on Linux the data
is written to an unnamed file (``O_TMPFILE``) that only gets a name once it is whole. Where the
file system has no unnamed files, a hidden ``.<name>.<pid>-<random>.tmp`` beside the target is
used instead, and a kill in the middle can leave that one behind (never the target half-written;
:func:`atomic_write` removes a dead writer's the next time it writes that file).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import threading
from pathlib import Path

__all__ = ["atomic_write", "create_exclusive", "link_unnamed", "open_unnamed"]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: Errors that mean "this file system (or kernel) has no unnamed files": fall back to a name.
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def open_unnamed(directory: Path, mode: int = 0o600) -> int | None:
    """A descriptor on a new unnamed file in *directory* (open for writing, close-on-exec),
    or None where the file system or kernel has none; a missing directory raises.

    The file's blocks are freed when the descriptor closes unless :func:`link_unnamed` gave it
    a name first: a process killed while writing leaves nothing.

    Linking it into place goes through ``/proc/self/fd`` (``linkat`` with ``AT_EMPTY_PATH``
    would need a capability), so without ``/proc`` the named fallback is taken.
    """
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if not tmpfile or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(directory, tmpfile | os.O_WRONLY | _CLOEXEC, mode)
    except OSError as exc:
        if exc.errno in _NO_TMPFILE and directory.is_dir():
            return None
        raise


def link_unnamed(fd: int, path: Path) -> None:
    """Give the unnamed file behind *fd* the name *path* (EEXIST if taken, like ``O_EXCL``).

    ``os.link`` calls plain ``link(2)``, which would link the ``/proc`` symlink itself, unless a
    directory descriptor is given: so the source is named relative to ``/proc/self/fd``.
    """
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    try:
        os.link(str(fd), path, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


#: Hidden names this process is writing now (a sweep leaves them alone).
_IN_FLIGHT: set[str] = set()
_IN_FLIGHT_LOCK = threading.Lock()


def _hidden_name(path: Path) -> Path:
    """A fresh hidden name beside *path* that says which process made it."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(8)}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive, and not ours to judge
    return True


def _sweep(path: Path) -> None:
    """Remove the hidden temporaries of *path* that a killed writer left.

    One is stale when its process is gone, or is this process but not in flight here (a
    restarted container's host is pid 1 again). A live writer's temporary is never touched.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)-[0-9a-f]{{16}}\.tmp")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        pid = int(match.group(1))
        with _IN_FLIGHT_LOCK:
            mine = name in _IN_FLIGHT
        if mine or (pid != os.getpid() and _alive(pid)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(path.parent / name)


def create_exclusive(path: Path, header: bytes, mode: int = 0o600) -> int:
    """Create *path* holding *header* and return a descriptor on it open for appending.

    Fails with ``FileExistsError`` when *path* exists, as ``O_EXCL`` does. *path* appears with
    the whole *header* in it or not at all: the header is written to an unnamed (or hidden)
    file first and linked into place.
    """
    fd = open_unnamed(path.parent, mode)
    if fd is not None:
        try:
            _write_all(fd, header)
            link_unnamed(fd, path)
        except BaseException:
            os.close(fd)
            raise
        return fd
    tmp = _hidden_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, mode)
    try:
        _write_all(fd, header)
        os.link(tmp, path)
    except BaseException:
        os.close(fd)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return fd


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write *data* to *path* so that *path* is either absent/old or complete with *mode*.

    The data goes to a fresh file in the same directory, created with *mode* from the start (so
    a private key is never readable by others, not even briefly), is fsynced, then renamed over
    *path*; the directory is fsynced so the rename survives a crash. The fresh file is unnamed
    while it is written, so a kill can leave a hidden temporary only between its link and its
    rename (Linux has no way to rename an unnamed file over another); the next write of *path*
    removes what a killed writer left.
    """
    _sweep(path)
    tmp = _hidden_name(path)
    with _IN_FLIGHT_LOCK:
        _IN_FLIGHT.add(tmp.name)
    try:
        _write_replacing(path, tmp, data, mode)
    finally:
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT.discard(tmp.name)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _write_replacing(path: Path, tmp: Path, data: bytes, mode: int) -> None:
    """Write *data* whole and fsynced under the name *tmp*, then rename it over *path*."""
    fd = open_unnamed(path.parent, mode)
    named = fd is None
    if fd is None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have narrowed (or, for 0644, kept) the mode
            _write_all(fd, data)
            os.fsync(fd)
            if not named:
                link_unnamed(fd, tmp)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
