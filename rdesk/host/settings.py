"""Every tunable of the host, in one frozen object filled from CLI flags.

Standard library only: the ``rdesk`` command reads it to build its parser even on a
viewer-only install, which lacks the host's libraries.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

__all__ = [
    "CAPTURE_BACKENDS",
    "CLIPBOARD_POLICIES",
    "DEFAULT_CLIPBOARD_MAX",
    "DEFAULT_PORT",
    "PASSWORD_FILE",
    "VIEW_PASSWORD_FILE",
    "CaptureBackend",
    "ClipboardPolicy",
    "HostSettings",
    "default_config_dir",
]

DEFAULT_PORT = 7900
#: The scrypt hash written by ``rdesk passwd``, inside the config directory.
PASSWORD_FILE = "password"
#: The view-only password's hash, written by ``rdesk passwd --view``.
VIEW_PASSWORD_FILE = "view-password"

#: How the screen is captured (``--capture``); see rdesk/host/screen/backends.py.
CaptureBackend = Literal["auto", "shm", "mss"]
#: The names ``--capture`` accepts, in the order ``auto`` tries the last two.
CAPTURE_BACKENDS: tuple[CaptureBackend, ...] = ("auto", "shm", "mss")

#: Which way clipboard text may flow (``--clipboard``); see docs/session.md.
ClipboardPolicy = Literal["both", "to-viewer", "to-host", "off"]
CLIPBOARD_POLICIES: tuple[ClipboardPolicy, ...] = ("both", "to-viewer", "to-host", "off")
#: Largest clipboard text, in UTF-8 bytes, either way (``--clipboard-max``).
DEFAULT_CLIPBOARD_MAX = 1 << 20


def default_config_dir() -> Path:
    """Where certificates, passwords and known hosts live without ``--config-dir``: the
    platform's data directory, or ``~/.config/rdesk`` where an earlier version put them
    (:mod:`rdesk.common.dirs`)."""
    from rdesk.common.dirs import data_dir

    return data_dir()


@dataclasses.dataclass(frozen=True)
class HostSettings:
    """What ``rdesk host`` runs with. Every field has the documented default of its flag."""

    #: X display to share (``None``: ``$DISPLAY``).
    display: str | None = None
    #: Start a private Xvfb of this size (``(width, height)``) instead of sharing a display.
    virtual: tuple[int, int] | None = None
    bind: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    config_dir: Path = dataclasses.field(default_factory=default_config_dir)
    #: Existing certificate and key (e.g. CA-signed); default: the self-signed pair in
    #: ``config_dir``, created on first run.
    cert: Path | None = None
    key: Path | None = None
    #: Accept TLS 1.2 (ECDHE + AEAD suites only) as well as TLS 1.3.
    allow_tls12: bool = False
    #: A file holding the control password in plain text (first line).
    password_file: Path | None = None
    #: A file holding the control password's scrypt hash (``rdesk passwd``'s format), e.g. a
    #: mounted secret; ``None``: ``config_dir/password`` when it exists.
    password_hash_file: Path | None = None
    #: The capture backend: ``shm`` (zero-copy shared memory, changes from X DAMAGE), ``mss``
    #: (portable: copies each frame, finds changes by polling and comparing frames), or
    #: ``auto`` (``shm`` where it works, else mss; X DAMAGE wherever the server has it).
    capture: CaptureBackend = "auto"
    #: Highest capture rate, frames per second.
    max_fps: float = 60.0
    #: Highest JPEG quality for moving regions (1..100); the bandwidth controller goes lower
    #: on a slow link.
    quality: int = 80
    #: Most bits per second sent to each viewer (``None``: only the link limits it).
    max_bandwidth: float | None = None
    #: Updates a viewer may always have unacknowledged; the bandwidth controller allows more,
    #: up to a round trip's worth of rounds (at most 12), within its byte window.
    window: int = 3
    #: Seconds a region must stay still before it is refreshed losslessly.
    lossless_delay: float = 0.12
    #: Largest number of viewers at once.
    max_viewers: int = 16
    #: Seconds a viewer may leave an update unacknowledged before it is dropped.
    stall_timeout: float = 30.0
    #: Connections one address may have in the TLS/websocket handshake; more are reset at
    #: accept, before any TLS work (``--max-handshakes-per-source``).
    max_handshakes_per_source: int = 16
    #: Connections in the handshake over all addresses (``--max-handshakes``).
    max_handshakes: int = 128
    #: Seconds each of the TLS and the websocket handshake may take (``--handshake-timeout``).
    handshake_timeout: float = 10.0
    #: Threads that check passwords (scrypt), apart from the encoders' (``--auth-workers``).
    auth_workers: int = 1
    #: Seconds without input or control request before a viewer is closed (``--idle-timeout``;
    #: 0, the default, never). A lab wants it on.
    idle_timeout: float = 0.0
    #: Seconds a session may last at most (``--max-session``; 0, the default, no limit).
    max_session: float = 0.0
    #: Seconds a controlling viewer may stay silent (no pong, no ack) while holding keys or
    #: buttons before the host releases them (``--held-input-timeout``).
    held_input_timeout: float = 3.0
    #: Dangerous key combinations dropped from control viewers (``--block-keys``; names of
    #: rdesk/host/security/keypolicy.py): by default the VT switch and the X server's zap.
    block_keys: frozenset[str] = frozenset({"vt", "zap"})
    #: Display name of the host, shown to viewers.
    name: str = ""
    #: A file holding the view-only password in plain text (first line).
    view_password_file: Path | None = None
    #: A file holding the view-only password's scrypt hash; ``None``:
    #: ``config_dir/view-password`` when it exists.
    view_password_hash_file: Path | None = None
    #: Let every viewer with control access send input at once.
    shared_control: bool = False
    #: "auto": admit anyone with a valid credential; "ask": the local user accepts each viewer.
    consent: str = "auto"
    #: Seconds the local user has to accept a viewer before it is rejected.
    consent_timeout: float = 30.0
    #: With ``consent == "ask"``: the Unix socket ``rdesk consent`` answers on (``None``: the
    #: default in the user's runtime directory, rdesk/host/serve/consentsock.py).
    consent_socket: Path | None = None
    #: Invite codes to print at start: (role, minutes) pairs.
    invites: tuple[tuple[str, float], ...] = ()
    #: Origins (``https://name[:port]``) besides the host's own whose browser pages may open
    #: the websocket endpoint (``--allow-origin``); see rdesk/site/static.py.
    allowed_origins: tuple[str, ...] = ()
    #: Append security events to this file as JSON lines (``--audit-log``,
    #: rdesk/host/security/audit.py).
    audit_log: Path | None = None
    #: Record each viewer session's screen stream into this directory (``--record``).
    record_dir: Path | None = None
    #: Also record viewers' pointer and key input (``--record-input``); off by default.
    record_input: bool = False
    #: Also record the clipboard messages exchanged (``--record-clipboard``); off by default.
    record_clipboard: bool = False
    #: Admit only viewers presenting a certificate of the CA in ``ca_dir``
    #: (``--require-client-cert``); the role comes from the certificate
    #: (rdesk/host/security/clientcerts.py).
    require_client_cert: bool = False
    #: The viewer CA's directory (default ``config_dir / "ca"``).
    ca_dir: Path | None = None
    #: Also be reachable by ID through this relay (``--relay wss://HOST:PORT``): the host
    #: dials out and keeps a control connection (rdesk/host/relayed.py).
    relay_url: str | None = None
    #: The relay's enrolment token, first line of this file (``--relay-token-file``);
    #: ``None`` for a relay run with ``--open``.
    relay_token_file: Path | None = None
    #: The relay's key fingerprint (``--relay-fingerprint SHA256:...``, as ``rdesk relay``
    #: prints it; a certificate fingerprint works too); ``None``:
    #: trust the first one seen, and print it.
    relay_fingerprint: str | None = None
    #: Listen on ``bind:port`` for direct viewers; ``False`` (``--no-listen``, only with a
    #: relay): reachable through the relay alone.
    listen: bool = True
    #: ``--virtual``'s session command (``None``: openbox and xterm when installed; ``"none"``:
    #: a bare display); see rdesk/host/screen/session.py.
    session: str | None = None
    #: ``--virtual``'s X server (``--virtual-server``): ``xvfb``, or ``xvnc``, which viewers
    #: may resize (rdesk/host/screen/virtual.py).
    virtual_server: str = "xvfb"
    #: Keep hosting after the ``--virtual`` session ends (``--keep-running``).
    keep_running: bool = False
    #: Clipboard direction (``--clipboard``). The default lets control viewers paste into the
    #: host but never reads the host's clipboard out: what the local user copied stays local.
    clipboard: ClipboardPolicy = "to-host"
    #: Also sync the PRIMARY selection (``--clipboard-primary``), not only CLIPBOARD.
    clipboard_primary: bool = False
    #: Largest clipboard text either way, in UTF-8 bytes (``--clipboard-max``).
    clipboard_max: int = DEFAULT_CLIPBOARD_MAX
    #: Share only this RandR monitor (``--monitor N``; ``None``: all); see
    #: rdesk/host/screen/monitors.py.
    monitor: int | None = None
    #: File transfer (docs/transfer.md): ``both``, ``upload`` (viewer → host), ``download``
    #: (host → viewer) or ``off``. ``both`` by default: a viewer with control can already type
    #: anything into the host, so a confined folder adds no power, only safety and an audit.
    transfer: str = "both"
    #: The only folder files are read from or written to (``--transfer-dir``); default
    #: ``~/rdesk-transfer``, created (0700) at the first transfer.
    transfer_dir: Path | None = None
    #: Largest file, and most bytes one viewer session may move, in bytes.
    transfer_max_file: int = 4 << 30
    transfer_max_session: int = 16 << 30
    #: Let view-only viewers transfer too (``--transfer-view-only``); off: they only watch.
    transfer_view_only: bool = False
