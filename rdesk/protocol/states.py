"""The connection state machine, as data (docs/protocol.md, "States").

``TRANSITIONS[(role, state)]`` maps, for each direction, the message types allowed in that state
to the state that follows. A :class:`~rdesk.protocol.messages.Close` is allowed in every state
but ``CLOSED`` and leads to ``CLOSED``; it is not repeated in the table.
"""

from __future__ import annotations

import enum

from rdesk.protocol.clipboard import HOST_SENDS as _HOST_CLIPBOARD
from rdesk.protocol.clipboard import VIEWER_SENDS as _VIEWER_CLIPBOARD
from rdesk.protocol.cursor import HOST_SENDS as _HOST_CURSOR
from rdesk.protocol.inputs import InputAck, Key, Pointer, Sync, Wheel
from rdesk.protocol.messages import (
    Ack,
    Auth,
    Hello,
    Notice,
    Ping,
    Pong,
    Prefs,
    Refresh,
    Screen,
    Welcome,
)
from rdesk.protocol.monitors import HOST_SENDS as _HOST_MONITORS
from rdesk.protocol.monitors import VIEWER_SENDS as _VIEWER_MONITORS
from rdesk.protocol.presence import (
    AnswerControl,
    Control,
    ControlRequest,
    Peer,
    ReleaseControl,
    RequestControl,
)
from rdesk.protocol.resize import HOST_SENDS as _HOST_RESIZE
from rdesk.protocol.resize import VIEWER_SENDS as _VIEWER_RESIZE
from rdesk.protocol.transfer import HOST_SENDS as _HOST_TRANSFER
from rdesk.protocol.transfer import VIEWER_SENDS as _VIEWER_TRANSFER
from rdesk.protocol.updates import Update
from rdesk.protocol.video import HOST_SENDS as _HOST_VIDEO
from rdesk.protocol.video import VIEWER_SENDS as _VIEWER_VIDEO

__all__ = ["TRANSITIONS", "Direction", "Role", "State"]


class Role(enum.Enum):
    """Which end of the connection a session is."""

    HOST = "host"
    VIEWER = "viewer"


class State(enum.Enum):
    """Where a connection is in its life."""

    #: Host: about to send Hello. Viewer: waiting for Hello.
    START = "start"
    #: Host: Hello sent, waiting for Auth. Viewer: Hello received, must send Auth.
    AWAIT_AUTH = "await_auth"
    #: Host: Auth received, deciding. Viewer: Auth sent, waiting for Welcome.
    AUTHENTICATING = "authenticating"
    #: Authenticated: updates and input flow.
    ACTIVE = "active"
    #: Close sent or received; nothing more may be sent or received.
    CLOSED = "closed"


class Direction(enum.Enum):
    """Whether a message is being sent or received."""

    SEND = "send"
    RECEIVE = "receive"


_S, _R = Direction.SEND, Direction.RECEIVE
_HOST_ACTIVE_SEND = (
    Update, Screen, Ping, Pong, InputAck, Peer, Control, ControlRequest, Notice,
    *_HOST_TRANSFER, *_HOST_CLIPBOARD, *_HOST_CURSOR, *_HOST_MONITORS,
    *_HOST_VIDEO, *_HOST_RESIZE,
)
_VIEWER_ACTIVE_SEND = (
    Ack, Ping, Pong, Pointer, Key, Wheel, Sync, Refresh, RequestControl, ReleaseControl,
    AnswerControl, Prefs, *_VIEWER_TRANSFER, *_VIEWER_CLIPBOARD,
    *_VIEWER_MONITORS, *_VIEWER_VIDEO, *_VIEWER_RESIZE,
)

TRANSITIONS: dict[tuple[Role, State], dict[Direction, dict[type, State]]] = {
    (Role.HOST, State.START): {_S: {Hello: State.AWAIT_AUTH}, _R: {}},
    (Role.HOST, State.AWAIT_AUTH): {_S: {}, _R: {Auth: State.AUTHENTICATING}},
    # A Notice may tell a waiting viewer why it waits (e.g. for the local user's consent).
    (Role.HOST, State.AUTHENTICATING): {
        _S: {Welcome: State.ACTIVE, Notice: State.AUTHENTICATING},
        _R: {},
    },
    (Role.HOST, State.ACTIVE): {
        _S: {t: State.ACTIVE for t in _HOST_ACTIVE_SEND},
        _R: {t: State.ACTIVE for t in _VIEWER_ACTIVE_SEND},
    },
    (Role.VIEWER, State.START): {_S: {}, _R: {Hello: State.AWAIT_AUTH}},
    (Role.VIEWER, State.AWAIT_AUTH): {_S: {Auth: State.AUTHENTICATING}, _R: {}},
    (Role.VIEWER, State.AUTHENTICATING): {
        _S: {},
        _R: {Welcome: State.ACTIVE, Notice: State.AUTHENTICATING},
    },
    (Role.VIEWER, State.ACTIVE): {
        _S: {t: State.ACTIVE for t in _VIEWER_ACTIVE_SEND},
        _R: {t: State.ACTIVE for t in _HOST_ACTIVE_SEND},
    },
}
