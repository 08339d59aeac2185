"""The sans-I/O tunnel ends: bytes in, bytes and events out; no sockets, no clock, no asyncio.

A viewer runs a :class:`TunnelInitiator`, the host a :class:`TunnelResponder`. Each websocket
message that arrives goes to :meth:`receive`, which returns an event (or ``None``) and may
queue handshake messages for :meth:`data_to_send`; :meth:`send` and :meth:`close` return the
record to write. Whatever the peer (or a relay in between) does wrong raises
:class:`~rdesk.tunnel.errors.TunnelError` and leaves the end ``CLOSED``; misuse by the caller
raises :class:`~rdesk.protocol.errors.LocalProtocolError`.

The initiator refuses the host — :class:`~rdesk.tunnel.errors.HostIdentityError` — unless the
key in its certificate hashes to the expected ID, the key matches the pin when there is one (a
key fingerprint; a certificate fingerprint, as pins were before, is still honoured), and that
key signed this handshake (both randoms, both ephemeral keys); all of it before
the first record, so before anything the viewer says can leave it.
"""

from __future__ import annotations

import dataclasses
import hmac
import os

from cryptography.hazmat.primitives.asymmetric import ec

from rdesk.protocol.errors import CloseCode, LocalProtocolError
from rdesk.protocol.fingerprint import fingerprint_hex, key_fingerprint
from rdesk.protocol.hostid import host_id, parse_host_id
from rdesk.tunnel import keys as k
from rdesk.tunnel.errors import HostIdentityError, TunnelError
from rdesk.tunnel.states import TRANSITIONS, Direction, Role, State
from rdesk.tunnel.wire import (
    MAX_CERTIFICATE,
    MAX_RECORD_PAYLOAD,
    RANDOM_SIZE,
    TAG_SIZE,
    TUNNEL_VERSION,
    ClientHello,
    Kind,
    ServerHello,
    decode_close,
    encode_close,
    parse_client_hello,
    parse_record,
    parse_server_hello,
)

__all__ = ["Closed", "Established", "Event", "Message", "TunnelInitiator", "TunnelResponder"]


@dataclasses.dataclass(frozen=True)
class Established:
    """The handshake is complete: records may flow. Names the host that was verified:
    ``fingerprint`` is its key's (SPKI SHA-256), what a viewer pins."""

    host_id: str
    certificate: bytes
    fingerprint: str


@dataclasses.dataclass(frozen=True)
class Message:
    """One authenticated message from the peer: ``str`` for text records, ``bytes`` for binary."""

    data: str | bytes


@dataclasses.dataclass(frozen=True)
class Closed:
    """The peer's authenticated close record: it started the close (answer it with
    :meth:`close`), or it answered ours."""

    code: int
    reason: str


Event = Established | Message | Closed


