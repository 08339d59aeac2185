"""Sans-I/O state machines for the relay's peers: the host's control connection and the
viewer's ``/connect`` (their relay-side counterparts are in :mod:`rdesk.relay.protocol`).

Same rules as there: transitions are data, every call takes ``now``, a refusal raises
:class:`~rdesk.relay.messages.RelayProtocolError` and the machine stays closed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from rdesk.protocol.errors import CloseCode
from rdesk.relay import proof
from rdesk.relay.messages import (
    RELAY_VERSION,
    Challenge,
    Connect,
    Data,
    Heartbeat,
    HeartbeatAck,
    Prove,
    Refused,
    Register,
    Registered,
)
from rdesk.relay.protocol import (
    HANDSHAKE_TIMEOUT,
    HEARTBEAT_INTERVAL,
    Machine,
    RelayRefused,
    Step,
    ViewerPhase,
)

__all__ = ["HostLinkMachine", "LinkPhase", "ViewerLinkMachine"]


# --- /host, the host's side -----------------------------------------------------------------


class LinkPhase(enum.Enum):
    START = "starting"
    AWAIT_CHALLENGE = "awaiting challenge"
    AWAIT_REGISTERED = "awaiting registered"
    REGISTERED = "registered"
    CLOSED = "closed"


class HostLinkMachine(Machine[LinkPhase]):
    """The host's side of its control connection; ``sign`` signs bytes with the host key.

    Events returned: :class:`Registered`, :class:`Rendezvous` (open ``/data``, see
    :meth:`data_message`), :class:`RawRendezvous` (the raw lane; ``/data`` is its fallback),
    :class:`Move` (the machine is then closed). A ``refused`` raises
    :class:`RelayRefused`. :meth:`check_timer` returns the heartbeats to send.
    """

    TRANSITIONS = {
        (LinkPhase.START, "send register"): LinkPhase.AWAIT_CHALLENGE,
        (LinkPhase.AWAIT_CHALLENGE, "challenge"): LinkPhase.AWAIT_REGISTERED,
        (LinkPhase.AWAIT_REGISTERED, "registered"): LinkPhase.REGISTERED,
        (LinkPhase.REGISTERED, "heartbeat_ack"): LinkPhase.REGISTERED,
        (LinkPhase.REGISTERED, "rendezvous"): LinkPhase.REGISTERED,
        (LinkPhase.REGISTERED, "rendezvous_raw"): LinkPhase.REGISTERED,
        (LinkPhase.REGISTERED, "move"): LinkPhase.CLOSED,
        (LinkPhase.AWAIT_CHALLENGE, "refused"): LinkPhase.CLOSED,
        (LinkPhase.AWAIT_REGISTERED, "refused"): LinkPhase.CLOSED,
        (LinkPhase.REGISTERED, "refused"): LinkPhase.CLOSED,
    }

    def __init__(
        self,
        now: float,
        *,
        host_id: str,
        spki: bytes,
        token: str | None,
        relay_fingerprint: str,
        sign: Callable[[bytes], bytes],
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        super().__init__(LinkPhase.START, LinkPhase.CLOSED, now)
        self.host_id = host_id
        self.spki = spki
        self.token = token
        self.relay_fingerprint = relay_fingerprint
        self.sign = sign
        self.handshake_timeout = handshake_timeout
        self.interval = HEARTBEAT_INTERVAL
        self.next_heartbeat = float("inf")
        self.ack_due: float | None = None

    def start(self, now: float) -> Register:
        self._advance("send register", now)
        return Register(self.host_id, self.spki, self.token, RELAY_VERSION)

    def receive(self, data: str | bytes, now: float) -> Step:
        message = self._decode(data)
        self._advance(message.T, now)
        if isinstance(message, Refused):
            raise RelayRefused(message.reason or "refused by the relay")
        if isinstance(message, Challenge):
            signed = proof.register_input(message.nonce, self.relay_fingerprint, self.host_id)
            return Step(send=(Prove(self.sign(signed)),))
        if isinstance(message, Registered):
            if message.id != self.host_id:
                raise self.fail("the relay registered another ID")
            self.interval = message.heartbeat
            self.next_heartbeat = now + self.interval
            return Step(event=message)
        if isinstance(message, HeartbeatAck):
            if self.ack_due is None:
                raise self.fail("heartbeat_ack without a heartbeat")
            self.ack_due = None
            return Step()
        return Step(event=message)  # rendezvous, rendezvous_raw, move

    def data_message(self, session: str) -> Data:
        """The first message of the ``/data`` connection answering ``session``."""
        signed = proof.data_input(session, self.relay_fingerprint, self.host_id)
        return Data(self.host_id, session, self.sign(signed))

    def deadline(self) -> float | None:
        if self.phase in (LinkPhase.AWAIT_CHALLENGE, LinkPhase.AWAIT_REGISTERED):
            return self._since + self.handshake_timeout
        if self.phase is LinkPhase.REGISTERED:
            return self.next_heartbeat if self.ack_due is None else self.ack_due
        return None

    def check_timer(self, now: float) -> Step:
        if self.phase is not LinkPhase.REGISTERED:
            return super().check_timer(now)
        if self.ack_due is not None:
            if now >= self.ack_due:
                raise self.fail("the relay stopped answering heartbeats", CloseCode.UNRESPONSIVE)
            return Step()
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.interval
            self.ack_due = now + self.interval
            return Step(send=(Heartbeat(),))
        return Step()



class ViewerLinkMachine(Machine[ViewerPhase]):
    """The viewer's side of ``/connect``: :meth:`start`, then ``spliced`` or :class:`RelayRefused`.

    The relay's ``rendezvous_timeout`` bounds the wait for the host, so the viewer allows a
    handshake timeout on top of it.
    """

    TRANSITIONS = {
        (ViewerPhase.START, "send connect"): ViewerPhase.AWAIT_SPLICED,
        (ViewerPhase.AWAIT_SPLICED, "spliced"): ViewerPhase.SPLICED,
        (ViewerPhase.AWAIT_SPLICED, "raw"): ViewerPhase.SPLICED,
        (ViewerPhase.AWAIT_SPLICED, "refused"): ViewerPhase.CLOSED,
    }

    def __init__(self, now: float, host_id: str, *, timeout: float = 2 * HANDSHAKE_TIMEOUT) -> None:
        super().__init__(ViewerPhase.START, ViewerPhase.CLOSED, now)
        self.host_id = host_id
        self.timeout = timeout

    def start(self, now: float) -> Connect:
        self._advance("send connect", now)
        return Connect(self.host_id, RELAY_VERSION)

    def receive(self, data: str | bytes, now: float) -> Step:
        message = self._decode(data)
        self._advance(message.T, now)
        if isinstance(message, Refused):
            raise RelayRefused(message.reason or "refused by the relay")
        return Step(event=message)

    def deadline(self) -> float | None:
        return self._since + self.timeout if self.phase is ViewerPhase.AWAIT_SPLICED else None
