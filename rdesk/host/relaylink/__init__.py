"""The host's outbound connection to an ``rdesk relay``: :class:`RelayLink`."""

from rdesk.host.relaylink.backoff import backoff_delay
from rdesk.host.relaylink.link import (
    RelayLink,
    RelayLinkError,
    load_identity,
    rendezvous_session,
)

__all__ = [
    "RelayLink",
    "RelayLinkError",
    "backoff_delay",
    "load_identity",
    "rendezvous_session",
]
