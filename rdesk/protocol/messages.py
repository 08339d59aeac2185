"""The rdesk messages: the handshake and the session's own, and the catalogue of every message.

docs/protocol.md, "Messages". Control messages are JSON objects sent as websocket *text*
frames; their ``"t"`` member names the type. Framebuffer updates (:mod:`rdesk.protocol.updates`)
and transfer chunks are websocket *binary* frames (see :mod:`rdesk.protocol.codec`). Each
message class carries its schema as data (``FIELDS``), so the codec validates every field the
same way and the JavaScript viewer can mirror it; :data:`CONTROL_TYPES` names every control
message, whichever module of a feature defines it (input, presence, transfer, clipboard, …).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Union

from rdesk.protocol import clipboard as _clip
from rdesk.protocol import cursor as _cursor
from rdesk.protocol import inputs as _input
from rdesk.protocol import limits
from rdesk.protocol import monitors as _monitors
from rdesk.protocol import presence as _presence
from rdesk.protocol import resize as _resize
from rdesk.protocol import transfer as _xfer
from rdesk.protocol import video as _video
from rdesk.protocol.access import Access
from rdesk.protocol.fields import AccessField, Field, Int, MayOmit, OneOf, Str
from rdesk.protocol.updates import Update

__all__ = [
    "AUTH_METHODS",
    "CONTROL_TYPES",
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "Ack",
    "Auth",
    "Close",
    "ControlMessage",
    "Hello",
    "Message",
    "Notice",
    "Ping",
    "Pong",
    "Prefs",
    "Refresh",
    "Screen",
    "Welcome",
]

PROTOCOL_NAME = "rdesk"
PROTOCOL_VERSION = 1
#: Authentication methods a viewer may use in :class:`Auth`.
AUTH_METHODS = ("password", "certificate")


_U16 = Int(0, 0xFFFF)
_U32 = Int(0, 0xFFFFFFFF)
_SIDE = Int(1, limits.MAX_SCREEN_SIDE)
_NAME = Str(limits.MAX_STRING)
# Base64 of NONCE_BYTES bytes, padded: 4 * ceil(n / 3) characters.
_NONCE = Str(4 * -(-limits.NONCE_BYTES // 3), 4 * -(-limits.NONCE_BYTES // 3))


# --- control messages --------------------------------------------------------------------------
#
# Each class's ``T`` is its wire type; ``FIELDS`` its schema, in dataclass field order.


@dataclasses.dataclass(frozen=True)
class Hello:
    """Host → viewer, first message: who we are and which version we speak."""

    T: ClassVar[str] = "hello"
    FIELDS: ClassVar[dict[str, Field]] = {
        "protocol": OneOf((PROTOCOL_NAME,)),
        "version": _U16,
        "nonce": _NONCE,
        "methods": Str(limits.MAX_STRING),
        "server": _NAME,
    }
    protocol: str
    version: int
    nonce: str
    #: Comma-separated authentication methods the host accepts.
    methods: str
    server: str


@dataclasses.dataclass(frozen=True)
class Auth:
    """Viewer → host, first message: version and credential, bound to the host's nonce."""

    T: ClassVar[str] = "auth"
    FIELDS: ClassVar[dict[str, Field]] = {
        "version": _U16,
        "nonce": _NONCE,
        "method": OneOf(AUTH_METHODS),
        "secret": Str(limits.MAX_SECRET),
        "name": _NAME,
    }
    version: int
    nonce: str
    method: str
    secret: str
    #: A display name for the viewer (shown to the host and other viewers).
    name: str

    def __repr__(self) -> str:  # never let a secret reach a log through repr()
        return f"Auth(version={self.version}, method={self.method!r}, name={self.name!r})"


@dataclasses.dataclass(frozen=True)
class Welcome:
    """Host → viewer: authentication succeeded; the viewer's role and the screen size."""

    T: ClassVar[str] = "welcome"
    FIELDS: ClassVar[dict[str, Field]] = {
        "role": AccessField(),
        "viewer_id": _U32,
        "width": _SIDE,
        "height": _SIDE,
        "name": _NAME,
    }
    role: Access
    viewer_id: int
    width: int
    height: int
    #: The host's display name.
    name: str


@dataclasses.dataclass(frozen=True)
class Screen:
    """Host → viewer: the screen size changed; a full update follows."""

    T: ClassVar[str] = "screen"
    FIELDS: ClassVar[dict[str, Field]] = {"width": _SIDE, "height": _SIDE}
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class Ack:
    """Viewer → host: update ``seq`` has been applied (flow control, RTT).

    ``hold_us``: microseconds from receiving the update's last byte to sending this ack (its
    decode and paint), at most :data:`~rdesk.protocol.limits.MAX_ACK_HOLD_US`; ``None``
    (left out on the wire) unless the host asked for it with ``ack_hold``.
    """

    T: ClassVar[str] = "ack"
    FIELDS: ClassVar[dict[str, Field]] = {
        "seq": _U32, "hold_us": MayOmit(Int(0, limits.MAX_ACK_HOLD_US))}
    seq: int
    hold_us: int | None = None


