"""Sans-I/O state machines for each kind of relay connection (docs/relay.md).

One machine per connection and side:

* :class:`RelayHostMachine` — the relay's side of a host's control connection (``/host``):
  ``register`` → ``challenge`` → ``prove`` → (directory) → ``registered``, then heartbeats and
  rendezvous until ``move`` or a close.
* :class:`RelayDataMachine` — the relay's side of a host's data connection (``/data``): one
  ``data`` message binding it to a pending rendezvous, then the splice.
* :class:`RelayViewerMachine` — the relay's side of a viewer's ``/connect``: ``connect`` →
  (rendezvous with the host) → ``spliced``.

The peers' sides (the host's control connection, the viewer's ``/connect``) are in
:mod:`rdesk.relay.peers`, on the same base :class:`Machine`.

Transitions are data: each class's ``TRANSITIONS`` maps ``(phase, event)`` to the next phase,
where an event is a received message type (``register``) or a local action, named with a
space so no message can pose as one (``send rendezvous``, ``bind data``);
anything not in the table is refused with one line naming the event and the phase. Machines
never read the clock: every call takes ``now`` (seconds, any monotonic origin) and
:meth:`~Machine.deadline` says when :meth:`~Machine.check_timer` must next be called.

A refusal raises :class:`~rdesk.relay.messages.RelayProtocolError` and leaves the machine
``CLOSED`` for good: every later event is refused too.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import ClassVar, Generic, TypeVar

from rdesk.protocol.errors import CloseCode
from rdesk.relay import proof
from rdesk.relay.messages import (
    MAX_REASON,
    RELAY_VERSION,
    Challenge,
    Connect,
    Data,
    Heartbeat,
    HeartbeatAck,
    Message,
    Move,
    Prove,
    Raw,
    RawRendezvous,
    Refused,
    Register,
    Registered,
    RelayProtocolError,
    Rendezvous,
    Spliced,
    decode,
)

__all__ = [
    "DataPhase",
    "HANDSHAKE_TIMEOUT",
    "HEARTBEAT_INTERVAL",
    "HostPhase",
    "Machine",
    "RelayDataMachine",
    "RelayHostMachine",
    "RelayRefused",
    "RelayViewerMachine",
    "Step",
    "ViewerPhase",
]

#: Seconds a peer has to complete each handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Seconds between a host's heartbeats (the relay tells the host in ``registered``).
HEARTBEAT_INTERVAL = 20.0


class RelayRefused(RelayProtocolError):
    """The relay answered ``refused {reason}``."""

    code = CloseCode.POLICY


@dataclasses.dataclass(frozen=True)
class Step:
    """What one event produced: messages to send (in order), and what happened, if anything."""

    send: tuple[Message, ...] = ()
    event: Message | None = None


P = TypeVar("P", bound=enum.Enum)


class Machine(Generic[P]):
    """Table-driven phase changes, the closed state, and timeouts shared by every machine."""

    TRANSITIONS: ClassVar[Mapping[tuple[enum.Enum, str], enum.Enum]]

    def __init__(self, phase: P, closed: P, now: float) -> None:
        self.phase = phase
        self._closed = closed
        self._since = now  # when the current phase began

    @property
    def closed(self) -> bool:
        return self.phase is self._closed

    def fail(self, reason: str, code: CloseCode = CloseCode.PROTOCOL_ERROR) -> RelayProtocolError:
        """Close the machine and return the error to raise (reasons kept to one short line)."""
        self.phase = self._closed
        return RelayProtocolError(" ".join(reason.split())[:MAX_REASON], code)

    def _advance(self, event: str, now: float) -> None:
        if self.closed:
            raise RelayProtocolError("connection already closed", CloseCode.PROTOCOL_ERROR)
        following = self.TRANSITIONS.get((self.phase, event))
        if following is None:
            raise self.fail(f"unexpected {event} while {self.phase.value}")
        if following is not self.phase:
            self._since = now
        self.phase = following  # type: ignore[assignment]

    def _decode(self, data: str | bytes) -> Message:
        if self.closed:
            raise RelayProtocolError("connection already closed", CloseCode.PROTOCOL_ERROR)
        try:
            return decode(data)
        except RelayProtocolError as exc:
            raise self.fail(exc.reason, exc.code) from None

    def refuse(self, reason: str) -> Refused:
        """Close the machine and return the ``refused`` message to send before closing."""
        self.phase = self._closed
        return Refused(" ".join(reason.split())[:MAX_REASON])

    def deadline(self) -> float | None:
        """When :meth:`check_timer` must next run, or ``None`` if nothing is timed."""
        return None

    def check_timer(self, now: float) -> Step:
        """Raise if a deadline passed; subclasses may also return messages to send."""
        deadline = self.deadline()
        if deadline is not None and now >= deadline:
            raise self.fail(f"timed out while {self.phase.value}", CloseCode.HANDSHAKE_TIMEOUT)
        return Step()


# --- /host, the relay's side ----------------------------------------------------------------


class HostPhase(enum.Enum):
    AWAIT_REGISTER = "awaiting register"
    AWAIT_PROVE = "awaiting prove"
    PROVEN = "registering"
    REGISTERED = "registered"
    CLOSED = "closed"


class RelayHostMachine(Machine[HostPhase]):
    """The relay's side of one host control connection.

    :param nonce: the random challenge for this connection (``NONCE_BYTES``).
    :param relay_fingerprint: the relay's certificate fingerprint, bound into the proof.
    :param enrol: given the token of a ``register``, the reason to refuse it, or ``None``.
    :param expiry: seconds without a heartbeat after which the registration is dropped.

    After a valid ``prove`` the step's ``event`` is the :class:`Register`; the caller then
    records the ID in the directory and calls :meth:`accept` (or :meth:`refuse`).
    """

    TRANSITIONS = {
        (HostPhase.AWAIT_REGISTER, "register"): HostPhase.AWAIT_PROVE,
        (HostPhase.AWAIT_PROVE, "prove"): HostPhase.PROVEN,
        (HostPhase.PROVEN, "send registered"): HostPhase.REGISTERED,
        (HostPhase.REGISTERED, "heartbeat"): HostPhase.REGISTERED,
        (HostPhase.REGISTERED, "send rendezvous"): HostPhase.REGISTERED,
        (HostPhase.REGISTERED, "send rendezvous raw"): HostPhase.REGISTERED,
        (HostPhase.REGISTERED, "send move"): HostPhase.CLOSED,
    }

    def __init__(
        self,
        now: float,
        *,
        nonce: bytes,
        relay_fingerprint: str,
        enrol: Callable[[str | None], str | None],
        heartbeat: float = HEARTBEAT_INTERVAL,
        expiry: float = 3 * HEARTBEAT_INTERVAL,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        super().__init__(HostPhase.AWAIT_REGISTER, HostPhase.CLOSED, now)
        self.nonce = nonce
        self.relay_fingerprint = relay_fingerprint
        self.enrol = enrol
        self.heartbeat = heartbeat
        self.expiry = expiry
        self.handshake_timeout = handshake_timeout
        self.register: Register | None = None
        #: The ID a ``register`` claimed, even one refused (for the audit log).
        self.claimed: str | None = None
        self.last_seen = now

    def receive(self, data: str | bytes, now: float) -> Step:
        message = self._decode(data)
        self._advance(message.T, now)
        if isinstance(message, Register):
            self.claimed = message.id
            if message.version != RELAY_VERSION:
                raise self.fail(f"relay protocol version {message.version} is not supported",
                                CloseCode.VERSION_MISMATCH)
            if proof.load_spki(message.spki) is None:
                raise self.fail("the key is not an ECDSA P-256 key", CloseCode.POLICY)
            if not proof.key_matches_id(message.spki, message.id):
                raise self.fail("the ID is not the hash of this key", CloseCode.POLICY)
            reason = self.enrol(message.token)
            if reason is not None:
                raise self.fail(reason, CloseCode.POLICY)
            self.register = message
            return Step(send=(Challenge(self.nonce),))
        if isinstance(message, Prove):
            assert self.register is not None
            signed = proof.register_input(self.nonce, self.relay_fingerprint, self.register.id)
            if not proof.verify(self.register.spki, message.sig, signed):
                raise self.fail("proof of key ownership failed", CloseCode.POLICY)
            return Step(event=self.register)
        if isinstance(message, Heartbeat):
            self.last_seen = now
            return Step(send=(HeartbeatAck(),), event=message)
        raise self.fail(f"unexpected {message.T}")  # unreachable: the table refused it

    def accept(self, now: float) -> Registered:
        """The directory took the registration: the message telling the host."""
        self._advance("send registered", now)
        self.last_seen = now
        assert self.register is not None
        return Registered(self.register.id, self.heartbeat)

    def rendezvous(self, session: str, now: float, url: str | None = None) -> Rendezvous:
        self._advance("send rendezvous", now)
        return Rendezvous(session, url)

    def rendezvous_raw(self, session: str, now: float, url: str | None, address: str | None,
                       port: int, ticket: bytes) -> RawRendezvous:
        """The raw lane's rendezvous (only for a host that asked for it)."""
        self._advance("send rendezvous raw", now)
        return RawRendezvous(session, url, address, port, ticket)

    def move(self, reason: str, now: float, url: str | None = None) -> Move:
        self._advance("send move", now)
        return Move(" ".join(reason.split())[:MAX_REASON], url)

    def deadline(self) -> float | None:
        if self.phase in (HostPhase.AWAIT_REGISTER, HostPhase.AWAIT_PROVE):
            return self._since + self.handshake_timeout
        if self.phase is HostPhase.REGISTERED:
            return self.last_seen + self.expiry
        return None

    def check_timer(self, now: float) -> Step:
        deadline = self.deadline()
        if self.phase is HostPhase.REGISTERED and deadline is not None and now >= deadline:
            raise self.fail(f"no heartbeat for {self.expiry:g} s", CloseCode.UNRESPONSIVE)
        return super().check_timer(now)


