"""The host reachable by ID: its :class:`RelayLink` to a relay, and a tunnel per viewer.

:class:`RelayPresence` keeps the host registered on one relay (the link reconnects with
backoff by itself) and serves every viewer the relay brings: on the raw lane, the host's own
TLS and websocket over the socket the relay copies
(:func:`~rdesk.host.serve.accepted.serve_accepted`); on the websocket lane, the end-to-end
tunnel (:func:`~rdesk.tunnel.host_side.accept_tunnel`) with the host's own key. Then the
ordinary session (:meth:`HostServer.serve_transport`), exactly as a direct viewer is served.

Every relayed viewer reaches the host from the relay's address, so the address says nothing
about who it is. Each one is given a source of its own, ``relay:<session>`` (the relay's
session id of its rendezvous, the same the relay's own audit log records for it), shown on
the console and written in the audit log, and keying the per-source limits: relayed viewers
never share one login-penalty bucket — one of them guessing passwords does not lock the
others out — and the host-wide limits (the global throttle, the rotation of a one-time
password, the cap on viewers not yet logged in) bound them all together (docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec
from websockets.asyncio.client import ClientConnection

from rdesk.host.relaylink import RelayLink, rendezvous_session
from rdesk.host.serve.accepted import serve_accepted
from rdesk.host.serve.server import HostServer
from rdesk.tunnel.errors import TunnelError
from rdesk.tunnel.host_side import accept_tunnel

__all__ = ["RELAYED_SOURCE", "RelayPresence"]

log = logging.getLogger(__name__)

#: The prefix of a relayed viewer's source: ``relay:`` and the rendezvous' session id.
RELAYED_SOURCE = "relay:"
#: Seconds between looks at whether the link is still registered (for the one-line notice).
_WATCH_INTERVAL = 0.5


class RelayPresence:
    """One host's registration on one relay, and the viewers it brings.

    :param server: serves each tunnelled viewer.
    :param key: the host key; ``cert_der`` its certificate (the viewer checks both against
        the ID it asked for).
    :param say: where the lines for the host's user go (ID registered, relay lost).
    :param listening: whether the host also serves direct viewers (said when the relay is lost).
    :param raw_lane: take the relay's raw lane when a viewer comes on it (the host's own TLS
        over a socket the relay copies) besides the tunnel over ``/data``.
    """

    def __init__(
        self,
        server: HostServer,
        relay_url: str,
        key: ec.EllipticCurvePrivateKey,
        cert_der: bytes,
        token: str | None,
        pin: str | None,
        say: Callable[[str], None],
        *,
        listening: bool = True,
        backoff: tuple[float, float] = (1.0, 60.0),
        raw_lane: bool = True,
    ) -> None:
        self.server = server
        self.listening = listening
        self.key = key
        self.cert_der = cert_der
        self.say = say
        self.link = RelayLink(relay_url, key, cert_der, token, pin, on_rendezvous=self._serve,
                              on_raw=self._serve_raw if raw_lane else None, say=say,
                              backoff=backoff)
        self.viewers_served = 0
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def host_id(self) -> str:
        """The host's ID, ``XXXX-XXXX-XXXXX``: what a viewer types."""
        return self.link.host_id

    def start(self) -> None:
        """Run the link (and its watcher) in the background until :meth:`stop`."""
        self._tasks = [
            asyncio.create_task(self.link.run(), name="relay-link"),
            asyncio.create_task(self._watch(), name="relay-watch"),
        ]

    async def stop(self) -> None:
        """End the link and every relayed viewer's task (close the sessions first)."""
        await self.link.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _serve(self, ws: ClientConnection) -> None:
        """One rendezvous: the tunnel, then the session; a failed tunnel is logged, no more."""
        self.viewers_served += 1
        remote = f"{RELAYED_SOURCE}{rendezvous_session.get()}"
        try:
            transport = await accept_tunnel(ws, self.key, self.cert_der, remote)
        except TunnelError as exc:
            self.server.event("rejected", source=remote, reason=f"tunnel: {exc.reason}")
            return
        await self.server.serve_transport(transport)

    async def _serve_raw(self, sock: socket.socket) -> None:
        """One raw lane rendezvous: the host's own TLS and websocket, as on its port."""
        self.viewers_served += 1
        await serve_accepted(self.server, sock, f"{RELAYED_SOURCE}{rendezvous_session.get()}")

    async def _watch(self) -> None:
        """Say in one line when the registration is lost (the link reconnects by itself)."""
        link = self.link
        while True:
            await link.registered.wait()
            while link.registered.is_set():
                await asyncio.sleep(_WATCH_INTERVAL)
            why = link.last_error or "connection closed"
            direct = "; direct viewers are still served" if self.listening else ""
            self.say(f"rdesk host: lost the relay {link.url} ({why}); reconnecting{direct}")
