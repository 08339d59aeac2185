"""Host IDs: a short, typeable name for a host that is also a commitment to its key.

An ID is the first 65 bits of SHA-256 of the host key's SubjectPublicKeyInfo DER, written as
13 symbols of a 32-symbol alphabet and grouped ``XXXX-XXXX-XXXXX``. Because the ID *is* a
hash of the key, a viewer that knows only the ID can check the key a host presents (through a
relay it does not trust) before it sends any credential: a relay that wanted to present its
own key instead would need about 2^64 work to find one whose hash matches.

The alphabet is Crockford's base32 (``0-9`` and the letters without ``I``, ``L``, ``O``,
``U``). The symbols people confuse read as one: on input ``O`` is ``0`` and ``I``/``L`` are
``1``, case does not matter, and spaces and dashes are ignored, so an ID read aloud over the
phone or copied from a screenshot parses to the same ID. :func:`host_id` writes the canonical
form; :func:`parse_host_id` turns anything a person typed into it.
"""

from __future__ import annotations

import hashlib

__all__ = ["ALPHABET", "ID_BITS", "ID_SYMBOLS", "MAX_ID_INPUT", "host_id", "parse_host_id"]

#: The 32 symbols, in value order.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Bits of the key hash an ID carries.
ID_BITS = 65
#: Symbols in an ID (5 bits each).
ID_SYMBOLS = ID_BITS // 5
#: Longest text :func:`parse_host_id` looks at (13 symbols with generous spacing).
MAX_ID_INPUT = 64
#: Lengths of the displayed groups.
_GROUPS = (4, 4, 5)
#: What each accepted input character means, after upper-casing.
_DECODE: dict[str, str] = {c: c for c in ALPHABET} | {"O": "0", "I": "1", "L": "1"}
_IGNORED = frozenset(" -\t")


def _group(symbols: str) -> str:
    parts, start = [], 0
    for size in _GROUPS:
        parts.append(symbols[start : start + size])
        start += size
    return "-".join(parts)


def host_id(spki_der: bytes) -> str:
    """The ID of the key whose SubjectPublicKeyInfo DER is ``spki_der`` (``XXXX-XXXX-XXXXX``).

    Pure function of the bytes: it does not check they are a well-formed key.
    """
    digest = hashlib.sha256(spki_der).digest()
    # The first 65 bits: nine bytes hold 72, drop the low 7.
    value = int.from_bytes(digest[:9], "big") >> (72 - ID_BITS)
    symbols = "".join(
        ALPHABET[(value >> (5 * (ID_SYMBOLS - 1 - i))) & 31] for i in range(ID_SYMBOLS)
    )
    return _group(symbols)


def parse_host_id(text: str) -> str:
    """The canonical form of the ID a person typed, or ``ValueError`` with a one-line reason.

    Case, spaces and dashes are ignored; ``O`` reads as ``0`` and ``I``/``L`` as ``1``.
    ``parse_host_id(host_id(k)) == host_id(k)`` for every key.
    """
    if not isinstance(text, str):
        raise ValueError("a host ID must be text")
    if len(text) > MAX_ID_INPUT:
        raise ValueError(f"a host ID is {ID_SYMBOLS} symbols; this text is too long")
    # Refuse non-ASCII before upper-casing: str.upper() maps some letters (dotless i, long s)
    # onto ASCII ones and others onto several characters.
    if not text.isascii():
        raise ValueError("a host ID has only letters, digits, spaces and dashes")
    symbols = []
    for char in text.upper():
        if char in _IGNORED:
            continue
        value = _DECODE.get(char)
        if value is None:
            shown = repr(char) if char.isprintable() else f"0x{ord(char):02x}"
            raise ValueError(f"{shown} is not a host ID symbol")
        symbols.append(value)
    if len(symbols) != ID_SYMBOLS:
        raise ValueError(f"a host ID is {ID_SYMBOLS} symbols, not {len(symbols)}")
    return _group("".join(symbols))
