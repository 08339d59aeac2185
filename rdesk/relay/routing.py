"""Finding a viewer's host: on this instance, or on another one through the directory.

With a shared directory, the host a viewer asks for may hold its control connection on another
instance. :class:`Router` then forwards the rendezvous through the directory
(:meth:`~rdesk.relay.directory.Directory.forward`) to that instance, which passes it to the
host with this instance's ``public_url``: the host opens its data connection here, where the
viewer waits, and the splice runs here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
from collections.abc import Callable

from websockets.exceptions import ConnectionClosed

from rdesk.protocol.errors import CloseCode
from rdesk.protocol.hostid import parse_host_id
from rdesk.relay.config import RelayConfig
from rdesk.relay.directory import Directory, DirectoryUnavailable, Entry
from rdesk.relay.hosts import Control, HostControls
from rdesk.relay.messages import (
    Message,
    RawRendezvous,
    RelayProtocolError,
    Rendezvous,
    decode,
    encode,
)
from rdesk.relay.rawrelay import RawOffer

__all__ = ["Router"]

log = logging.getLogger(__name__)


class Router:
    """Where hosts are, and how their rendezvous reach them."""

    def __init__(self, config: RelayConfig, directory: Directory, hosts: HostControls,
                 event: Callable[..., None], clock: Callable[[], float],
                 wall_clock: Callable[[], float]) -> None:
        self.config = config
        self.directory = directory
        self.hosts = hosts
        self._event = event
        self.clock = clock
        self.wall_clock = wall_clock

    async def find(self, host_id: str) -> tuple[Control | None, Entry]:
        """Where ``host_id`` is registered: its control connection here, or ``None`` and the
        entry of another instance that can be asked to forward; else the refusal."""
        try:
            entry = await self.directory.lookup(host_id, self.wall_clock())
        except DirectoryUnavailable:
            # The hosts held here are still served; any other is refused (by the caller) as
            # "the relay's directory is unavailable".
            held = self.hosts.holding(host_id)
            if held is None:
                raise
            self._event("directory_bypassed", id=host_id)
            return held, Entry(host_id, held.spki, self.config.instance, held.connection,
                               math.inf)
        if entry is None:
            raise RelayProtocolError("unknown or offline ID", CloseCode.POLICY)
        if entry.instance != self.config.instance:
            if self.config.public_url is None:
                raise RelayProtocolError("the host is registered on another relay instance",
                                         CloseCode.POLICY)
            return None, entry
        control = self.hosts.get(entry.connection)
        if control is None or not control.registered:
            raise RelayProtocolError("unknown or offline ID", CloseCode.POLICY)
        return control, entry

    async def ask(self, control: Control | None, entry: Entry, session: str,
                  source: str, raw: RawOffer | None = None) -> None:
        """Send the rendezvous to the host: directly, or through the instance holding it.
        With ``raw``, a host that can take the raw lane gets ``rendezvous_raw``; any other
        the ordinary rendezvous (the viewer's instance waits for either answer)."""
        lane = "ws"
        if control is not None:
            try:
                if raw is not None and control.raw:
                    message: Message = control.machine.rendezvous_raw(
                        session, self.clock(), None, raw.address, raw.port, raw.ticket)
                    lane = "raw"
                else:
                    message = control.machine.rendezvous(session, self.clock())
                await control.ws.send(encode(message))
            except (RelayProtocolError, ConnectionClosed):
                raise RelayProtocolError("unknown or offline ID", CloseCode.POLICY) from None
            self._event("rendezvous", source=source, id=entry.host_id, session=session,
                        lane=lane)
            return
        fields: dict[str, object] = {"id": entry.host_id, "session": session,
                                     "url": self.config.public_url}
        if raw is not None and raw.forward_address is not None:
            fields["raw"] = {"address": raw.forward_address, "port": raw.port,
                             "ticket": base64.b64encode(raw.ticket).decode()}
        if not await self.directory.forward(entry.instance, json.dumps(fields).encode()):
            raise RelayProtocolError("unknown or offline ID", CloseCode.POLICY)
        self._event("rendezvous", source=source, id=entry.host_id, session=session,
                    via=entry.instance, lane="raw" if "raw" in fields else "ws")

    async def serve_forwarded(self) -> None:
        """Pass rendezvous other instances forward to hosts registered here."""
        try:
            await self._forward_each()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not pass silently: forwarding would just stop
            log.exception("forwarding rendezvous between instances failed")

    async def _forward_each(self) -> None:
        async for request in self.directory.requests(self.config.instance):
            try:
                obj = json.loads(request[:2048])
                host_id, session, url = parse_host_id(obj["id"]), obj["session"], obj["url"]
                raw = obj.get("raw")
                # The fields' bounds, as on the wire:
                plain = decode(encode(Rendezvous(session, url)))
                offer = None if raw is None else decode(encode(RawRendezvous(
                    session, url, raw["address"], raw["port"], base64.b64decode(raw["ticket"]))))
                entry = await self.directory.lookup(host_id, self.wall_clock())
            except (ValueError, KeyError, TypeError, RelayProtocolError,
                    DirectoryUnavailable) as exc:
                log.info("forwarded rendezvous dropped: %s", exc)
                continue
            control = self.hosts.get(entry.connection) if entry is not None else None
            if control is None or not control.registered:
                continue  # the viewer's instance times out and says so
            message: Message
            with contextlib.suppress(RelayProtocolError, ConnectionClosed):
                if isinstance(offer, RawRendezvous) and control.raw:
                    message = control.machine.rendezvous_raw(
                        session, self.clock(), offer.url, offer.address, offer.port,
                        offer.ticket)
                else:
                    assert isinstance(plain, Rendezvous)
                    message = control.machine.rendezvous(session, self.clock(), plain.url)
                await control.ws.send(encode(message))
