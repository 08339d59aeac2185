"""Trust on first use for host keys, like OpenSSH's ``known_hosts``.

A viewer does not verify the host's self-signed certificate against a CA. After the TLS
handshake, and before it sends any credential, it computes the fingerprint of the host's public
key (:func:`~rdesk.protocol.fingerprint.key_fingerprint`, SHA-256 of the SubjectPublicKeyInfo)
and calls :func:`verify_host_key`, which checks it against an explicit pin or the known-hosts
file. A certificate re-issued for the same key has the same key fingerprint: pins survive it.
A changed key is a hard failure (:class:`HostKeyMismatch`); an unknown
one raises :class:`UnknownHostKey` so that the face (CLI, window) can ask the user and then call
:meth:`KnownHosts.add`. This module never prompts.

File format, one entry per line::

    # comment
    example.org:7000 SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU
    [::1]:7000 SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU
    ABCD-EFGH-JKMNP SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU

A host reached by its ID through a relay is an entry without a port (``port=None`` here): the
ID names a key, not a place. Earlier versions wrote IDs as ``ID:1``; such lines are still
found, and replaced by the port-less form when the entry is next written.

The fingerprint of an entry is the host key's (SPKI) one. Entries written before key pins hold
the fingerprint of the whole certificate; :func:`verify_host_key` still accepts them and, on the
first connection that matches one, rewrites that line with the key fingerprint (atomically,
like every write here), so the file converges on key pins without the user doing anything.

Blank lines and ``#`` comments are allowed. Lines that cannot be parsed are ignored for lookups
but kept verbatim when the file is rewritten. Host names are compared case-insensitively and IP
addresses in canonical form; ``localhost`` and ``127.0.0.1`` are different entries, as in OpenSSH.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from rdesk.common.files import atomic_write
from rdesk.protocol.fingerprint import fingerprint, key_fingerprint, pin_matches
from rdesk.protocol.hostid import parse_host_id

__all__ = [
    "CertificateNotTrusted",
    "HostKeyError",
    "HostKeyMismatch",
    "KnownHosts",
    "KnownHostsError",
    "UnknownHostKey",
    "fingerprint",
    "format_host_port",
    "normalize_fingerprint",
    "verify_certificate",
    "verify_host_key",
]

_FINGERPRINT_RE = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


def _display_path(path: Path) -> str:
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except (ValueError, RuntimeError):
        return str(path)


class HostKeyError(Exception):
    """Base class of every error of this module; ``str()`` is always one line."""


class KnownHostsError(HostKeyError):
    """The known-hosts file cannot be read or written, or a fingerprint is malformed."""


class HostKeyMismatch(HostKeyError):
    """The host offered a certificate other than the pinned or remembered one.

    Attributes: ``host``, ``port``, ``expected`` (pinned or stored fingerprint), ``actual``
    (offered fingerprint), ``pinned`` (whether *expected* came from an explicit pin) and
    ``path`` (the known-hosts file, or ``None`` for a pin).
    """

    def __init__(
        self,
        host: str,
        port: int | None,
        expected: str,
        actual: str,
        *,
        pinned: bool = False,
        path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.expected = expected
        self.actual = actual
        self.pinned = pinned
        self.path = path
        where = format_host_port(host, port)
        if pinned:
            msg = (
                f"host key for {where} does not match the pinned fingerprint: "
                f"pinned {expected}, offered {actual}; "
                "refusing to connect (possible man-in-the-middle)"
            )
        else:
            file = _display_path(path) if path is not None else "the known_hosts file"
            msg = (
                f"host key for {where} has CHANGED: known {expected}, offered {actual}; "
                "refusing to connect (possible man-in-the-middle); "
                f"if the host's key really changed, remove its line from {file}"
            )
        super().__init__(msg)


class CertificateNotTrusted(HostKeyError):
    """The host's certificate does not verify against the viewer's CA file (``--ca-file``):
    another issuer, expired, or not for this host name. Raised in the TLS handshake, before
    anything was sent."""


class UnknownHostKey(HostKeyError):
    """First contact with a host, and nothing (pin, ``accept_new``) says to trust it.

    Attributes: ``host``, ``port``, ``fingerprint`` (what the host offered).
    """

    def __init__(self, host: str, port: int | None, fingerprint: str) -> None:
        self.host = host
        self.port = port
        self.fingerprint = fingerprint
        super().__init__(
            f"host {format_host_port(host, port)} is not known; it offered {fingerprint}; "
            "check this against the fingerprint the host printed before trusting it"
        )


def _normalize_host(host: str) -> str:
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


#: The port earlier versions wrote host IDs with (``ID:1``).
_OLD_ID_PORT = 1


def format_host_port(host: str, port: int | None) -> str:
    """Return the entry key for *host*:*port*, e.g. ``example.org:7000`` or ``[::1]:7000``;
    for ``port=None`` *host* is a host ID and the key is its canonical form
    (``ValueError`` if it is not one)."""
    if port is None:
        return parse_host_id(host)
    host = _normalize_host(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _keys(host: str, port: int | None) -> tuple[str, ...]:
    """The entry key of *host*:*port* first, then the keys older versions wrote for it."""
    key = format_host_port(host, port)
    return (key, format_host_port(key, _OLD_ID_PORT)) if port is None else (key,)


def normalize_fingerprint(text: str) -> str:
    """Return *text* as a canonical ``SHA256:<43 chars>`` fingerprint.

    Accepts surrounding whitespace, a lower-case ``sha256:`` prefix or none, and ``=`` padding.
    Raises :class:`KnownHostsError` (one line) if it is not a SHA-256 fingerprint.
    """
    value = text.strip()
    if value[:7].upper() == "SHA256:":
        value = value[7:]
    value = "SHA256:" + value.rstrip("=")
    if not _FINGERPRINT_RE.fullmatch(value):
        raise KnownHostsError(
            f"invalid fingerprint {text.strip()[:80]!r}: expected SHA256: and 43 base64 characters"
        )
    return value


@dataclass(frozen=True)
class _Line:
    """One line of the file: ``key``/``fp`` set for an entry, ``None`` for anything else."""

    text: str
    key: str | None = None
    fp: str | None = None


def _parse_line(text: str) -> _Line:
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return _Line(text)
    fields = stripped.split()
    if len(fields) != 2 or not _FINGERPRINT_RE.fullmatch(fields[1]):
        return _Line(text)
    hostport = fields[0]
    if ":" not in hostport:  # a host ID, port-less
        try:
            return _Line(text, parse_host_id(hostport), fields[1])
        except ValueError:
            return _Line(text)
    if hostport.startswith("["):
        host, sep, port_text = hostport[1:].partition("]:")
    else:
        host, sep, port_text = hostport.rpartition(":")
        if ":" in host:
            return _Line(text)
    if not sep or not host or not (port_text.isascii() and port_text.isdigit()):
        return _Line(text)
    port = int(port_text)
    if not 0 < port < 65536:
        return _Line(text)
    return _Line(text, format_host_port(host, port), fields[1])


class KnownHosts:
    """The known-hosts file at *path* (which need not exist yet).

    The file is read afresh on every call, so edits made by the user or another viewer are seen.
    Writes replace the whole file atomically (temporary file, fsync, rename; mode 0600; parent
    directories created with mode 0700), keeping comments and unparsable lines verbatim.
    Errors reading or writing raise :class:`KnownHostsError` (one line).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _read(self) -> list[_Line]:
        try:
            text = self.path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return []
        except OSError as exc:
            reason = " ".join(str(exc.strerror or exc).split())
            raise KnownHostsError(f"cannot read {self.path}: {reason}") from None
        return [_parse_line(line) for line in text.splitlines()]

    def _write(self, lines: list[_Line]) -> None:
        data = "".join(line.text + "\n" for line in lines)
        try:
            missing = [d for d in [self.path.parent, *self.path.parent.parents] if not d.exists()]
            for d in reversed(missing):
                d.mkdir(mode=0o700)
                os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask
            atomic_write(self.path, data.encode("utf-8", "surrogateescape"), 0o600)
        except OSError as exc:
            reason = " ".join(str(exc.strerror or exc).split())
            raise KnownHostsError(f"cannot write {self.path}: {reason}") from None

    def lookup(self, host: str, port: int | None) -> str | None:
        """Return the remembered fingerprint of *host*:*port*, or ``None``.

        ``port=None``: *host* is a host ID. If the file (wrongly) has several entries for the
        same host and port, the first wins.
        """
        keys = _keys(host, port)
        for line in self._read():
            if line.key in keys:
                return line.fp
        return None

    def add(self, host: str, port: int | None, fingerprint: str) -> None:
        """Remember *fingerprint* for *host*:*port* (appending a line).

        Adding the fingerprint already stored is a no-op. If a *different* fingerprint is stored,
        raises :class:`HostKeyMismatch` and changes nothing; use :meth:`replace` for that.
        Raises :class:`KnownHostsError` for a malformed fingerprint or an I/O error.
        """
        fp = normalize_fingerprint(fingerprint)
        keys = _keys(host, port)
        lines = self._read()
        for line in lines:
            if line.key in keys:
                if line.fp == fp:
                    return
                raise HostKeyMismatch(host, port, line.fp or "", fp, path=self.path)
        lines.append(_Line(f"{keys[0]} {fp}", keys[0], fp))
        self._write(lines)

    def replace(self, host: str, port: int | None, fingerprint: str) -> None:
        """Remember *fingerprint* for *host*:*port*, replacing any entry for that host and port.

        The new entry takes the place of the first old one (or is appended); other entries for
        the same host and port are removed. Only call this after the user has confirmed the
        change. Raises :class:`KnownHostsError` for a malformed fingerprint or an I/O error.
        """
        fp = normalize_fingerprint(fingerprint)
        keys = _keys(host, port)
        new = _Line(f"{keys[0]} {fp}", keys[0], fp)
        out: list[_Line] = []
        placed = False
        for line in self._read():
            if line.key not in keys:
                out.append(line)
            elif not placed:
                out.append(new)
                placed = True
        if not placed:
            out.append(new)
        self._write(out)

    def remove(self, host: str, port: int | None) -> bool:
        """Forget every entry for *host*:*port*; return whether there was one."""
        keys = _keys(host, port)
        lines = self._read()
        kept = [line for line in lines if line.key not in keys]
        if len(kept) == len(lines):
            return False
        self._write(kept)
        return True


