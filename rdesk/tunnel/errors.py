"""Why a tunnel failed: one line for a person, and the close code the websocket goes down with."""

from __future__ import annotations

from rdesk.protocol.errors import CloseCode, RemoteProtocolError

__all__ = ["HostIdentityError", "TunnelError"]


class TunnelError(RemoteProtocolError):
    """The other end (or the relay between) sent something the tunnel refuses.

    ``reason`` (also ``str()``) is one line; ``code`` is the close code to close with.
    It is a :class:`~rdesk.protocol.errors.RemoteProtocolError`, so code that already turns
    protocol errors into a clean close handles a broken tunnel the same way.
    """


class HostIdentityError(TunnelError):
    """The host's key does not match the ID or the pinned fingerprint, or did not sign.

    Raised by the viewer end before any record is sent: no credential has left the viewer.
    A person should read it as "someone between you and the host may be impersonating it".
    """

    code = CloseCode.POLICY
