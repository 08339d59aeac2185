"""rdesk's sans-I/O protocol: message codec, connection state machine, flow control.

Standard library only (docs/architecture.md, "Rooms"): no asyncio, no websockets, no images,
no clocks.
"""

from rdesk.protocol.codec import decode, encode
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import (
    CloseCode,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from rdesk.protocol.messages import PROTOCOL_VERSION
from rdesk.protocol.session import Session
from rdesk.protocol.states import Role, State

__all__ = [
    "PROTOCOL_VERSION",
    "CloseCode",
    "Encoding",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "Role",
    "Session",
    "State",
    "decode",
    "encode",
]
