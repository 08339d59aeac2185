"""The exit statuses of ``rdesk``, so that a script can branch on what went wrong.

=====  ===============================================================================
 0     success (``rdesk expect``: the region matched)
 1     any other error (one line on stderr)
 2     bad command line (argparse's usage error)
 3     wrong credentials: the host refused the password, invite code or certificate
 4     the host key changed: it differs from the pinned or remembered one
 5     unknown host key: seen for the first time and not trusted (no --accept-new), or a
       certificate the --ca-file does not vouch for (another issuer, expired, wrong name)
 6     host unreachable: no route, connection refused, no answer in time
 7     refused by policy: the host admitted no one more (limits, consent, throttle...) or
       refused the input (a view-only login), or the viewer refused the host's screen
       (larger than --max-screen)
 8     ``rdesk expect``: the timeout passed without a match
 9     the relay knows no host of that ID (rdesk.cli.relay)
 130   interrupted (Ctrl+C)
=====  ===============================================================================
"""

from __future__ import annotations

import asyncio
import ssl

__all__ = [
    "AUTH_FAILED",
    "ERROR",
    "HOST_KEY_CHANGED",
    "HOST_KEY_UNKNOWN",
    "INTERRUPTED",
    "NO_MATCH",
    "OK",
    "REFUSED",
    "UNREACHABLE",
    "USAGE",
    "exit_code",
]

OK = 0
ERROR = 1
USAGE = 2
AUTH_FAILED = 3
HOST_KEY_CHANGED = 4
HOST_KEY_UNKNOWN = 5
UNREACHABLE = 6
REFUSED = 7
NO_MATCH = 8
INTERRUPTED = 130

#: How the client library words a refusal the host sent (a Close with a reason).
_REFUSED_MARK = " refused the connection: "


def exit_code(exc: BaseException) -> int:
    """The exit status for a user error ``exc`` (one of those ``rdesk`` prints as a line)."""
    from rdesk.cli.common import UsageError
    from rdesk.client.errors import AuthenticationFailed, ConnectError, ScreenRefused
    from rdesk.client.known_hosts import CertificateNotTrusted, HostKeyMismatch, UnknownHostKey

    if isinstance(exc, UsageError):
        return exc.code
    if isinstance(exc, AuthenticationFailed):
        return AUTH_FAILED
    if isinstance(exc, HostKeyMismatch):
        return HOST_KEY_CHANGED
    if isinstance(exc, (UnknownHostKey, CertificateNotTrusted)):
        return HOST_KEY_UNKNOWN
    if isinstance(exc, ScreenRefused):  # the viewer's own policy: --max-screen
        return REFUSED
    if isinstance(exc, ConnectError):
        # The client library raises its errors "from None": the cause is still the context.
        cause = exc.__context__
        if isinstance(cause, (asyncio.TimeoutError, TimeoutError)):
            return UNREACHABLE
        if isinstance(cause, OSError) and not isinstance(cause, ssl.SSLError):
            return UNREACHABLE
        if _REFUSED_MARK in str(exc):
            return REFUSED
    return ERROR
