"""The sans-I/O rdesk session: one per connection, on either side (docs/protocol.md).

A :class:`Session` is fed the websocket messages that arrive (:meth:`Session.receive`) and
asked to produce the ones to send (:meth:`Session.send`); it never performs I/O and never
reads a clock — time is passed in as ``now`` (seconds, monotonic). It enforces the state
machine of :mod:`rdesk.protocol.states`, every rule that depends on connection state (the
nonce, the version, rectangles inside the current screen, acknowledgements of updates in
flight) and the timers (:meth:`next_deadline`, :meth:`handle_timer`).

Errors: a peer's fault raises :class:`RemoteProtocolError` carrying the close code to use;
after it the caller sends :meth:`close_frame` (best effort) and drops the connection.
"""

from __future__ import annotations

from rdesk.protocol import codec, limits
from rdesk.protocol.access import Access
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.errors import CloseCode, LocalProtocolError, RemoteProtocolError
from rdesk.protocol.flow import InFlight
from rdesk.protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    Auth,
    Close,
    Hello,
    Message,
    Ping,
    Pong,
    Screen,
    Welcome,
)
from rdesk.protocol.states import TRANSITIONS, Direction, Role, State
from rdesk.protocol.updates import Update
from rdesk.protocol.video import AckHold, key_bytes

__all__ = ["HANDSHAKE_TIMEOUT", "PING_INTERVAL", "PING_TIMEOUT", "Session"]

#: Seconds a connection may take from its start to being authenticated.
HANDSHAKE_TIMEOUT = 10.0
#: Seconds between application pings on an idle, active connection.
PING_INTERVAL = 15.0
#: Seconds a ping may wait for its pong.
PING_TIMEOUT = 20.0


