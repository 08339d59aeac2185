"""The end-to-end tunnel a viewer and a host run through a relay (docs/relay.md).

Sans-I/O core: :mod:`rdesk.tunnel.machine` (the two ends), :mod:`rdesk.tunnel.wire` (framing
and limits), :mod:`rdesk.tunnel.keys` (the cryptography), :mod:`rdesk.tunnel.states` (the
state machine as data). Async adapters over a websocket: :mod:`rdesk.tunnel.viewer_side`
(:func:`open_tunnel`) and :mod:`rdesk.tunnel.host_side` (:func:`accept_tunnel`).
"""

from rdesk.tunnel.errors import HostIdentityError, TunnelError
from rdesk.tunnel.machine import (
    Closed,
    Established,
    Event,
    Message,
    TunnelInitiator,
    TunnelResponder,
)

__all__ = [
    "Closed",
    "Established",
    "Event",
    "HostIdentityError",
    "Message",
    "TunnelError",
    "TunnelInitiator",
    "TunnelResponder",
]
