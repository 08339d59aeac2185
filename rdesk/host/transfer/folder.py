"""The transfer folder: the one directory files are read from or written to, by descriptor.

Every operation goes through a descriptor of the folder opened once (``O_DIRECTORY |
O_NOFOLLOW``) and ``dir_fd=`` calls with ``O_NOFOLLOW``: a name is looked up in that folder
and nowhere else, a symlink placed in it (pointing anywhere) is never followed, and renaming
or replacing the folder's path afterwards does not move where files go. Names are checked by
:func:`rdesk.protocol.transfer.check_name` first; the descriptor checks hold even if that
rule had a hole.

An upload is written to a hidden temporary file (``.rdesk-partial-*``, which no peer's name
can be), fsynced, then *linked* under its final name — ``link`` fails if the name exists, so
nothing is ever overwritten, not even by a race — and the temporary name removed. A partial
file is therefore never visible under a final name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from rdesk.protocol.transfer import check_name

__all__ = [
    "PARTIAL_PREFIX",
    "SHARED_FOLDERS",
    "FolderError",
    "Incoming",
    "SharedFolders",
    "TransferFolder",
]

PARTIAL_PREFIX = ".rdesk-partial-"
#: Variants tried before refusing ("name (1).txt" ... "name (99).txt").
_MAX_VARIANTS = 99


class FolderError(Exception):
    """An operation refused or failed; ``str()`` is one line for the viewer and the log."""


def _nofollow(flags: int) -> int:
    return flags | os.O_NOFOLLOW | os.O_CLOEXEC


class Incoming:
    """One upload being written: a temporary file in the folder, open for writing."""

    def __init__(self, folder: TransferFolder, fd: int, temp: str, wanted: str) -> None:
        self.folder = folder
        self.fd: int | None = fd
        self.temp = temp
        self.wanted = wanted
        self.written = 0

    def write(self, data: bytes) -> None:
        """Append ``data``; a full disk or quota raises :class:`FolderError` (and aborts)."""
        assert self.fd is not None, "closed"
        view = memoryview(data)
        try:
            while view:
                done = os.write(self.fd, view)
                view = view[done:]
                self.written += done
        except OSError as exc:
            self.abort()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise FolderError("the host's disk is full: transfer stopped") from None
            if exc.errno == errno.EFBIG:
                raise FolderError("the file exceeds the host's file size limit") from None
            raise FolderError(f"cannot write the file: {exc.strerror}") from None

    def commit(self) -> str:
        """fsync, then give the file its final name (``wanted`` or a free variant); returns it.

        Blocking (fsync): call it from a worker thread.
        """
        assert self.fd is not None, "closed"
        try:
            os.fsync(self.fd)
        except OSError as exc:
            self.abort()
            raise FolderError(f"cannot write the file: {exc.strerror}") from None
        os.close(self.fd)
        self.fd = None
        dfd = self.folder.dir_fd
        try:
            for candidate in self.folder.variants(self.wanted):
                try:
                    os.link(self.temp, candidate, src_dir_fd=dfd, dst_dir_fd=dfd,
                            follow_symlinks=False)
                except FileExistsError:
                    continue
                self.folder.fsync_dir()
                return candidate
            raise FolderError(f"{self.wanted!r} and its numbered variants all exist")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp, dir_fd=dfd)

    def abort(self) -> None:
        """Close and remove the temporary file. Idempotent, never raises."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        with contextlib.suppress(OSError):
            os.unlink(self.temp, dir_fd=self.folder.dir_fd)