# --- /data, the relay's side ----------------------------------------------------------------


class DataPhase(enum.Enum):
    AWAIT_DATA = "awaiting data"
    AWAIT_BIND = "binding"
    SPLICING = "splicing"
    CLOSED = "closed"


class RelayDataMachine(Machine[DataPhase]):
    """The relay's side of a host's data connection.

    :meth:`receive` returns the :class:`Data` message as the event; the caller looks up the
    pending rendezvous of its session and calls :meth:`bind` with what it found.
    """

    TRANSITIONS = {
        (DataPhase.AWAIT_DATA, "data"): DataPhase.AWAIT_BIND,
        (DataPhase.AWAIT_BIND, "bind data"): DataPhase.SPLICING,
    }

    def __init__(
        self, now: float, *, relay_fingerprint: str, handshake_timeout: float = HANDSHAKE_TIMEOUT
    ) -> None:
        super().__init__(DataPhase.AWAIT_DATA, DataPhase.CLOSED, now)
        self.relay_fingerprint = relay_fingerprint
        self.handshake_timeout = handshake_timeout
        self.data: Data | None = None

    def receive(self, data: str | bytes, now: float) -> Step:
        message = self._decode(data)
        self._advance(message.T, now)
        assert isinstance(message, Data)
        self.data = message
        return Step(event=message)

    def bind(self, expected_id: str | None, spki: bytes | None, now: float) -> None:
        """Check the ``data`` against the pending rendezvous (``None``: there is none)."""
        assert self.data is not None
        if expected_id is None or spki is None:
            raise self.fail("no such rendezvous", CloseCode.POLICY)
        if self.data.id != expected_id:
            raise self.fail("the rendezvous is for another ID", CloseCode.POLICY)
        signed = proof.data_input(self.data.session, self.relay_fingerprint, self.data.id)
        if not proof.verify(spki, self.data.sig, signed):
            raise self.fail("proof of key ownership failed", CloseCode.POLICY)
        self._advance("bind data", now)

    def deadline(self) -> float | None:
        if self.phase in (DataPhase.AWAIT_DATA, DataPhase.AWAIT_BIND):
            return self._since + self.handshake_timeout
        return None


