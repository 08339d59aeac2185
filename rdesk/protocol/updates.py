"""Framebuffer updates: the rectangles of new pixels a host sends (docs/protocol.md, §4 and §5).

An update travels as a websocket *binary* frame; :mod:`rdesk.protocol.codec` lays it out.
"""

from __future__ import annotations

import dataclasses

from rdesk.protocol.encodings import Encoding

__all__ = ["Rect", "Update"]


@dataclasses.dataclass(frozen=True)
class Rect:
    """One rectangle of an update: destination (x, y, w, h) and its encoded payload.

    For :attr:`Encoding.COPY` the payload is the source position, ``src_x, src_y`` (u16 each).
    For image encodings the encoded image may be smaller than (w, h) when the host downscaled
    it; the viewer scales it up to (w, h).
    """

    x: int
    y: int
    w: int
    h: int
    encoding: Encoding
    payload: bytes

    def __repr__(self) -> str:
        return (
            f"Rect({self.x}, {self.y}, {self.w}x{self.h}, {self.encoding.name}, "
            f"{len(self.payload)} B)"
        )


@dataclasses.dataclass(frozen=True)
class Update:
    """Host → viewer: rectangles of new pixels, numbered ``seq``, stamped in host µs."""

    seq: int
    timestamp_us: int
    rects: tuple[Rect, ...]
    #: Set when, once this update is applied, the viewer's framebuffer is pixel-exact: no
    #: lossy rectangle and no change is outstanding for it as of the capture it was cut from.
    exact: bool = False
