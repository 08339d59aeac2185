"""The viewer's tunnel: :func:`open_tunnel` turns a spliced relay websocket into a
:class:`TunnelSocket` the viewer's ``Connection`` can use like a websockets ``ClientConnection``.

Call it once the relay has answered ``spliced`` on ``/connect``: the next message on the
websocket is the host's. It verifies the host (its key against the ID, its certificate against
the pin if given) before returning, so before any credential can be sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close

from rdesk.protocol.errors import CloseCode
from rdesk.tunnel.channel import (
    CLOSE_TIMEOUT,
    HANDSHAKE_TIMEOUT,
    ChannelClosed,
    TunnelChannel,
    WebsocketLike,
    handshake,
)
from rdesk.tunnel.errors import TunnelError
from rdesk.tunnel.machine import TunnelInitiator

__all__ = ["TunnelSocket", "open_tunnel"]

_OK_CODES = (CloseCode.NORMAL, CloseCode.GOING_AWAY)


class TunnelSocket:
    """An open tunnel, with the surface of a websockets ``ClientConnection`` the viewer uses.

    ``send``, ``recv``, ``close``, ``async for``, ``close_code`` and ``close_reason`` behave as
    websockets' do, with the *authenticated* close records standing for close frames: once the
    tunnel is closed they raise :class:`~websockets.exceptions.ConnectionClosedOK` (both close
    records sent, codes 1000/1001) or :class:`~websockets.exceptions.ConnectionClosedError`
    (anything else), whose ``rcvd``/``sent`` are those records. A tunnel cut without them
    (relay gone, tampering) has ``close_code`` 1006, like a websocket that lost its TCP
    connection; :attr:`error` then holds the :class:`TunnelError` if the tunnel refused
    something, and the error is the exception's ``__cause__``.

    ``peer_certificate``, ``host_id`` and ``fingerprint`` name the verified host.
    ``protocol.close_rcvd`` (the peer's close record as a websockets ``Close``, or ``None``) is
    there for code that reads it from a websockets connection, as the viewer's does.
    """

    def __init__(self, channel: TunnelChannel, certificate: bytes, host_id: str,
                 fingerprint: str) -> None:
        self._channel = channel
        self.peer_certificate = certificate
        self.host_id = host_id
        self.fingerprint = fingerprint

    @property
    def error(self) -> TunnelError | None:
        """Why the tunnel broke, if it broke rather than closed."""
        return self._channel.error

    @property
    def close_rcvd(self) -> Close | None:
        """The peer's authenticated close record, once it arrived."""
        rcvd = self._channel.close_rcvd
        return Close(*rcvd) if rcvd is not None else None

    @property
    def close_sent(self) -> Close | None:
        """Our authenticated close record, once sent."""
        sent = self._channel.close_sent
        return Close(*sent) if sent is not None else None

    @property
    def protocol(self) -> TunnelSocket:
        """Stands in for a websockets connection's ``protocol`` (``close_rcvd``,
        ``close_sent``)."""
        return self

    @property
    def close_code(self) -> int | None:
        """The peer's close code; ``None`` while open, 1006 if the tunnel was cut."""
        if not self._channel.done.is_set():
            return None
        rcvd = self._channel.close_rcvd
        return rcvd[0] if rcvd is not None else 1006

    @property
    def close_reason(self) -> str | None:
        """The peer's close reason; ``None`` while open, ``""`` if the tunnel was cut."""
        if not self._channel.done.is_set():
            return None
        rcvd = self._channel.close_rcvd
        return rcvd[1] if rcvd is not None else ""

    def _closed(self) -> ConnectionClosed:
        channel = self._channel
        rcvd = Close(*channel.close_rcvd) if channel.close_rcvd is not None else None
        sent = Close(*channel.close_sent) if channel.close_sent is not None else None
        order = channel.rcvd_then_sent if rcvd is not None and sent is not None else None
        if rcvd is not None and sent is not None and rcvd.code in _OK_CODES and (
            sent.code in _OK_CODES
        ):
            return ConnectionClosedOK(rcvd, sent, order)
        return ConnectionClosedError(rcvd, sent, order)

    async def send(self, message: str | bytes) -> None:
        """Send one message (text for ``str``, binary for ``bytes``) through the tunnel."""
        try:
            await self._channel.send(message)
        except ChannelClosed:
            raise self._closed() from self._channel.error

    async def recv(self) -> str | bytes:
        """The host's next message."""
        try:
            return await self._channel.recv()
        except ChannelClosed:
            raise self._closed() from self._channel.error

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the tunnel (close records both ways) and the websocket; idempotent."""
        await self._channel.close(code, reason)

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Messages until the tunnel closes; ends quietly on a clean close, else raises."""
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return


async def open_tunnel(ws: WebsocketLike, expected_id: str, pin: str | None = None, *,
                      timeout: float = HANDSHAKE_TIMEOUT,
                      close_timeout: float = CLOSE_TIMEOUT) -> TunnelSocket:
    """Open the tunnel to the host ``expected_id`` over a spliced relay websocket.

    ``pin`` is the host's key fingerprint (``SHA256:<base64>``; a certificate fingerprint, as
    pins were before, works too) if the viewer has one.
    Raises ``ValueError`` for a malformed ID or pin (nothing sent),
    :class:`~rdesk.tunnel.errors.HostIdentityError` if the host is not the one the ID and pin
    name, :class:`~rdesk.tunnel.errors.TunnelError` for any other failure (including a
    timeout and a websocket closed during the handshake); ``ws`` is closed on every failure.
    """
    initiator = TunnelInitiator(expected_id, pin)
    established = await handshake(ws, initiator, timeout)
    channel = TunnelChannel(ws, initiator, close_timeout)
    return TunnelSocket(
        channel, established.certificate, established.host_id, established.fingerprint
    )