# --- /connect, both sides -------------------------------------------------------------------


class ViewerPhase(enum.Enum):
    START = "starting"
    AWAIT_CONNECT = "awaiting connect"
    AWAIT_HOST = "awaiting the host"
    AWAIT_SPLICED = "awaiting spliced"
    SPLICED = "spliced"
    CLOSED = "closed"


class RelayViewerMachine(Machine[ViewerPhase]):
    """The relay's side of a viewer's ``/connect``.

    :meth:`receive` returns the :class:`Connect` as the event; the caller finds the host and
    asks it for a rendezvous, then calls :meth:`spliced` once the host's data connection is
    bound (or :meth:`refuse`). The host has ``rendezvous_timeout`` seconds to answer.
    """

    TRANSITIONS = {
        (ViewerPhase.AWAIT_CONNECT, "connect"): ViewerPhase.AWAIT_HOST,
        (ViewerPhase.AWAIT_HOST, "send spliced"): ViewerPhase.SPLICED,
        (ViewerPhase.AWAIT_HOST, "send raw"): ViewerPhase.SPLICED,
    }

    def __init__(
        self,
        now: float,
        *,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        rendezvous_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        super().__init__(ViewerPhase.AWAIT_CONNECT, ViewerPhase.CLOSED, now)
        self.handshake_timeout = handshake_timeout
        self.rendezvous_timeout = rendezvous_timeout

    def receive(self, data: str | bytes, now: float) -> Step:
        message = self._decode(data)
        self._advance(message.T, now)
        assert isinstance(message, Connect)
        if message.version != RELAY_VERSION:
            raise self.fail(f"relay protocol version {message.version} is not supported",
                            CloseCode.VERSION_MISMATCH)
        return Step(event=message)

    def spliced(self, now: float) -> Spliced:
        self._advance("send spliced", now)
        return Spliced()

    def raw(self, now: float, address: str | None, port: int, ticket: bytes) -> Raw:
        """The host is on the raw lane: where the viewer goes, with its ticket."""
        self._advance("send raw", now)
        return Raw(address, port, ticket)

    def deadline(self) -> float | None:
        if self.phase is ViewerPhase.AWAIT_CONNECT:
            return self._since + self.handshake_timeout
        if self.phase is ViewerPhase.AWAIT_HOST:
            return self._since + self.rendezvous_timeout
        return None

    def check_timer(self, now: float) -> Step:
        deadline = self.deadline()
        if self.phase is ViewerPhase.AWAIT_HOST and deadline is not None and now >= deadline:
            raise self.fail("the host did not answer in time", CloseCode.POLICY)
        return super().check_timer(now)
