"""Peer-supplied text made safe to show: :func:`shown` (issue 20).

The protocol refuses C0 and C1 controls, DEL and the bidi embeddings, overrides and isolates
in wire strings (:mod:`rdesk.protocol.fields`), so this is the second line of defence: a
name may still carry the bidi marks and separators the wire allows, and a certificate's
subject may carry anything. Whatever a peer chose is passed through :func:`shown` before the
host prints it, logs it, or hands it to another viewer.
"""

from __future__ import annotations

import unicodedata

__all__ = ["shown"]

#: Unicode categories escaped: controls (C0, C1, DEL), format characters (the bidi overrides,
#: embeddings and isolates, zero-width characters), and the line and paragraph separators.
_ESCAPED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


def shown(text: str, limit: int | None = None) -> str:
    """``text`` with every control, format or separator character written as a Python-style
    escape (``\\x9b``, ``\\u202e``); everything else — letters of any script, emoji —
    unchanged. With ``limit``, the result is at most ``limit`` characters, the last being
    ``…`` when it was cut."""
    out = "".join(_escape(c) if unicodedata.category(c) in _ESCAPED else c for c in text)
    if limit is not None and len(out) > limit:
        out = out[: max(0, limit - 1)] + "…"
    return out
