"""Running one relay instance: :func:`serve_relay` (the ``rdesk relay`` verb's engine).

It makes (or loads) the relay's TLS identity in its data directory, starts the server, prints
the address and the key fingerprint hosts and viewers pin, and on SIGTERM (or SIGINT) drains: no
new connections, ``move`` to every host, running splices get ``grace`` seconds to end. The
flags are parsed in :mod:`rdesk.cli.relayd`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rdesk.host.security.tls import TLSSetupError, ensure_host_certificate, server_ssl_context
from rdesk.relay.audit import RelayAuditLog
from rdesk.relay.redisdir import RedisDirectory
from rdesk.relay.server import RelayConfig, RelayServer, SplicePortError
from rdesk.relay.tokens import TokenStore

__all__ = ["serve_relay"]

Out = Callable[[str], None]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _certificate_der(cert: Path) -> bytes:
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise TLSSetupError(f"cannot load certificate {cert}: {_one_line(exc)}") from None
    return loaded.public_bytes(serialization.Encoding.DER)


async def serve_relay(
    config: RelayConfig,
    data_dir: Path,
    out: Out,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    audit_log: Path | None = None,
    grace: float = 30.0,
    redis: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a relay until SIGTERM/SIGINT (or ``stop`` is set), then drain it; a second
    signal during the drain closes everything at once.

    Raises :class:`TLSSetupError` / :class:`TokenError` / ``OSError`` with one-line messages.
    """
    if cert is None or key is None:
        cert, key = ensure_host_certificate(data_dir)
    else:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ssl_context = server_ssl_context(cert, key)
    tokens = TokenStore(data_dir)
    audit = RelayAuditLog(audit_log) if audit_log is not None else None
    directory = RedisDirectory(redis) if redis is not None else None
    server = RelayServer(config, ssl_context, _certificate_der(cert), tokens=tokens,
                         directory=directory, on_event=audit)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        try:
            await server.start()
        except OSError as exc:
            # asyncio's own message repeats the address; the errno's text says it plainly
            reason = os.strerror(exc.errno) if exc.errno else _one_line(exc)
            port = config.port
            if isinstance(exc, SplicePortError):
                port, reason = config.splice_bind_port(), f"{reason} (the raw lane's splice " \
                    "port: choose another with --splice-port, or --no-splice)"
            raise OSError(f"cannot listen on {config.bind}:{port}: {reason}") from None
        hurry = asyncio.Event()

        def on_signal() -> None:
            (hurry if stop.is_set() else stop).set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        out(f"rdesk relay: listening on wss://{config.bind}:{server.port}")
        if server.raw is not None and server.raw.splicer is not None:
            out(f"rdesk relay: raw lane on tcp://{config.bind}:{server.raw.port.port} "
                f"(copied in the {server.raw.splicer.kind})")
        out(f"rdesk relay: fingerprint {server.pin}")
        if redis is not None:
            out(f"rdesk relay: instance {config.instance} ({config.public_url}), "
                f"directory {redis}")
        if config.open_enrolment:
            out("rdesk relay: open enrolment: any host that proves its key may register")
        elif not tokens.list():
            out("rdesk relay: no enrolment tokens yet; make one with: rdesk relay token create")
        await stop.wait()
        out(f"rdesk relay: draining (up to {grace:g} s)")
        drain = asyncio.ensure_future(server.drain(grace))
        hurried = asyncio.ensure_future(hurry.wait())
        await asyncio.wait({drain, hurried}, return_when=asyncio.FIRST_COMPLETED)
        hurried.cancel()
        if not drain.done():
            out("rdesk relay: stopping now")
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
        out("rdesk relay: stopped")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await server.stop()
        if directory is not None:
            await directory.close()
        if audit is not None:
            audit.close()
