"""What a relay instance runs with: :class:`RelayConfig` (``rdesk relay`` flags and defaults)."""

from __future__ import annotations

import dataclasses
import secrets

from rdesk.protocol import limits

__all__ = ["DEFAULT_PORT", "SPLICERS", "RelayConfig"]

#: The port ``rdesk relay`` listens on unless told otherwise.
DEFAULT_PORT = 8443
#: What ``--splicer`` may ask for (rdesk/relay/rawsplice.py's ``open_splicer``).
SPLICERS = ("auto", "kernel", "userspace")


@dataclasses.dataclass
class RelayConfig:
    """Every tunable of the relay server. Rates are ``(per second, burst)`` token buckets."""

    bind: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    #: Any host that proves it owns its key may register (no enrolment token needed).
    open_enrolment: bool = False
    #: This instance's name in a shared directory.
    instance: str = dataclasses.field(default_factory=lambda: secrets.token_hex(6))
    #: This instance's own ``wss://`` address, which hosts reach directly (not through the
    #: load balancer): with a shared directory, hosts registered on other instances open their
    #: data connection for this instance's viewers here. ``None``: no rendezvous across
    #: instances.
    public_url: str | None = None
    max_hosts: int = 10_000
    #: Viewers spliced or waiting for their host, in all.
    max_sessions: int = 1_000
    #: Viewers waiting at once for the same ID.
    max_waiting_per_id: int = 4
    #: Largest message across a splice: the tunnel's largest record and some room.
    splice_max_message: int = limits.MAX_UPDATE_MESSAGE + 64 * 1024
    #: Seconds between a host's heartbeats, and without one before it is dropped.
    heartbeat: float = 20.0
    expiry: float = 60.0
    handshake_timeout: float = 10.0
    #: Seconds of silence before the relay pings a peer; as long again without an answer and
    #: the peer is taken for gone (control connections and splices alike).
    ping_interval: float = 20.0
    #: Seconds a viewer waits for its host's data connection.
    rendezvous_timeout: float = 10.0
    #: Viewers (and, separately, data connections) per source address.
    connect_rate: tuple[float, int] = (2.0, 20)
    #: Registrations per source address.
    host_rate: tuple[float, int] = (0.5, 10)
    #: Viewers per host ID, whatever their source: bounds a flood against one host.
    id_rate: tuple[float, int] = (1.0, 10)
    #: Origins (``https://NAME[:PORT]``) besides the relay's own whose browser pages may open
    #: ``/connect`` (``--allow-origin``): a viewer page served from a trusted site.
    allowed_origins: tuple[str, ...] = ()
    #: Where ``move`` sends hosts when draining (``None``: back to the same address).
    move_url: str | None = None
    #: The raw lane (docs/relay.md): viewers and hosts that ask for it meet on a plain TCP
    #: splice port and the relay copies their end-to-end TLS (``--no-splice``: off).
    splice: bool = True
    #: The splice port (``--splice-port``); ``None``: the relay's port + 1 (8444 by default),
    #: or any free port when the relay's port is 0; 0: any free port.
    splice_port: int | None = None
    #: ``HOST:PORT`` told to viewers and hosts instead of this instance's own (a balancer's).
    splice_address: str | None = None
    #: The raw lane's copier (``--splicer``): ``auto`` is the kernel's (BPF sockhash) when this
    #: machine allows it, else userspace with one log line; ``kernel`` or ``userspace`` force.
    splicer: str = "auto"
    #: Sockets on the splice port that have not presented their ticket yet, at most.
    max_raw_pending: int = 256
    #: Seconds a splice-port socket has to send its preamble; a ticket's lifetime.
    preamble_timeout: float = 5.0
    ticket_lifetime: float = 10.0

    def splice_bind_port(self) -> int:
        """The port the splice port binds (see :attr:`splice_port`)."""
        if self.splice_port is not None:
            return self.splice_port
        return self.port + 1 if self.port else 0