def verify_host_key(
    known: KnownHosts,
    host: str,
    port: int,
    fingerprint: str,
    *,
    pinned: str | None,
    accept_new: bool,
    legacy: str | None = None,
) -> str:
    """Decide whether to trust the host key with *fingerprint* offered by *host*:*port*.

    *fingerprint* is the key fingerprint of the certificate the host presented and *legacy*,
    if given, the fingerprint of that whole certificate: what pins and entries made before key
    pins hold. Call this after the TLS handshake and before sending anything. Returns:

    * ``"pinned"`` if *pinned* is given and equals *fingerprint* (or *legacy*); the file is not
      consulted nor changed: an explicit pin overrides it;
    * ``"known"`` if the file holds *fingerprint* for *host*:*port*;
    * ``"migrated"`` if the file held *legacy* for it: the entry now holds *fingerprint*;
    * ``"added"`` if the file has no entry, *accept_new* is true, and the entry was just added.

    Raises :class:`HostKeyMismatch` if *pinned* differs from both or the stored entry does;
    :class:`UnknownHostKey` if there is no entry, no pin, and *accept_new* is false (the
    caller may ask the user and then call :meth:`KnownHosts.add`); :class:`KnownHostsError` for a
    malformed pin or fingerprint or an unreadable/unwritable file. Never prompts.
    """
    offered = normalize_fingerprint(fingerprint)
    old = normalize_fingerprint(legacy) if legacy is not None else None
    if pinned is not None:
        expected = normalize_fingerprint(pinned)
        if not _same(expected, offered) and not (old is not None and _same(expected, old)):
            raise HostKeyMismatch(host, port, expected, offered, pinned=True)
        return "pinned"
    stored = known.lookup(host, port)
    if stored is not None:
        if _same(stored, offered):
            return "known"
        if old is not None and _same(stored, old):
            known.replace(host, port, offered)
            return "migrated"
        raise HostKeyMismatch(host, port, stored, offered, path=known.path)
    if not accept_new:
        raise UnknownHostKey(host, port, offered)
    known.add(host, port, offered)
    return "added"


def verify_certificate(
    known: KnownHosts | None,
    host: str,
    port: int,
    cert_der: bytes,
    *,
    pinned: str | None,
    accept_new: bool,
) -> str:
    """:func:`verify_host_key` for the certificate ``cert_der`` a peer presented: its key
    fingerprint, once trusted. With ``known=None`` only ``pinned`` is checked; with neither,
    the caller has vouched for the peer some other way (a relay trusted on first use).

    Raises what :func:`verify_host_key` raises, and ``ValueError`` for a certificate that
    cannot be read.
    """
    offered = key_fingerprint(cert_der)
    if known is None:
        if pinned is not None and pin_matches(normalize_fingerprint(pinned), cert_der) is None:
            raise HostKeyMismatch(host, port, pinned, offered, pinned=True)
        return offered
    verify_host_key(known, host, port, offered, pinned=pinned, accept_new=accept_new,
                    legacy=fingerprint(cert_der))
    return offered


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
