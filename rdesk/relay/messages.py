"""The relay's control messages and their codec (docs/relay.md).

Every control message is a UTF-8 JSON object in a websocket **text** frame, ``{"t": TYPE, ...}``,
at most :data:`MAX_RELAY_MESSAGE` bytes. Every field listed for a type is required, no other
field is allowed, duplicate keys and non-finite numbers are refused, binary values travel as
standard base64. Host IDs are checked with :func:`rdesk.protocol.hostid.parse_host_id` and
carried in their canonical form.

:func:`decode` raises :class:`RelayProtocolError` — and nothing else — for anything that is not
a valid message; :func:`encode` validates what it writes with the same rules, so a peer using
this codec never sends what the other side must refuse.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
from collections.abc import Callable
from typing import Any, ClassVar

from rdesk.protocol.errors import CloseCode, ProtocolError
from rdesk.protocol.hostid import parse_host_id
from rdesk.protocol.rawlane import TICKET_BYTES

__all__ = [
    "MAX_REASON",
    "MAX_RELAY_MESSAGE",
    "MAX_SPKI",
    "MAX_TOKEN",
    "MESSAGE_TYPES",
    "NONCE_BYTES",
    "RELAY_VERSION",
    "SIG_BYTES",
    "Challenge",
    "Connect",
    "Data",
    "Heartbeat",
    "HeartbeatAck",
    "Message",
    "Move",
    "Prove",
    "Raw",
    "RawRendezvous",
    "Refused",
    "Register",
    "Registered",
    "RelayProtocolError",
    "Rendezvous",
    "Spliced",
    "decode",
    "encode",
]

#: Largest control message, in bytes of UTF-8.
MAX_RELAY_MESSAGE = 4096
#: Version of the relay control protocol these modules speak.
RELAY_VERSION = 1
#: Longest reason (refused, move), in characters; short enough for a websocket close reason.
MAX_REASON = 120
#: Longest SubjectPublicKeyInfo DER accepted (a P-256 one is 91 bytes).
MAX_SPKI = 256
#: Longest enrolment token, in characters.
MAX_TOKEN = 128
#: Bytes of the relay's registration challenge.
NONCE_BYTES = 32
#: Bytes of a raw ECDSA P-256 signature (r || s, as WebCrypto writes it).
SIG_BYTES = 64
#: Longest relay URL a ``move`` may name.
MAX_URL = 512
_SESSION = re.compile(r"[A-Za-z0-9_-]{22}")  # 128 bits, base64url without padding


class RelayProtocolError(ProtocolError):
    """The peer broke the relay protocol, or was refused; ``reason`` is one line.

    ``code`` is the websocket close code to close with.
    """


def _bad(reason: str, code: CloseCode = CloseCode.PROTOCOL_ERROR) -> RelayProtocolError:
    return RelayProtocolError(reason, code)


# --- field validators: wire value -> Python value, RelayProtocolError on anything else -------

Check = Callable[[Any], Any]


def _host_id(value: Any) -> str:
    try:
        return parse_host_id(value)
    except ValueError as exc:
        raise _bad(f"bad host ID: {exc}") from None


def _b64(low: int, high: int) -> Check:
    def check(value: Any) -> bytes:
        if not isinstance(value, str) or len(value) > 4 * ((high + 2) // 3):
            raise _bad("binary fields are base64 text of bounded length")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("invalid base64") from None
        if not low <= len(raw) <= high:
            raise _bad(f"binary field of {len(raw)} bytes, expected {low}..{high}")
        return raw

    return check


def _text(high: int, *, empty: bool = True) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > high or (not empty and not value):
            raise _bad(f"text fields are strings of at most {high} characters")
        if not value.isprintable():
            raise _bad("text fields must be printable on one line")
        return value

    return check


def _optional(inner: Check) -> Check:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


def _int(low: int, high: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _bad(f"integer fields must be in {low}..{high}")
        return value

    return check


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad("a duration must be a number")
    if not 1 <= value <= 3600:
        raise _bad("a duration must be 1..3600 seconds")
    return float(value)


def _session(value: Any) -> str:
    if not isinstance(value, str) or not _SESSION.fullmatch(value):
        raise _bad("a session is 22 characters of base64url")
    return value


# --- messages -----------------------------------------------------------------------------------


class Message:
    """Base of every relay control message: ``T`` is the wire type, ``FIELDS`` the schema."""

    T: ClassVar[str] = ""
    FIELDS: ClassVar[dict[str, Check]] = {}


@dataclasses.dataclass(frozen=True)
class Register(Message):
    """Host → relay on ``/host``: the ID it claims, its key, and its enrolment token."""

    T = "register"
    FIELDS = {"id": _host_id, "spki": _b64(1, MAX_SPKI),
              "token": _optional(_text(MAX_TOKEN)), "version": _int(1, 2**16)}
    id: str
    spki: bytes
    token: str | None
    version: int


@dataclasses.dataclass(frozen=True)
class Challenge(Message):
    """Relay → host: sign this nonce (see :func:`rdesk.relay.proof.register_input`)."""

    T = "challenge"
    FIELDS = {"nonce": _b64(NONCE_BYTES, NONCE_BYTES)}
    nonce: bytes


@dataclasses.dataclass(frozen=True)
class Prove(Message):
    """Host → relay: the signature over the challenge."""

    T = "prove"
    FIELDS = {"sig": _b64(SIG_BYTES, SIG_BYTES)}
    sig: bytes


@dataclasses.dataclass(frozen=True)
class Registered(Message):
    """Relay → host: the ID is registered here; send a heartbeat every ``heartbeat`` seconds."""

    T = "registered"
    FIELDS = {"id": _host_id, "heartbeat": _seconds}
    id: str
    heartbeat: float


@dataclasses.dataclass(frozen=True)
class Refused(Message):
    """Relay → host or viewer: the request is refused, for ``reason``; the relay then closes."""

    T = "refused"
    FIELDS = {"reason": _text(MAX_REASON)}
    reason: str


@dataclasses.dataclass(frozen=True)
class Heartbeat(Message):
    """Host → relay: still here."""

    T = "heartbeat"


@dataclasses.dataclass(frozen=True)
class HeartbeatAck(Message):
    """Relay → host: the heartbeat was received and the registration renewed."""

    T = "heartbeat_ack"


@dataclasses.dataclass(frozen=True)
class Rendezvous(Message):
    """Relay → host: a viewer waits; open ``/data`` for ``session`` — at ``url`` (another
    instance of the same relay, with the same certificate) or, when ``None``, where the
    control connection is."""

    T = "rendezvous"
    FIELDS = {"session": _session, "url": _optional(_text(MAX_URL, empty=False))}
    session: str
    url: str | None = None


#: Longest host name a raw lane address may carry.
MAX_HOSTNAME = 253


@dataclasses.dataclass(frozen=True)
class RawRendezvous(Message):
    """Relay → host (one that asked for ``/host?lanes=raw``): a viewer waits on the raw lane.
    Open plain TCP to ``address`` (``None``: the host name of the relay URL the host reached)
    and ``port``, send the preamble with ``ticket``, then serve TLS on that socket; if the
    TCP connection cannot be made, answer on ``/data`` instead, at ``url`` as a
    :class:`Rendezvous` would."""

    T = "rendezvous_raw"
    FIELDS = {"session": _session, "url": _optional(_text(MAX_URL, empty=False)),
              "address": _optional(_text(MAX_HOSTNAME, empty=False)),
              "port": _int(1, 65535), "ticket": _b64(TICKET_BYTES, TICKET_BYTES)}
    session: str
    url: str | None
    address: str | None
    port: int
    ticket: bytes


@dataclasses.dataclass(frozen=True)
class Raw(Message):
    """Relay → viewer (one that asked for ``/connect?lanes=raw``): the host waits on the raw
    lane; open plain TCP to ``address`` (``None``: the relay's host name) and ``port`` and send
    the preamble with ``ticket``. Sent in place of ``spliced``."""

    T = "raw"
    FIELDS = {"address": _optional(_text(MAX_HOSTNAME, empty=False)), "port": _int(1, 65535),
              "ticket": _b64(TICKET_BYTES, TICKET_BYTES)}
    address: str | None
    port: int
    ticket: bytes


@dataclasses.dataclass(frozen=True)
class Move(Message):
    """Relay → host: go to another relay instance (``url``, or the same address when ``None``)."""

    T = "move"
    FIELDS = {"reason": _text(MAX_REASON), "url": _optional(_text(MAX_URL, empty=False))}
    reason: str
    url: str | None = None


@dataclasses.dataclass(frozen=True)
class Data(Message):
    """Host → relay, first message on ``/data``: this connection answers ``session``."""

    T = "data"
    FIELDS = {"id": _host_id, "session": _session, "sig": _b64(SIG_BYTES, SIG_BYTES)}
    id: str
    session: str
    sig: bytes


@dataclasses.dataclass(frozen=True)
class Connect(Message):
    """Viewer → relay on ``/connect``: splice me to the host with this ID."""

    T = "connect"
    FIELDS = {"id": _host_id, "version": _int(1, 2**16)}
    id: str
    version: int


@dataclasses.dataclass(frozen=True)
class Spliced(Message):
    """Relay → viewer: the host is on the other end; binary messages flow from now on."""

    T = "spliced"


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.T: cls
    for cls in (Register, Challenge, Prove, Registered, Refused, Heartbeat, HeartbeatAck,
                Rendezvous, RawRendezvous, Move, Data, Connect, Spliced, Raw)
}


# --- codec --------------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _bad(f"duplicate field {key[:32]!r}")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise _bad(f"non-finite number {name}")


def _fields(obj: dict[str, Any]) -> Message:
    kind = obj.pop("t", None)
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        shown = kind[:32] if isinstance(kind, str) else type(kind).__name__
        raise _bad(f"unknown relay message type {shown!r}")
    extra = set(obj) - set(cls.FIELDS)
    if extra:
        raise _bad(f"unexpected field {sorted(extra)[0][:32]!r} in {cls.T}")
    values = {}
    for name, check in cls.FIELDS.items():
        if name not in obj:
            raise _bad(f"missing field {name!r} in {cls.T}")
        values[name] = check(obj[name])
    return cls(**values)


def decode(data: str | bytes) -> Message:
    """Parse one control message received from the peer.

    Raises :class:`RelayProtocolError` for a binary frame, an oversized, malformed or unknown
    message, or a field out of its bounds.
    """
    if not isinstance(data, str):
        raise _bad("relay control messages are text frames")
    if len(data) > MAX_RELAY_MESSAGE or len(data.encode("utf-8", "replace")) > MAX_RELAY_MESSAGE:
        raise _bad(f"control message larger than {MAX_RELAY_MESSAGE} bytes", CloseCode.TOO_BIG)
    try:
        obj = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RelayProtocolError:
        raise
    except (ValueError, RecursionError):
        raise _bad("control message is not valid JSON") from None
    if not isinstance(obj, dict):
        raise _bad("control message is not a JSON object")
    return _fields(obj)


def encode(message: Message) -> str:
    """Serialise ``message`` (validated as :func:`decode` would); ``ValueError`` if invalid."""
    cls = type(message)
    if MESSAGE_TYPES.get(cls.T) is not cls:
        raise ValueError(f"not a relay message: {cls.__name__}")
    obj: dict[str, Any] = {"t": cls.T}
    for name in cls.FIELDS:
        value = getattr(message, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{cls.T}.{name} is not finite")
        obj[name] = base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        if decode(text) != message:
            raise ValueError(f"{cls.T} does not survive its own codec (not canonical)")
    except RelayProtocolError as exc:
        raise ValueError(f"invalid {cls.T}: {exc.reason}") from None
    return text