class Session:
    """One end of an rdesk connection.

    :param role: which end this is.
    :param now: the connection's start time.
    :param handshake_timeout: seconds allowed to reach ``ACTIVE``.
    :param ping_interval: seconds between pings once active, or ``None`` for none.
    :param ping_timeout: seconds a ping may wait for its pong.
    """

    def __init__(
        self,
        role: Role,
        now: float,
        *,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        ping_interval: float | None = PING_INTERVAL,
        ping_timeout: float = PING_TIMEOUT,
        window: int = 2,
    ) -> None:
        self.role = role
        self.state = State.START
        self.nonce: str | None = None
        self.width = 0
        self.height = 0
        #: What the host granted this viewer, once active.
        self.access: Access | None = None
        #: Updates in flight and round-trip estimates (meaningful on the host side).
        self.flow = InFlight(window)
        #: Why the connection closed: (code, reason), once known.
        self.close_reason: tuple[int, str] | None = None
        self._handshake_deadline: float | None = now + handshake_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._next_ping: float | None = None
        self._pending_ping: tuple[int, float] | None = None
        self._ping_id = 0
        self._last_update_seq = -1
        #: Round trip of the last answered ping, in seconds (``None`` until one is answered).
        self.rtt: float | None = None
        #: Smallest ping round trip seen: the link's base delay.
        self.min_rtt: float | None = None
        #: Whether acks may carry ``hold_us``: the host sent ``ack_hold`` (docs/protocol.md §7).
        self.hold_acks = False

    # --- receiving -----------------------------------------------------------------------------

    def receive(self, data: str | bytes, now: float) -> Message:
        """Decode and validate one incoming websocket message; advance the state.

        Returns the message. Raises :class:`RemoteProtocolError` if it is malformed, not
        allowed in the current state, or inconsistent with the connection (wrong nonce or
        version, rectangle outside the screen, ack of an update never sent).
        """
        if self.state is State.CLOSED:
            raise LocalProtocolError("session is closed")
        message = codec.decode(data)
        if isinstance(message, Close):
            self._closed(message.code, message.reason)
            return message
        target = self._transition(Direction.RECEIVE, message)
        self._check_received(message, now)
        self._enter(target, now)
        return message

    def _check_received(self, message: Message, now: float) -> None:
        if isinstance(message, Hello):
            if message.version != PROTOCOL_VERSION:
                raise RemoteProtocolError(
                    f"host speaks rdesk protocol version {message.version}, "
                    f"this viewer speaks {PROTOCOL_VERSION}",
                    CloseCode.VERSION_MISMATCH,
                )
            self.nonce = message.nonce
        elif isinstance(message, Auth):
            if message.version != PROTOCOL_VERSION:
                raise RemoteProtocolError(
                    f"viewer speaks rdesk protocol version {message.version}, "
                    f"this host speaks {PROTOCOL_VERSION}",
                    CloseCode.VERSION_MISMATCH,
                )
            if message.nonce != self.nonce:
                # A replayed Auth from another connection carries another nonce.
                raise RemoteProtocolError(
                    "authentication does not answer this connection's nonce",
                    CloseCode.AUTH_FAILED,
                )
        elif isinstance(message, Welcome):
            self.width, self.height = message.width, message.height
            self.access = message.role
        elif isinstance(message, Screen):
            self.width, self.height = message.width, message.height
        elif isinstance(message, Update):
            self._check_update(message)
        elif isinstance(message, Ack):
            if message.hold_us is not None and not self.hold_acks:
                raise RemoteProtocolError("ack.hold_us before the host's ack_hold")
            self.flow.on_ack(message.seq, now, (message.hold_us or 0) / 1e6)
        elif isinstance(message, AckHold):
            self.hold_acks = True
        elif (
            isinstance(message, Pong)
            and self._pending_ping is not None
            and self._pending_ping[0] == message.id
        ):
            self.rtt = max(0.0, now - self._pending_ping[1])
            self.min_rtt = self.rtt if self.min_rtt is None else min(self.min_rtt, self.rtt)
            self._pending_ping = None

    def _check_update(self, update: Update) -> None:
        if update.seq <= self._last_update_seq:
            raise RemoteProtocolError("update sequence numbers must increase")
        for rect in update.rects:
            if rect.x + rect.w > self.width or rect.y + rect.h > self.height:
                raise RemoteProtocolError(
                    f"rect {rect.x},{rect.y} {rect.w}x{rect.h} lies outside the "
                    f"{self.width}x{self.height} screen"
                )
            if rect.encoding is Encoding.COPY:
                src_x, src_y = codec.copy_source(rect)
                if src_x + rect.w > self.width or src_y + rect.h > self.height:
                    raise RemoteProtocolError("copy rect source lies outside the screen")
        # Only once the whole update is valid, so a refused update changes nothing.
        self._last_update_seq = update.seq

    # --- sending -------------------------------------------------------------------------------

    def send(self, message: Message, now: float) -> str | bytes:
        """Validate ``message`` for the current state, advance the state, return its frame.

        Raises :class:`LocalProtocolError` if the message is not allowed now.
        """
        if self.state is State.CLOSED:
            raise LocalProtocolError("session is closed")
        if isinstance(message, Close):
            frame = codec.encode(message)
            self._closed(message.code, message.reason)
            return frame
        target = self._transition(Direction.SEND, message)
        # Encode (which validates every field) before changing any state, so a refused
        # message leaves the session as it was.
        frame = codec.encode(message)
        if isinstance(message, Auth) and message.nonce != self.nonce:
            raise LocalProtocolError("Auth must carry the nonce of the host's Hello")
        if isinstance(message, Update):
            for rect in message.rects:
                if rect.x + rect.w > self.width or rect.y + rect.h > self.height:
                    raise LocalProtocolError("update rect lies outside the screen")
                if rect.encoding is Encoding.COPY:
                    src_x, src_y = codec.copy_source(rect)
                    if src_x + rect.w > self.width or src_y + rect.h > self.height:
                        raise LocalProtocolError("copy rect source lies outside the screen")
            self.flow.on_sent(message.seq, now, len(frame), key_bytes(message))
        elif isinstance(message, Hello):
            self.nonce = message.nonce
        elif isinstance(message, Ack) and message.hold_us is not None and not self.hold_acks:
            raise LocalProtocolError("ack.hold_us before the host's ack_hold")
        elif isinstance(message, AckHold):
            self.hold_acks = True
        elif isinstance(message, (Welcome, Screen)):
            if isinstance(message, Welcome):
                self.access = message.role
            self.width, self.height = message.width, message.height
        self._enter(target, now)
        return frame

    def close_frame(self, code: int, reason: str) -> str | None:
        """Build the Close message to send and mark the session closed.

        Returns ``None`` if the session is already closed. ``reason`` is truncated to the
        protocol's string limit; it must never carry exception text from internals.
        """
        if self.state is State.CLOSED:
            return None
        # The schema wants a plain int; callers pass ``RemoteProtocolError.code`` (a CloseCode).
        code = int(code) if isinstance(code, CloseCode) else code
        reason = "".join(c for c in reason if c.isprintable())[: limits.MAX_STRING]
        frame = codec.encode(Close(code, reason))
        self._closed(code, reason)
        assert isinstance(frame, str)  # control messages are text
        return frame

    # --- timers --------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The next time :meth:`handle_timer` must be called, or ``None``."""
        times = [
            t
            for t in (
                self._handshake_deadline,
                self._next_ping,
                self._pending_ping[1] + self._ping_timeout if self._pending_ping else None,
            )
            if t is not None
        ]
        return min(times) if times and self.state is not State.CLOSED else None

    def handle_timer(self, now: float) -> list[str | bytes]:
        """Fire due timers; return frames to send.

        Raises :class:`RemoteProtocolError` (``HANDSHAKE_TIMEOUT`` or ``UNRESPONSIVE``) when
        the peer took too long.
        """
        if self.state is State.CLOSED:
            return []
        if self._handshake_deadline is not None and now >= self._handshake_deadline:
            raise RemoteProtocolError(
                "handshake not completed in time", CloseCode.HANDSHAKE_TIMEOUT
            )
        if self._pending_ping is not None and now >= self._pending_ping[1] + self._ping_timeout:
            raise RemoteProtocolError("peer did not answer a ping", CloseCode.UNRESPONSIVE)
        frames: list[str | bytes] = []
        if self._next_ping is not None and now >= self._next_ping:
            assert self._ping_interval is not None
            self._next_ping = now + self._ping_interval
            frame = self.ping(now)
            if frame is not None:
                frames.append(frame)
        return frames

    def ping(self, now: float) -> str | bytes | None:
        """A ping to send now, to measure the round trip (:attr:`rtt`) on demand.

        Returns ``None`` while another ping awaits its pong: one is outstanding at a time, so
        an unanswered ping is caught by the same timeout as the keepalive's.
        """
        if self._pending_ping is not None or self.state is not State.ACTIVE:
            return None
        self._ping_id = (self._ping_id + 1) & 0xFFFFFFFF
        self._pending_ping = (self._ping_id, now)
        if self._ping_interval is not None:
            self._next_ping = now + self._ping_interval
        return self.send(Ping(self._ping_id), now)

    # --- state ---------------------------------------------------------------------------------

    def _transition(self, direction: Direction, message: Message) -> State:
        allowed = TRANSITIONS[(self.role, self.state)][direction]
        target = allowed.get(type(message))
        if target is None:
            name = getattr(message, "T", type(message).__name__.lower())
            verb = "receive" if direction is Direction.RECEIVE else "send"
            text = f"cannot {verb} {name} in state {self.state.value}"
            if direction is Direction.RECEIVE:
                raise RemoteProtocolError(text)
            raise LocalProtocolError(text)
        return target

    def _enter(self, state: State, now: float) -> None:
        if state is State.ACTIVE and self.state is not State.ACTIVE:
            self._handshake_deadline = None
            if self._ping_interval is not None:
                self._next_ping = now + self._ping_interval
        self.state = state

    def _closed(self, code: int, reason: str) -> None:
        self.state = State.CLOSED
        self.close_reason = (code, reason)
        self._handshake_deadline = self._next_ping = self._pending_ping = None
