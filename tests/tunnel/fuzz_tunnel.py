"""atheris harness: the tunnel's parsers and both ends must refuse any input cleanly.

Run: ``python tests/tunnel/fuzz_tunnel.py -max_total_time=60`` (pip install -e .[fuzz]).
Every input, whether given to a fresh host end, to a viewer waiting for ServerHello, to an open
tunnel or to the framing functions, must be accepted or raise
:class:`~rdesk.tunnel.errors.TunnelError` (and leave the end closed); nothing else may escape.
An open tunnel must never accept input it did not seal, and a viewer no ServerHello but the
host's own: inputs are also xored over a genuine ServerHello and a genuine record.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from rdesk.host.security.tls import ensure_host_certificate
    from rdesk.tunnel import TunnelError, TunnelInitiator, TunnelResponder
    from rdesk.tunnel.states import State
    from rdesk.tunnel.wire import (
        decode_close,
        parse_client_hello,
        parse_record,
        parse_server_hello,
    )


def _identity() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    cert_path, key_path = ensure_host_certificate(Path(tempfile.mkdtemp(prefix="rdesk-fuzz-")))
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return key, cert.public_bytes(serialization.Encoding.DER)


KEY, CERT = _identity()
HOST_ID = TunnelResponder(KEY, CERT).host_id


def _open_pair() -> tuple[TunnelInitiator, TunnelResponder]:
    viewer, host = TunnelInitiator(HOST_ID), TunnelResponder(KEY, CERT)
    host.receive(viewer.start())
    viewer.receive(host.data_to_send()[0])
    host.receive(viewer.data_to_send()[0])
    return viewer, host


def _framing(payload: bytes) -> None:
    for parse in (parse_client_hello, parse_server_hello, parse_record, decode_close):
        with contextlib.suppress(TunnelError):
            parse(payload)


def _overlay(genuine: bytes, noise: bytes) -> bytes:
    """``genuine`` with ``noise`` xored over its start and any excess appended: mostly the
    real message, so the fuzzer reaches the checks behind the framing."""
    head = bytes(a ^ b for a, b in zip(genuine, noise, strict=False))
    return head + genuine[len(head) :] + noise[len(genuine) :]


def _changed_handshake(noise: bytes) -> None:
    """A genuine ServerHello, changed by ``noise``, must be refused before any record."""
    viewer, host = TunnelInitiator(HOST_ID), TunnelResponder(KEY, CERT)
    host.receive(viewer.start())
    (genuine,) = host.data_to_send()
    changed = _overlay(genuine, noise)
    try:
        viewer.receive(changed)
    except TunnelError:
        assert viewer.data_to_send() == [] and viewer.state is State.CLOSED
        return
    assert changed == genuine, noise


def _changed_record(noise: bytes) -> None:
    """A genuine record, changed by ``noise``, must be refused."""
    viewer, host = _open_pair()
    genuine = viewer.send(b"the record the relay carries")
    changed = _overlay(genuine, noise)
    try:
        host.receive(changed)
    except TunnelError:
        assert host.state is State.CLOSED
        return
    assert changed == genuine, noise


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    target = fdp.ConsumeIntInRange(0, 5)
    payload = fdp.ConsumeBytes(fdp.remaining_bytes())
    if target == 3:
        _framing(payload)
        return
    if target == 4:
        _changed_handshake(payload)
        return
    if target == 5:
        _changed_record(payload)
        return
    end: TunnelInitiator | TunnelResponder
    if target == 0:
        end = TunnelResponder(KEY, CERT)
    elif target == 1:
        end = TunnelInitiator(HOST_ID)
        end.start()
    else:
        _, end = _open_pair()
    try:
        end.receive(payload)
    except TunnelError:
        assert end.state is State.CLOSED
        return
    # Accepting is possible only for a ClientHello to a fresh host (it asks for no secret).
    assert target == 0, (target, payload)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
