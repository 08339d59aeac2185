"""The field schemas control messages are made of: each says which JSON values are valid.

A schema is data (:class:`Field` subclasses), so the codec checks every field the same way in
both directions and the JavaScript viewer can mirror the schemas exactly.
"""

from __future__ import annotations

import dataclasses
import re

from rdesk.protocol.access import Access

__all__ = ["ROLES", "AccessField", "Bool", "Field", "Int", "MayOmit", "OneOf", "Str"]

#: What a credential allows, as sent on the wire: ``control`` may send input, ``view`` may
#: only watch (:class:`~rdesk.protocol.access.Access`).
ROLES = tuple(access.value for access in Access)


@dataclasses.dataclass(frozen=True)
class Field:
    """Schema of one JSON field; subclasses say which values are valid."""

    def check(self, value: object) -> str | None:
        """Return ``None`` if ``value`` is valid, else a short description of what was wanted."""
        raise NotImplementedError

    def parse(self, value: object) -> object:
        """The message's value for a wire value that passed :meth:`check`."""
        return value

    def dump(self, value: object) -> object:
        """The wire value for a message's value that passed :meth:`check`."""
        return value


@dataclasses.dataclass(frozen=True)
class Int(Field):
    """An integer (never a bool or a float) in ``[lo, hi]``."""

    lo: int
    hi: int

    def check(self, value: object) -> str | None:
        if type(value) is not int or not self.lo <= value <= self.hi:
            return f"an integer in [{self.lo}, {self.hi}]"
        return None


#: Code points a wire string refuses besides C0 and DEL: the C1 controls (U+0085, and U+009B,
#: the 8-bit CSI that terminals act on) and the bidi embeddings, overrides and isolates,
#: which reorder the text after them (U+202E makes "report\u202efdp.exe" show as
#: "reportexe.pdf"). The bidi *marks* U+200E, U+200F and U+061C are allowed: they reorder no
#: run of text, only give the neutral characters beside them a direction, and right-to-left
#: names need them. codec.js's checkField mirrors this set exactly.
_REFUSED = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclasses.dataclass(frozen=True)
class Str(Field):
    """A string of at most ``max_len`` characters, without control characters.

    Refused: C0 controls, DEL, C1 controls, bidi embeddings/overrides/isolates and lone
    surrogates (docs/protocol.md §2 is normative).
    """

    max_len: int
    min_len: int = 0

    def check(self, value: object) -> str | None:
        if type(value) is not str or not self.min_len <= len(value) <= self.max_len:
            return f"a string of {self.min_len}..{self.max_len} characters"
        if _REFUSED.search(value):
            return "a string without control characters"
        # JSON "\ud800" escapes decode to lone surrogates, which are not text and cannot be
        # encoded as UTF-8 (encode() would fail with UnicodeEncodeError).
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            return "a string without lone surrogates"
        return None


@dataclasses.dataclass(frozen=True)
class Bool(Field):
    """A JSON ``true`` or ``false``."""

    def check(self, value: object) -> str | None:
        return None if type(value) is bool else "a boolean"


@dataclasses.dataclass(frozen=True)
class AccessField(Field):
    """An :class:`Access` level, ``"control"`` or ``"view"`` on the wire."""

    def check(self, value: object) -> str | None:
        ok = isinstance(value, Access) or (type(value) is str and value in ROLES)
        return None if ok else f"one of {ROLES}"

    def parse(self, value: object) -> object:
        assert isinstance(value, str)
        return Access(value)

    def dump(self, value: object) -> object:
        return Access(value).value if isinstance(value, str) else value


@dataclasses.dataclass(frozen=True)
class OneOf(Field):
    """One of a fixed set of strings."""

    values: tuple[str, ...]

    def check(self, value: object) -> str | None:
        return None if type(value) is str and value in self.values else f"one of {self.values}"


@dataclasses.dataclass(frozen=True)
class MayOmit(Field):
    """A field a sender may leave out: the message's value is then ``None``, and ``None`` is
    sent as no member at all. A member that is present must be valid as ``field`` (JSON
    ``null`` is not a value of any field). For what a later feature adds to an existing
    message, sent only to a peer that said it understands it (docs/protocol.md §2)."""

    field: Field

    def check(self, value: object) -> str | None:
        return self.field.check(value)

    def parse(self, value: object) -> object:
        return self.field.parse(value)

    def dump(self, value: object) -> object:
        return self.field.dump(value)
