"""The rdesk messages, each with the exact schema of its fields (docs/protocol.md, "Messages").

Control messages are JSON objects sent as websocket *text* frames; their ``"t"`` member names
the type. Framebuffer updates are websocket *binary* frames (see :mod:`rdesk.protocol.codec`).
The schema of every control message is data (:data:`SCHEMAS`), so the codec validates every
field the same way and the JavaScript viewer can mirror it.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Union

from rdesk.protocol import clipboard as _clip
from rdesk.protocol import cursor as _cursor
from rdesk.protocol import limits
from rdesk.protocol import monitors as _monitors
from rdesk.protocol import resize as _resize
from rdesk.protocol import transfer as _xfer
from rdesk.protocol import video as _video
from rdesk.protocol.access import Access
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.fields import ROLES, AccessField, Bool, Field, Int, OneOf, Str

__all__ = [
    "AUTH_METHODS",
    "CONTROL_TYPES",
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "ROLES",
    "AccessField",
    "Ack",
    "Auth",
    "Bool",
    "Close",
    "NOBODY",
    "LOCAL_USER",
    "Peer",
    "Control",
    "RequestControl",
    "ReleaseControl",
    "ControlRequest",
    "AnswerControl",
    "Notice",
    "ControlMessage",
    "Field",
    "Hello",
    "InputAck",
    "Int",
    "Key",
    "Message",
    "OneOf",
    "Ping",
    "Pointer",
    "Pong",
    "Prefs",
    "Rect",
    "Refresh",
    "Screen",
    "Str",
    "Sync",
    "Update",
    "Welcome",
    "Wheel",
]

PROTOCOL_NAME = "rdesk"
PROTOCOL_VERSION = 1
#: Authentication methods a viewer may use in :class:`Auth`.
AUTH_METHODS = ("password", "certificate")


_U16 = Int(0, 0xFFFF)
_U32 = Int(0, 0xFFFFFFFF)
_SIDE = Int(1, limits.MAX_SCREEN_SIDE)
_COORD = Int(0, limits.MAX_SCREEN_SIDE - 1)
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
    """Viewer → host: update ``seq`` has been applied (flow control, RTT)."""

    T: ClassVar[str] = "ack"
    FIELDS: ClassVar[dict[str, Field]] = {"seq": _U32}
    seq: int


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
class Pointer:
    """Viewer → host: pointer at (x, y) in host pixels with ``buttons`` held (bit n-1 = n)."""

    T: ClassVar[str] = "pointer"
    FIELDS: ClassVar[dict[str, Field]] = {
        "x": _COORD,
        "y": _COORD,
        "buttons": Int(0, limits.MAX_BUTTON_MASK),
    }
    x: int
    y: int
    buttons: int


@dataclasses.dataclass(frozen=True)
class Wheel:
    """Viewer → host: wheel detents at (x, y); positive ``dy`` scrolls down, ``dx`` right."""

    T: ClassVar[str] = "wheel"
    FIELDS: ClassVar[dict[str, Field]] = {
        "x": _COORD,
        "y": _COORD,
        "dx": Int(-limits.MAX_WHEEL_STEPS, limits.MAX_WHEEL_STEPS),
        "dy": Int(-limits.MAX_WHEEL_STEPS, limits.MAX_WHEEL_STEPS),
    }
    x: int
    y: int
    dx: int
    dy: int


@dataclasses.dataclass(frozen=True)
class Key:
    """Viewer → host: X11 keysym pressed (``down``) or released."""

    T: ClassVar[str] = "key"
    FIELDS: ClassVar[dict[str, Field]] = {
        "keysym": Int(1, limits.MAX_KEYSYM),
        "down": Bool(),
    }
    keysym: int
    down: bool


@dataclasses.dataclass(frozen=True)
class Sync:
    """Viewer → host: answer with :class:`InputAck` once all earlier input was handled."""

    T: ClassVar[str] = "sync"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _U32}
    id: int


@dataclasses.dataclass(frozen=True)
class InputAck:
    """Host → viewer: all input before :class:`Sync` ``id`` was injected (``ok``) or not."""

    T: ClassVar[str] = "input_ack"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _U32, "ok": Bool(), "reason": _NAME}
    id: int
    ok: bool
    reason: str


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


# --- several viewers: presence and control --------------------------------------------------------

#: ``Control.holder`` when no viewer holds control.
NOBODY = 0
#: ``Control.holder`` when the host's local user has taken control.
LOCAL_USER = 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class Peer:
    """Host → viewer: viewer ``id`` joined (``present``) or left; ``access`` is its credential."""

    T: ClassVar[str] = "peer"
    FIELDS: ClassVar[dict[str, Field]] = {
        "id": _U32,
        "name": _NAME,
        "access": AccessField(),
        "present": Bool(),
    }
    id: int
    name: str
    access: Access
    present: bool


@dataclasses.dataclass(frozen=True)
class Control:
    """Host → viewer: who holds control now (a viewer id, :data:`NOBODY` or :data:`LOCAL_USER`)."""

    T: ClassVar[str] = "control"
    FIELDS: ClassVar[dict[str, Field]] = {"holder": _U32}
    holder: int


@dataclasses.dataclass(frozen=True)
class RequestControl:
    """Viewer → host: this viewer asks for control."""

    T: ClassVar[str] = "request_control"
    FIELDS: ClassVar[dict[str, Field]] = {}


@dataclasses.dataclass(frozen=True)
class ReleaseControl:
    """Viewer → host: this viewer gives control up."""

    T: ClassVar[str] = "release_control"
    FIELDS: ClassVar[dict[str, Field]] = {}


@dataclasses.dataclass(frozen=True)
class ControlRequest:
    """Host → the viewer holding control: viewer ``id`` asks for control; answer it."""

    T: ClassVar[str] = "control_request"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _U32, "name": _NAME}
    id: int
    name: str


@dataclasses.dataclass(frozen=True)
class AnswerControl:
    """Viewer holding control → host: grant (or refuse) viewer ``id``'s request."""

    T: ClassVar[str] = "answer_control"
    FIELDS: ClassVar[dict[str, Field]] = {"id": _U32, "grant": Bool()}
    id: int
    grant: bool


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


