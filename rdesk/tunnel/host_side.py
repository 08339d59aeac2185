"""The host's tunnel: :func:`accept_tunnel` turns a relay data websocket into a
:class:`TunnelTransport`, the :class:`~rdesk.host.serve.transport.Transport` a viewer is served
over.

Call it once the host's ``/data`` connection has sent its ``data`` message: the next message is
the viewer's ClientHello. The tunnel authenticates the host to the viewer, not the viewer: the
viewer still logs in (password, invite) inside it, as over the host's own TLS port.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from rdesk.common.transport import TransportClosed
from rdesk.protocol.errors import CloseCode
from rdesk.tunnel.channel import (
    CLOSE_TIMEOUT,
    HANDSHAKE_TIMEOUT,
    ChannelClosed,
    TunnelChannel,
    WebsocketLike,
    handshake,
)
from rdesk.tunnel.machine import TunnelResponder

__all__ = ["TunnelTransport", "accept_tunnel"]


class TunnelTransport:
    """One viewer's messages through an end-to-end tunnel (a :class:`Transport`).

    ``remote`` is what the caller says the viewer is (the relay cannot tell the host the
    viewer's address in a way the host could trust). ``peer_certificate`` is ``None``: a
    tunnel carries no client certificate.
    """

    peer_certificate: bytes | None = None

    def __init__(self, channel: TunnelChannel, remote: str) -> None:
        self._channel = channel
        self.remote = remote

    @property
    def channel(self) -> TunnelChannel:
        """The tunnel underneath, for why it closed (``close_rcvd``, ``error``)."""
        return self._channel

    async def send(self, frame: str | bytes) -> None:
        try:
            await self._channel.send(frame)
        except ChannelClosed:
            raise TransportClosed(self._why()) from None

    async def recv(self) -> str | bytes:
        try:
            return await self._channel.recv()
        except ChannelClosed:
            raise TransportClosed(self._why()) from None

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        try:
            await self._channel.close(code, reason)
        except Exception:  # the contract: never raises; the websocket is closed either way
            self._channel.done.set()

    def _why(self) -> str:
        channel = self._channel
        if channel.error is not None:
            return f"tunnel broken: {channel.error.reason}"
        if channel.close_rcvd is not None:
            return f"viewer closed the tunnel: {channel.close_rcvd[1] or channel.close_rcvd[0]}"
        return "tunnel closed"


async def accept_tunnel(ws: WebsocketLike, private_key: ec.EllipticCurvePrivateKey,
                        cert_der: bytes, remote: str, *, timeout: float = HANDSHAKE_TIMEOUT,
                        close_timeout: float = CLOSE_TIMEOUT) -> TunnelTransport:
    """Answer a viewer's tunnel over a relay data websocket, as the host ``cert_der`` names.

    Raises ``ValueError`` if the key and certificate do not belong together (nothing read),
    :class:`~rdesk.tunnel.errors.TunnelError` if the viewer's opening is refused (another ID,
    malformed, replayed, a timeout, a websocket closed during the handshake); ``ws`` is
    closed on every failure.
    """
    responder = TunnelResponder(private_key, cert_der)
    await handshake(ws, responder, timeout)
    return TunnelTransport(TunnelChannel(ws, responder, close_timeout), remote)
