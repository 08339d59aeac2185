"""A private virtual display for ``rdesk host --virtual WxH`` on a machine with no screen.

Two X servers can hold it (``--virtual-server``): ``xvfb`` (Xvfb, the default) and ``xvnc``
(TigerVNC's Xvnc, run with its VNC listener off: no port, no socket; only its X server is
used). Only Xvnc can change its screen size at run time (RandR: new modes, a bigger
framebuffer), which a viewer's ``resize`` needs; Xvfb's RandR maximum is its start size.

With ``authorize=True`` (what ``rdesk host --virtual`` uses) the server gets an X authorization
cookie: a fresh random MIT-MAGIC-COOKIE-1 written to a file of mode 0600 inside a private
(0700) temporary directory, given to the server with ``-auth``. Only a client that presents the
cookie (``XAUTHORITY`` pointing at :attr:`VirtualDisplay.xauthority`) may connect; without it
any local user could read the screen and inject input.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

__all__ = ["SERVERS", "VirtualDisplay", "VirtualDisplayError", "write_xauthority"]

#: Xauth families: a local (unix socket) connection to the named host, and any address.
_FAMILY_LOCAL = 256
_FAMILY_WILD = 65535
_COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"

#: ``--virtual-server`` name → (binary, Debian package, whether RandR can resize it).
SERVERS: dict[str, tuple[str, str, bool]] = {
    "xvfb": ("Xvfb", "xvfb", False),
    "xvnc": ("Xvnc", "tigervnc-standalone-server", True),
}


def write_xauthority(path: Path, cookie: bytes) -> None:
    """Create ``path`` (mode 0600, must not exist) holding ``cookie`` for any display number.

    Two entries, both with an empty display number (which libXau and python-xlib read as "any
    display"): one for local connections to this machine's host name (what python-xlib looks
    up) and one for any address (what libX11 accepts too). The server reads the same file.
    """

    def field(data: bytes) -> bytes:
        return struct.pack(">H", len(data)) + data

    host = socket.gethostname().encode()
    body = b"".join(
        struct.pack(">H", family) + field(address) + field(b"")  # any display number
        + field(_COOKIE_NAME) + field(cookie)
        for family, address in ((_FAMILY_LOCAL, host), (_FAMILY_WILD, b""))
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(body)


class VirtualDisplayError(Exception):
    """The X server is missing or would not start; ``str()`` is one line."""


class VirtualDisplay:
    """An X server (``server``: a key of :data:`SERVERS`) on a free display number, stopped on
    :meth:`stop` (or context exit).

    The server picks the number itself (``-displayfd``), so two hosts never collide. DAMAGE (change
    notification) and XTEST (input injection) are enabled; TCP listening is not. With
    ``authorize`` the server demands the cookie in :attr:`xauthority` (module docstring); the
    file and its private directory are removed on :meth:`stop`.
    """

    def __init__(
        self,
        width: int,
        height: int,
        depth: int = 24,
        timeout: float = 15.0,
        *,
        extra_args: Sequence[str] = (),
        output: IO[bytes] | None = None,
        authorize: bool = False,
        server: str = "xvfb",
    ) -> None:
        """``extra_args`` go to the server after ours; its output goes to ``output`` (else
        nowhere)."""
        if server not in SERVERS:
            raise VirtualDisplayError(f"unknown virtual X server {server!r} (xvfb or xvnc)")
        self.server = server
        #: Whether a RandR client may change the screen size (rdesk/host/screen/resize.py).
        self.resizable = SERVERS[server][2]
        self.width, self.height, self.depth = width, height, depth
        self.timeout = timeout
        self.extra_args = list(extra_args)
        self.output = output
        self.authorize = authorize
        self.display = ""
        #: The cookie file clients must name in ``XAUTHORITY`` (``None`` without ``authorize``).
        self.xauthority: Path | None = None
        self._private_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running X server process, if started."""
        return self._proc

    def start(self) -> VirtualDisplay:
        """Start the server and wait until it accepts clients; return self."""
        name, package, _ = SERVERS[self.server]
        binary = shutil.which(name)
        if binary is None:
            raise VirtualDisplayError(
                f"--virtual-server {self.server} needs {name}, which is not installed "
                f"(sudo apt-get install {package})"
            )
        auth_args: list[str] = []
        if self.authorize:
            self._private_dir = Path(tempfile.mkdtemp(prefix="rdesk-x-"))  # mode 0700
            self.xauthority = self._private_dir / "Xauthority"
            write_xauthority(self.xauthority, secrets.token_bytes(16))
            auth_args = ["-auth", str(self.xauthority)]
        read_fd, write_fd = os.pipe()
        if self.server == "xvnc":
            # -rfbport -1: no VNC port (and no -rfbunixpath: no VNC socket), so no VNC client
            # can ever connect and its security types never apply; X clients need the cookie.
            size = ["-geometry", f"{self.width}x{self.height}", "-depth", str(self.depth),
                    "-rfbport", "-1", "-SecurityTypes", "None"]  # fmt: skip
        else:
            size = ["-screen", "0", f"{self.width}x{self.height}x{self.depth}"]
        cmd = [
            binary, "-displayfd", str(write_fd), *size, "-nolisten", "tcp", "-noreset",
            "+extension", "DAMAGE", "+extension", "XTEST", *auth_args, *self.extra_args,
        ]  # fmt: skip
        out = self.output if self.output is not None else subprocess.DEVNULL
        try:
            self._proc = subprocess.Popen(
                cmd, pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(write_fd)
            if self._proc is None:
                self._remove_auth()
        try:
            number = self._read_display(read_fd)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
        self.display = f":{number}"
        return self

    def _read_display(self, fd: int) -> str:
        deadline = time.monotonic() + self.timeout
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise VirtualDisplayError(
                    f"{SERVERS[self.server][0]} did not start within {self.timeout:g} s"
                )
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))
            if not ready:
                if self._proc is not None and self._proc.poll() is not None:
                    raise VirtualDisplayError(
                        f"{SERVERS[self.server][0]} exited with status {self._proc.returncode} "
                        "(is the display size valid?)"
                    )
                continue
            chunk = os.read(fd, 64)
            if not chunk:
                raise VirtualDisplayError(
                    f"{SERVERS[self.server][0]} exited before reporting its display"
                )
            data += chunk
        return data.decode().strip()

    def stop(self) -> None:
        """Terminate the server (kill it if it will not go) and remove the cookie; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._remove_auth()

    def _remove_auth(self) -> None:
        private, self._private_dir = self._private_dir, None
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)

    def __enter__(self) -> VirtualDisplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