# --- framebuffer updates (binary) --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rect:
    """One rectangle of an update: destination (x, y, w, h) and its encoded payload.

    For :attr:`Encoding.COPY` the payload is the source position, ``src_x, src_y`` (u16 each).
    For image encodings the encoded image may be smaller than (w, h) when the host downscaled
    it; the viewer scales it up to (w, h).
    """

    x: int
    y: int
    w: int
    h: int
    encoding: Encoding
    payload: bytes

    def __repr__(self) -> str:
        return (
            f"Rect({self.x}, {self.y}, {self.w}x{self.h}, {self.encoding.name}, "
            f"{len(self.payload)} B)"
        )


@dataclasses.dataclass(frozen=True)
class Update:
    """Host → viewer: rectangles of new pixels, numbered ``seq``, stamped in host µs."""

    seq: int
    timestamp_us: int
    rects: tuple[Rect, ...]
    #: Set when, once this update is applied, the viewer's framebuffer is pixel-exact: no
    #: lossy rectangle and no change is outstanding for it as of the capture it was cut from.
    exact: bool = False


ControlMessage = Union[  # noqa: UP007 — a runtime alias; `|` of many classes reads worse
    Hello, Auth, Welcome, Screen, Ack, Ping, Pong, Pointer, Wheel, Key, Sync, InputAck, Refresh,
    Close, Peer, Control, RequestControl, ReleaseControl, ControlRequest, AnswerControl, Notice,
    Prefs, _xfer.XferList, _xfer.XferPut, _xfer.XferGet, _xfer.XferReady, _xfer.XferEntry,
    _xfer.XferCredit, _xfer.XferEnd, _xfer.XferCancel, _xfer.XferDone,
    _clip.ClipOffer, _clip.ClipData, _clip.ClipResult, _clip.ClipGet,
    _cursor.CursorShape, _cursor.CursorData, _cursor.CursorUse,
    _monitors.MonitorInfo, _monitors.MonitorCurrent, _monitors.SelectMonitor,
    _video.Video, _video.Keyframe, _video.VideoEnd, _resize.Resize, _resize.ResizeResult,
]
#: Every message; updates and transfer chunks (``xfer_data``) are the binary ones.
Message = Union[ControlMessage, Update, _xfer.XferData]  # noqa: UP007

#: Wire type → class, for every control message.
CONTROL_TYPES: dict[str, type] = {
    cls.T: cls
    for cls in (
        Hello, Auth, Welcome, Screen, Ack, Ping, Pong, Pointer, Wheel, Key, Sync, InputAck,
        Refresh, Close, Peer, Control, RequestControl, ReleaseControl, ControlRequest,
        AnswerControl, Notice, Prefs, *_xfer.TRANSFER_TYPES, *_clip.CLIPBOARD_TYPES,
        *_cursor.CURSOR_TYPES, *_monitors.MONITOR_TYPES,
        *_video.VIDEO_TYPES, *_resize.RESIZE_TYPES,
    )
}
