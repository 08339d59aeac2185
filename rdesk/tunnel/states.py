"""The tunnel's state machine, as data.

``TRANSITIONS[(role, state)][direction]`` maps each message kind allowed in that state to the
state that follows. Anything not in the table is refused. A failure in any state leads to
``CLOSED`` (it is not repeated in the table); nothing is allowed in ``CLOSED``.

The viewer (initiator) sends ClientHello, receives ServerHello and answers it at once with
Finished; the host (responder) receives ClientHello and answers it at once with ServerHello,
then waits for Finished before it sends or accepts any record. Closing mirrors a websocket's
closing handshake: each end sends one close record, the second one answering the first.
"""

from __future__ import annotations

import enum

from rdesk.tunnel.wire import Kind

__all__ = ["TRANSITIONS", "Direction", "Role", "State"]


class Role(enum.Enum):
    """Which end of the tunnel."""

    #: The viewer: it knows the ID (and maybe a pin) and must verify the host.
    INITIATOR = "initiator"
    #: The host: it holds the private key the ID commits to.
    RESPONDER = "responder"


class State(enum.Enum):
    """Where a tunnel end is in its life."""

    START = "start"
    #: Initiator: ClientHello sent.
    AWAIT_SERVER_HELLO = "await_server_hello"
    #: Initiator: ServerHello verified, Finished about to be sent.
    CONFIRMING = "confirming"
    #: Responder: ClientHello received, ServerHello about to be sent.
    ANSWERING = "answering"
    #: Responder: ServerHello sent, waiting for the viewer's Finished.
    AWAIT_FINISHED = "await_finished"
    #: Records flow both ways.
    OPEN = "open"
    #: This end sent its close record; the peer's records in flight and its close may arrive.
    CLOSE_SENT = "close_sent"
    #: The peer's close record arrived; this end owes its own (the echo) and nothing else.
    CLOSE_RECEIVED = "close_received"
    #: Close records went both ways, or something failed: nothing more.
    CLOSED = "closed"


class Direction(enum.Enum):
    SEND = "send"
    RECEIVE = "receive"


_S, _R = Direction.SEND, Direction.RECEIVE
_OPEN_SEND = {Kind.TEXT: State.OPEN, Kind.BINARY: State.OPEN, Kind.CLOSE: State.CLOSE_SENT}
_OPEN_RECEIVE = {
    Kind.TEXT: State.OPEN, Kind.BINARY: State.OPEN, Kind.CLOSE: State.CLOSE_RECEIVED,
}
_CLOSING: dict[State, dict[Direction, dict[Kind, State]]] = {
    State.CLOSE_SENT: {
        Direction.SEND: {},
        Direction.RECEIVE: {
            Kind.TEXT: State.CLOSE_SENT, Kind.BINARY: State.CLOSE_SENT, Kind.CLOSE: State.CLOSED,
        },
    },
    State.CLOSE_RECEIVED: {Direction.SEND: {Kind.CLOSE: State.CLOSED}, Direction.RECEIVE: {}},
    State.CLOSED: {Direction.SEND: {}, Direction.RECEIVE: {}},
}
_I, _H = Role.INITIATOR, Role.RESPONDER

TRANSITIONS: dict[tuple[Role, State], dict[Direction, dict[Kind, State]]] = {
    (_I, State.START): {_S: {Kind.CLIENT_HELLO: State.AWAIT_SERVER_HELLO}, _R: {}},
    (_I, State.AWAIT_SERVER_HELLO): {_S: {}, _R: {Kind.SERVER_HELLO: State.CONFIRMING}},
    (_I, State.CONFIRMING): {_S: {Kind.FINISHED: State.OPEN}, _R: {}},
    (_I, State.OPEN): {_S: _OPEN_SEND, _R: _OPEN_RECEIVE},
    (_H, State.START): {_S: {}, _R: {Kind.CLIENT_HELLO: State.ANSWERING}},
    (_H, State.ANSWERING): {_S: {Kind.SERVER_HELLO: State.AWAIT_FINISHED}, _R: {}},
    (_H, State.AWAIT_FINISHED): {_S: {}, _R: {Kind.FINISHED: State.OPEN}},
    (_H, State.OPEN): {_S: _OPEN_SEND, _R: _OPEN_RECEIVE},
    **{(role, state): table for role in Role for state, table in _CLOSING.items()},
}