class _End:
    """What both ends share: the table-driven state, the outgoing queue, the record ciphers."""

    role: Role

    def __init__(self, ephemeral: ec.EllipticCurvePrivateKey | None, random: bytes | None
                 ) -> None:
        if random is not None and len(random) != RANDOM_SIZE:
            raise ValueError(f"random must be {RANDOM_SIZE} bytes")
        self.state = State.START
        self._ephemeral = ephemeral if ephemeral is not None else k.new_ephemeral()[0]
        self._random = random if random is not None else os.urandom(RANDOM_SIZE)
        self._outgoing: list[bytes] = []
        self._sealer: k.RecordCipher | None = None
        self._opener: k.RecordCipher | None = None
        self._transcript = b""

    # --- the table -----------------------------------------------------------------------

    def _advance(self, direction: Direction, kind: Kind) -> None:
        following = TRANSITIONS[(self.role, self.state)][direction].get(kind)
        if following is None:
            if direction is Direction.RECEIVE:
                raise TunnelError(f"unexpected {kind.name} while {self.state.value}")
            raise LocalProtocolError(f"cannot send {kind.name} while {self.state.value}")
        self.state = following

    # --- the caller's side -------------------------------------------------------------------

    def data_to_send(self) -> list[bytes]:
        """Handshake messages queued by :meth:`receive`, to write in order (then forgotten)."""
        out, self._outgoing = self._outgoing, []
        return out

    def receive(self, data: bytes) -> Event | None:
        """Take one websocket message from the peer; raise :class:`TunnelError` if refused."""
        try:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise TunnelError("tunnel messages are binary; got text")
            data = bytes(data)
            if self.state is State.CLOSED:
                raise TunnelError("message after the tunnel closed")
            if not data:
                raise TunnelError("empty tunnel message")
            try:
                kind = Kind(data[0])
            except ValueError:
                raise TunnelError(f"unknown tunnel message type 0x{data[0]:02x}") from None
            if kind not in TRANSITIONS[(self.role, self.state)][Direction.RECEIVE]:
                raise TunnelError(f"unexpected {kind.name} while {self.state.value}")
            return self._dispatch(kind, data)
        except TunnelError:
            self.state = State.CLOSED
            self._outgoing.clear()
            raise

    def send(self, message: str | bytes) -> bytes:
        """The record carrying ``message`` (text for ``str``, binary for ``bytes``).

        Raises :class:`TunnelError` (1001, and the end is ``CLOSED``) once the key has sealed
        :data:`~rdesk.tunnel.keys.MAX_SEALED_BYTES`: the caller reconnects.
        """
        payload = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        if len(payload) > MAX_RECORD_PAYLOAD:
            raise LocalProtocolError(
                f"message of {len(payload)} bytes exceeds {MAX_RECORD_PAYLOAD}", CloseCode.TOO_BIG
            )
        kind = Kind.TEXT if isinstance(message, str) else Kind.BINARY
        self._advance(Direction.SEND, kind)
        assert self._sealer is not None
        try:
            return self._sealer.seal(kind, payload)
        except TunnelError:  # the key is used up: this tunnel can carry nothing more
            self.state = State.CLOSED
            raise

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> bytes | None:
        """This end's authenticated close record, or ``None`` when it has none to send.

        Open: the close record (``CLOSE_SENT`` follows; the peer should answer with its own).
        After the peer's close (``CLOSE_RECEIVED``): the answering record (``CLOSED``).
        Already sent: ``None``. Not yet open: ``None``, and the end is ``CLOSED``.
        """
        if not 1000 <= code <= 4999:
            raise ValueError(f"close code {code} out of range")
        if self.state not in (State.OPEN, State.CLOSE_RECEIVED):
            if self.state is not State.CLOSE_SENT:
                self.state = State.CLOSED
            return None
        self._advance(Direction.SEND, Kind.CLOSE)
        assert self._sealer is not None
        try:
            return self._sealer.seal(Kind.CLOSE, encode_close(code, reason))
        except TunnelError:  # the key is used up even for this: close without a record
            self.state = State.CLOSED
            return None

    # --- receiving -------------------------------------------------------------------------

    def _dispatch(self, kind: Kind, data: bytes) -> Event | None:
        if kind is Kind.CLIENT_HELLO:
            return self._on_client_hello(data)
        if kind is Kind.SERVER_HELLO:
            return self._on_server_hello(data)
        kind, sealed = parse_record(data)
        if len(sealed) - TAG_SIZE > MAX_RECORD_PAYLOAD:
            raise TunnelError(f"record exceeds {MAX_RECORD_PAYLOAD} bytes", CloseCode.TOO_BIG)
        assert self._opener is not None
        plaintext = self._opener.open(kind, sealed)
        if kind is Kind.FINISHED:
            return self._on_finished(plaintext)
        self._advance(Direction.RECEIVE, kind)
        if kind is Kind.CLOSE:
            code, reason = decode_close(plaintext)
            return Closed(code, reason)
        if kind is Kind.TEXT:
            try:
                return Message(plaintext.decode("utf-8"))
            except UnicodeDecodeError:
                raise TunnelError("text record is not UTF-8") from None
        return Message(plaintext)

    def _on_client_hello(self, data: bytes) -> Event | None:
        raise TunnelError("unexpected CLIENT_HELLO")  # pragma: no cover - the table refuses

    def _on_server_hello(self, data: bytes) -> Event | None:
        raise TunnelError("unexpected SERVER_HELLO")  # pragma: no cover - the table refuses

    def _on_finished(self, plaintext: bytes) -> Event | None:
        raise TunnelError("unexpected FINISHED")  # pragma: no cover - the table refuses

    def _install(self, shared: bytes, transcript: bytes) -> None:
        keys = k.derive_keys(shared, transcript)
        viewer = k.RecordCipher(keys.viewer_key, keys.viewer_iv)
        host = k.RecordCipher(keys.host_key, keys.host_iv)
        self._sealer, self._opener = (
            (viewer, host) if self.role is Role.INITIATOR else (host, viewer)
        )
        self._transcript = transcript


