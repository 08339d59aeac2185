"""Who may move clipboard text which way (``rdesk host --clipboard``): pure rules.

``both``, ``to-viewer`` (the host's copies go out), ``to-host`` (viewers paste in; the
default), ``off``. Only viewers with **control** access take part: a view-only viewer never
writes the host's clipboard, and never receives it either (the clipboard may hold what the
screen never showed, such as a password copied from a manager). Each rule returns ``None`` when
allowed, else the one-line reason the viewer is told.
"""

from __future__ import annotations

from rdesk.protocol.access import Access

__all__ = ["may_read_host", "may_write_host"]


def may_write_host(policy: str, access: Access) -> str | None:
    """Whether a viewer with ``access`` may set the host's clipboard under ``policy``."""
    if policy == "off":
        return "the clipboard is off on this host"
    if access is not Access.CONTROL:
        return "view-only viewers may not write the host's clipboard"
    if policy not in ("both", "to-host"):
        return "this host does not take clipboard text from viewers (--clipboard to-viewer)"
    return None


def may_read_host(policy: str, access: Access) -> str | None:
    """Whether a viewer with ``access`` may receive the host's clipboard under ``policy``."""
    if policy == "off":
        return "the clipboard is off on this host"
    if access is not Access.CONTROL:
        return "view-only viewers do not receive the host's clipboard"
    if policy not in ("both", "to-viewer"):
        return "this host does not share its clipboard (--clipboard to-host)"
    return None