@dataclasses.dataclass(frozen=True)
class Ping:
    """Either way: please answer with a :class:`Pong` carrying the same id."""

    T: ClassVar[str] = "ping"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _U32}
    id: int


@dataclasses.dataclass(frozen=True)
class Pong:
    """Either way: answer to :class:`Ping`."""

    T: ClassVar[str] = "pong"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _U32}
    id: int


@dataclasses.dataclass(frozen=True)
class Refresh:
    """Viewer → host: send every tile again (e.g. after the viewer lost its framebuffer)."""

    T: ClassVar[str] = "refresh"
    FIELDS: ClassVar[dict[str, Field]] = {}


@dataclasses.dataclass(frozen=True)
class Prefs:
    """Viewer → host: caps on this viewer's picture; 0 in a field means "automatic".

    ``quality`` caps the JPEG quality (1..100), ``max_fps`` the update rate, ``max_bandwidth``
    the bits per second the host sends this viewer. The host never exceeds its own caps.
    """

    T: ClassVar[str] = "prefs"
    FIELDS: ClassVar[dict[str, Field]] = {
        "quality": Int(0, 100),
        "max_fps": Int(0, 240),
        "max_bandwidth": _U32,
    }
    quality: int
    max_fps: int
    max_bandwidth: int


@dataclasses.dataclass(frozen=True)
class Close:
    """Either way: the sender is closing, with a :class:`~rdesk.protocol.errors.CloseCode`."""

    T: ClassVar[str] = "close"
    FIELDS: ClassVar[dict[str, Field]] = {"code": Int(1000, 4999), "reason": _NAME}
    code: int
    reason: str


@dataclasses.dataclass(frozen=True)
class Notice:
    """Host → viewer: a line for the user (e.g. "waiting for the host's user to accept").

    ``delay`` is the number a viewer acts on, never the text: before the welcome, the seconds
    the host delays its answer to this login after failed attempts from the address (0 for
    any other notice).
    """

    T: ClassVar[str] = "notice"
    FIELDS: ClassVar[dict[str, Field]] = {"text": _NAME, "delay": Int(0, limits.MAX_LOGIN_DELAY)}
    text: str
    delay: int = 0


#: The session's own messages, those of this module (besides the handshake's).
_SESSION_TYPES = (Hello, Auth, Welcome, Screen, Ack, Ping, Pong, Refresh, Close, Notice, Prefs)

ControlMessage = Union[  # noqa: UP007 — a runtime alias; `|` of many classes reads worse
    Hello, Auth, Welcome, Screen, Ack, Ping, Pong, Refresh, Close, Notice, Prefs,
    _input.Pointer, _input.Wheel, _input.Key, _input.Sync, _input.InputAck,
    _presence.Peer, _presence.Control, _presence.RequestControl, _presence.ReleaseControl,
    _presence.ControlRequest, _presence.AnswerControl,
    _xfer.XferList, _xfer.XferPut, _xfer.XferGet, _xfer.XferReady, _xfer.XferEntry,
    _xfer.XferCredit, _xfer.XferEnd, _xfer.XferCancel, _xfer.XferDone,
    _clip.ClipOffer, _clip.ClipData, _clip.ClipResult, _clip.ClipGet,
    _cursor.CursorShape, _cursor.CursorData, _cursor.CursorUse,
    _monitors.MonitorInfo, _monitors.MonitorCurrent, _monitors.SelectMonitor,
    _video.Video, _video.Keyframe, _video.VideoEnd, _video.AckHold, _resize.Resize,
    _resize.ResizeResult,
]
#: Every message; updates and transfer chunks (``xfer_data``) are the binary ones.
Message = Union[ControlMessage, Update, _xfer.XferData]  # noqa: UP007

#: Wire type → class, for every control message.
CONTROL_TYPES: dict[str, type] = {
    cls.T: cls
    for cls in (
        *_SESSION_TYPES, *_input.INPUT_TYPES, *_presence.PRESENCE_TYPES,
        *_xfer.TRANSFER_TYPES, *_clip.CLIPBOARD_TYPES, *_cursor.CURSOR_TYPES,
        *_monitors.MONITOR_TYPES, *_video.VIDEO_TYPES, *_resize.RESIZE_TYPES,
    )
}
