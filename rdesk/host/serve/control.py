"""Who is connected and who holds control: the host's rules for several viewers, as pure logic.

The rules (docs/multiviewer.md):

* Every viewer has an *access* from its credential: ``control`` (may hold control) or
  ``view``. Only the host decides who may send input (:meth:`ControlBoard.may_input`).
* By default at most one viewer holds control. The first ``control`` viewer to arrive while
  nobody holds it gets it. Another viewer may *request* control: the holder (or the host's
  local user) grants or refuses; a ``view`` viewer can get control only by such a grant.
* With ``shared`` control every ``control`` viewer may send input at once.
* The local user may take control back at any moment (then no viewer may send input) and
  hand it back.
* Every viewer is told who is connected (:class:`Peer`) and who holds control (:class:`Control`).

Every method returns the messages to deliver as ``(target, message)`` pairs: a viewer id,
:data:`EVERYONE`, or :data:`LOCAL` (a line for the host's own user).
"""

from __future__ import annotations

import dataclasses

from rdesk.protocol.access import Access
from rdesk.protocol.messages import ControlMessage, Notice
from rdesk.protocol.presence import LOCAL_USER, NOBODY, Control, ControlRequest, Peer

__all__ = ["ControlBoard", "Member", "EVERYONE", "LOCAL", "Delivery", "holder_label"]

#: Target meaning "every connected viewer".
EVERYONE = -1
#: Target meaning "the host's local user" (the message is a plain line of text).
LOCAL = -2

Delivery = tuple[int, "ControlMessage | str"]


@dataclasses.dataclass(frozen=True)
class Member:
    """A connected viewer as the board sees it."""

    id: int
    name: str
    access: Access


