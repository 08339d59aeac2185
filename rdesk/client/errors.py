"""What can go wrong for a viewer: every error's ``str()`` is one line a face can show."""

from __future__ import annotations

__all__ = ["AuthenticationFailed", "ConnectError", "ConnectionLost", "ScreenRefused"]


class ConnectError(Exception):
    """The connection could not be made or was refused; ``str()`` is one line."""


class AuthenticationFailed(ConnectError):
    """The host refused the credential."""


class ConnectionLost(ConnectError):
    """An established connection ended; :attr:`code` (a close code) says why, if known."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ScreenRefused(ConnectionLost):
    """The viewer ended the connection: the host's screen has more pixels than it accepts
    (``max_pixels``, the viewer's ``--max-screen``)."""
