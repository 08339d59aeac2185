"""Several viewers on the wire: who is present and who holds control (docs/multiviewer.md).

The host announces each viewer's arrival and departure (``peer``) and the holder of control
(``control``); a viewer asks for control or gives it up, and the holder answers a request.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from rdesk.protocol import limits
from rdesk.protocol.access import Access
from rdesk.protocol.fields import AccessField, Bool, Field, Int, Str

__all__ = [
    "LOCAL_USER",
    "NOBODY",
    "PRESENCE_TYPES",
    "AnswerControl",
    "Control",
    "ControlRequest",
    "Peer",
    "ReleaseControl",
    "RequestControl",
]

_U32 = Int(0, 0xFFFFFFFF)
_NAME = Str(limits.MAX_STRING)

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


PRESENCE_TYPES = (Peer, Control, RequestControl, ReleaseControl, ControlRequest, AnswerControl)