class TunnelInitiator(_End):
    """The viewer's end: it knows the ID it asked for and, maybe, a pinned fingerprint.

    ``expected_id`` is parsed with :func:`~rdesk.protocol.hostid.parse_host_id` and ``pin``
    must be a ``SHA256:<base64>`` fingerprint (of the key, or of a certificate of the key);
    either malformed raises ``ValueError``.
    ``ephemeral`` and ``random`` are for tests; leave them out.
    """

    role = Role.INITIATOR

    def __init__(self, expected_id: str, pin: str | None = None, *,
                 ephemeral: ec.EllipticCurvePrivateKey | None = None,
                 random: bytes | None = None) -> None:
        super().__init__(ephemeral, random)
        self.expected_id = parse_host_id(expected_id)
        if pin is not None:
            fingerprint_hex(pin)  # raises ValueError if it is not a fingerprint
        self.pin = pin
        self._hello = b""

    def start(self) -> bytes:
        """The ClientHello, the first message of the tunnel."""
        self._advance(Direction.SEND, Kind.CLIENT_HELLO)
        self._hello = ClientHello(
            TUNNEL_VERSION, self._random, k.point_of(self._ephemeral), self.expected_id
        ).encode()
        return self._hello

    def _on_server_hello(self, data: bytes) -> Event:
        hello = parse_server_hello(data)
        key, offered_fp = k.check_host(hello.certificate, self.expected_id, self.pin)
        signed = k.transcript_hash(self._hello, hello.signed_part())
        if not k.verify_transcript(key, signed, hello.signature):
            raise HostIdentityError("the host's signature over this handshake does not verify")
        shared = k.ecdh(self._ephemeral, hello.ephemeral)
        self._advance(Direction.RECEIVE, Kind.SERVER_HELLO)
        self._install(shared, k.transcript_hash(self._hello, data))
        self._advance(Direction.SEND, Kind.FINISHED)
        assert self._sealer is not None
        self._outgoing.append(self._sealer.seal(Kind.FINISHED, self._transcript))
        return Established(self.expected_id, hello.certificate, offered_fp)


class TunnelResponder(_End):
    """The host's end: its long-term private key and the certificate DER that carries it.

    Raises ``ValueError`` if the certificate is not this key's, or is not one a viewer accepts.
    """

    role = Role.RESPONDER

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, cert_der: bytes, *,
                 ephemeral: ec.EllipticCurvePrivateKey | None = None,
                 random: bytes | None = None) -> None:
        super().__init__(ephemeral, random)
        if len(cert_der) > MAX_CERTIFICATE:
            raise ValueError(f"certificate of {len(cert_der)} bytes exceeds {MAX_CERTIFICATE}")
        try:
            cert_key = k.certificate_key(cert_der)
        except HostIdentityError as exc:
            raise ValueError(exc.reason) from None
        if k.spki(cert_key) != k.spki(private_key.public_key()):
            raise ValueError("the certificate does not carry this private key")
        self._key = private_key
        self.certificate = cert_der
        self.host_id = host_id(k.spki(cert_key))

    def _on_client_hello(self, data: bytes) -> None:
        hello = parse_client_hello(data)
        if hello.host_id != self.host_id:
            raise TunnelError(
                f"this host is {self.host_id}, not {hello.host_id}", CloseCode.POLICY
            )
        shared = k.ecdh(self._ephemeral, hello.ephemeral)
        self._advance(Direction.RECEIVE, Kind.CLIENT_HELLO)
        unsigned = ServerHello(
            TUNNEL_VERSION, self._random, k.point_of(self._ephemeral), self.certificate, b""
        )
        signature = k.sign_transcript(self._key, k.transcript_hash(data, unsigned.signed_part()))
        answer = dataclasses.replace(unsigned, signature=signature).encode()
        self._advance(Direction.SEND, Kind.SERVER_HELLO)
        self._install(shared, k.transcript_hash(data, answer))
        self._outgoing.append(answer)
        return None

    def _on_finished(self, plaintext: bytes) -> Established:
        if not hmac.compare_digest(plaintext, self._transcript):
            raise TunnelError("the viewer's Finished does not confirm this handshake")
        self._advance(Direction.RECEIVE, Kind.FINISHED)
        return Established(self.host_id, self.certificate, key_fingerprint(self.certificate))