class TransferFolder:
    """The transfer folder, held by descriptor for the host's lifetime.

    :param path: created (mode 0700) if missing; must not be a symlink. Partial files a
        crashed host left behind are removed on opening.
    :param overwrite: ``"rename"`` (the default) stores a file whose name is taken as
        ``name (1).ext``; ``"refuse"`` refuses it. Nothing is ever replaced.
    """

    def __init__(self, path: Path | str, *, overwrite: str = "rename") -> None:
        if overwrite not in ("rename", "refuse"):
            raise ValueError(f"overwrite must be 'rename' or 'refuse', not {overwrite!r}")
        self.path = Path(path)
        self.overwrite = overwrite
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self.dir_fd = os.open(self.path, _nofollow(os.O_RDONLY | os.O_DIRECTORY))
        except OSError as exc:
            raise FolderError(f"cannot open the transfer folder {self.path}: "
                              f"{exc.strerror}") from None
        with os.scandir(self.dir_fd) as entries:
            stale = [e.name for e in entries if e.name.startswith(PARTIAL_PREFIX)]
        for name in stale:  # what a crashed host left: never a finished file
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self.dir_fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.dir_fd)

    # --- names ---------------------------------------------------------------------------------

    @staticmethod
    def checked(name: str) -> str:
        """``name`` if it is a plain file name, else :class:`FolderError` with the reason."""
        reason = check_name(name)
        if reason is not None:
            raise FolderError(f"refused name: {reason}")
        return name

    def variants(self, name: str) -> list[str]:
        """The names to try, in order, for a file that wants ``name``."""
        if self.overwrite == "refuse":
            return [name]
        stem, dot, ext = name.rpartition(".")
        if not stem:  # no extension (or only one, like "Makefile")
            stem, dot, ext = name, "", ""
        out = [name]
        for n in range(1, _MAX_VARIANTS + 1):
            candidate = f"{stem} ({n}){dot}{ext}"
            if len(candidate.encode()) <= 255:
                out.append(candidate)
        return out

    # --- operations ----------------------------------------------------------------------------

    def create(self, name: str) -> Incoming:
        """Start an upload of ``name`` (checked; refused early if taken and refusing)."""
        self.checked(name)
        if self.overwrite == "refuse" and self._exists(name):
            raise FolderError(f"{name!r} exists and this host never overwrites")
        temp = PARTIAL_PREFIX + secrets.token_hex(8)
        try:
            fd = os.open(temp, _nofollow(os.O_WRONLY | os.O_CREAT | os.O_EXCL), 0o600,
                         dir_fd=self.dir_fd)
        except OSError as exc:
            raise FolderError(f"cannot create the file: {exc.strerror}") from None
        return Incoming(self, fd, temp, name)

    def open_read(self, name: str) -> tuple[int, int]:
        """Open the regular file ``name`` for reading: ``(fd, size)``; never a link or a device.

        ``O_NONBLOCK`` keeps a FIFO planted in the folder from hanging the open; ``fstat`` then
        refuses anything but a regular file.
        """
        self.checked(name)
        try:
            fd = os.open(name, _nofollow(os.O_RDONLY | os.O_NONBLOCK), dir_fd=self.dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise FolderError(f"{name!r} is a symbolic link: not followed") from None
            raise FolderError(f"cannot open {name!r}: {exc.strerror}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise FolderError(f"{name!r} is not a regular file")
        os.set_blocking(fd, True)
        return fd, info.st_size

    def listing(self, limit: int) -> list[tuple[str, int]]:
        """Up to ``limit`` regular files (name, size), sorted by name; links and odd names
        are left out, so everything listed can be fetched."""
        out: list[tuple[str, int]] = []
        with os.scandir(self.dir_fd) as entries:
            for entry in entries:
                if check_name(entry.name) is not None:
                    continue
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode):
                        out.append((entry.name, info.st_size))
        out.sort()
        return out[:limit]

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer may still use on the folder's file system."""
        info = os.fstatvfs(self.dir_fd)
        return info.f_bavail * info.f_frsize

    def fsync_dir(self) -> None:
        """Make the new name durable, not just the file's bytes."""
        with contextlib.suppress(OSError):
            os.fsync(self.dir_fd)

    def _exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True


class SharedFolders:
    """One :class:`TransferFolder` per folder and process, shared by the viewers using it.

    Opening a folder removes the partial files a crashed host left; it must not remove those
    of another viewer's upload in progress, so the folder is opened once, by the first viewer
    that needs it, and closed when the last one leaves.
    """

    def __init__(self) -> None:
        self._open: dict[tuple[Path, str], tuple[TransferFolder, int]] = {}

    def acquire(self, path: Path, overwrite: str) -> TransferFolder:
        key = (path, overwrite)
        folder, users = self._open.get(key) or (TransferFolder(path, overwrite=overwrite), 0)
        self._open[key] = (folder, users + 1)
        return folder

    def release(self, folder: TransferFolder) -> None:
        key = (folder.path, folder.overwrite)
        _, users = self._open[key]
        if users > 1:
            self._open[key] = (folder, users - 1)
        else:
            del self._open[key]
            folder.close()


#: The process's open transfer folders.
SHARED_FOLDERS = SharedFolders()
