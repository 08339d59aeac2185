"""Protocol exceptions and the close codes they map to (docs/protocol.md, "Closing").

A fault of the *peer* raises :class:`RemoteProtocolError`; our own misuse of the API raises
:class:`LocalProtocolError`. Anything else escaping the parser is a bug.
"""

import enum

__all__ = [
    "CloseCode",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]


class CloseCode(enum.IntEnum):
    """Websocket close codes used by rdesk.

    1000-range codes are RFC 6455 ones; 4000-range codes are rdesk's own (RFC 6455 §7.4.2
    reserves 4000-4999 for private use).
    """

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    #: Credentials refused.
    AUTH_FAILED = 4001
    #: The peer speaks another protocol version.
    VERSION_MISMATCH = 4002
    #: The peer did not complete the handshake in time.
    HANDSHAKE_TIMEOUT = 4003
    #: Refused by policy: too many viewers, consent refused, origin not allowed, rate limit.
    POLICY = 4004
    #: The peer stopped reading or answering.
    UNRESPONSIVE = 4005
    #: The host is shutting down.
    SHUTDOWN = 4006


class ProtocolError(Exception):
    """Base class of protocol errors; ``str()`` is one line fit for a user."""

    code: CloseCode = CloseCode.PROTOCOL_ERROR

    def __init__(self, reason: str, code: CloseCode | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid: malformed, oversized, out of order or out of range."""


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol does not allow in the current state."""