class ControlBoard:
    """The connected viewers, the control holder and pending control requests."""

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        self.members: dict[int, Member] = {}
        #: A viewer id, :data:`NOBODY` or :data:`LOCAL_USER`.
        self.holder = NOBODY
        #: Viewers waiting for an answer to their control request, in arrival order.
        self.pending: dict[int, None] = {}
        #: Who made the last change of :attr:`holder` and how (``by``, ``reason``), for the
        #: host's ``control_change`` audit line.
        self.last_change: tuple[str, str] = ("", "")

    # --- queries -------------------------------------------------------------------------------

    def may_input(self, viewer_id: int) -> bool:
        """True if this viewer's input may reach the host's keyboard and mouse now."""
        member = self.members.get(viewer_id)
        if member is None or self.holder == LOCAL_USER:
            return False
        if self.shared and member.access is Access.CONTROL:
            return True
        return self.holder == viewer_id

    def describe(self) -> list[str]:
        """One line per viewer, for the host's user."""
        lines = []
        for m in self.members.values():
            mark = " (holds control)" if self.may_input(m.id) else ""
            lines.append(f"  #{m.id} {m.name} [{m.access}]{mark}")
        if self.holder == LOCAL_USER:
            lines.append("  the local user holds control")
        return lines or ["  no viewers"]

    # --- changes -------------------------------------------------------------------------------

    def join(self, member: Member) -> list[Delivery]:
        """A viewer was admitted: introduce everyone and, maybe, hand it control."""
        out: list[Delivery] = [
            (member.id, Peer(m.id, m.name, m.access, True)) for m in self.members.values()
        ]
        self.members[member.id] = member
        out.append((EVERYONE, Peer(member.id, member.name, member.access, True)))
        if not self.shared and self.holder == NOBODY and member.access is Access.CONTROL:
            self.holder = member.id
            self.last_change = (f"viewer #{member.id}", "joined while control was free")
            out.append((EVERYONE, Control(self.holder)))
        else:
            out.append((member.id, Control(self.holder)))
        out.append((LOCAL, f"viewer #{member.id} {member.name} joined [{member.access}]"))
        return out

    def leave(self, viewer_id: int) -> list[Delivery]:
        """A viewer left: tell the others; control it held becomes free."""
        member = self.members.pop(viewer_id, None)
        self.pending.pop(viewer_id, None)
        if member is None:
            return []
        out: list[Delivery] = [(EVERYONE, Peer(member.id, member.name, member.access, False))]
        if self.holder == viewer_id:
            self.holder = NOBODY
            self.last_change = (f"viewer #{viewer_id}", "the holder left")
            out.append((EVERYONE, Control(NOBODY)))
        out.append((LOCAL, f"viewer #{member.id} {member.name} left"))
        return out

    def request(self, viewer_id: int) -> list[Delivery]:
        """A viewer asks for control."""
        member = self.members.get(viewer_id)
        if member is None:
            return []
        if self.may_input(viewer_id):
            return [(viewer_id, Notice("you already hold control"))]
        if self.holder == NOBODY and member.access is Access.CONTROL and not self.shared:
            return self._give(viewer_id, f"viewer #{viewer_id}", "requested while control was free")
        self.pending[viewer_id] = None
        out: list[Delivery] = [
            (LOCAL, f"viewer #{viewer_id} {member.name} asks for control: "
                    f"`grant {viewer_id}` or `deny {viewer_id}`"),
            (viewer_id, Notice("control requested; waiting for an answer")),
        ]
        if self.holder in self.members:
            out.append((self.holder, ControlRequest(viewer_id, member.name)))
        return out

    def answer(self, by: int, viewer_id: int, grant: bool) -> list[Delivery] | None:
        """``by`` (the holder, or :data:`LOCAL_USER`) answers ``viewer_id``'s request.

        Returns ``None`` if ``by`` may not answer (not the holder) or nothing is pending:
        the caller treats that as a policy violation to log.
        """
        if by != LOCAL_USER and (by != self.holder or by not in self.members):
            return None
        if viewer_id not in self.pending or viewer_id not in self.members:
            return None
        del self.pending[viewer_id]
        if not grant:
            return [
                (viewer_id, Notice("your control request was refused")),
                (LOCAL, f"viewer #{viewer_id} was refused control"),
            ]
        return self._give(viewer_id, _who(by), "request granted")

    def release(self, viewer_id: int) -> list[Delivery]:
        """The holder gives control up."""
        if self.holder != viewer_id:
            return []
        self.holder = NOBODY
        self.last_change = (f"viewer #{viewer_id}", "released")
        return [(EVERYONE, Control(NOBODY)), (LOCAL, f"viewer #{viewer_id} released control")]

    def take_local(self) -> list[Delivery]:
        """The host's local user takes control: no viewer may send input until released."""
        if self.holder != LOCAL_USER:
            self.last_change = ("local user", "taken back")
        self.holder = LOCAL_USER
        return [(EVERYONE, Control(LOCAL_USER)), (LOCAL, "you hold control; viewers' input is off")]

    def release_local(self) -> list[Delivery]:
        """The local user hands control back: nobody holds it."""
        if self.holder != LOCAL_USER:
            return []
        self.holder = NOBODY
        self.last_change = ("local user", "handed back")
        return [(EVERYONE, Control(NOBODY)), (LOCAL, "control released")]

    def _give(self, viewer_id: int, by: str, reason: str) -> list[Delivery]:
        self.holder = viewer_id
        self.last_change = (by, reason)
        self.pending.pop(viewer_id, None)
        name = self.members[viewer_id].name
        return [
            (EVERYONE, Control(viewer_id)),
            (LOCAL, f"viewer #{viewer_id} {name} holds control"),
        ]


def holder_label(holder: int) -> int | str:
    """A :attr:`ControlBoard.holder` as the audit log writes it: a viewer id, or a word."""
    return "nobody" if holder == NOBODY else "local user" if holder == LOCAL_USER else holder


def _who(actor: int) -> str:
    return "local user" if actor == LOCAL_USER else f"viewer #{actor}"
