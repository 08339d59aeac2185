"""What one viewer holds, tile by tile: the host's record behind every COPY it sends.

:class:`Held` keeps, for one viewer, the pixels the host *sent* for every part of the screen
(``sent``: the captured pixels each rectangle was encoded from, exact or lossy), which tiles
have been sent at all since the start or a resize (``known``), and which of those the viewer
holds only as a lossy picture (``lossy``). The invariant, for every pixel of a known tile:

- not lossy: the viewer's pixel *is* ``sent``'s pixel;
- lossy: the viewer's pixel is the decoding of a lossy encoding of ``sent``'s pixels
  (a JPEG of them, perhaps downscaled), which only the viewer knows bit for bit.

Updates reach the viewer in the order the host sends them, so recording each rectangle as it
is sent keeps the invariant — every rectangle, whatever path sent it (tiles through
``Planner.settle``, scrolls through ``Planner.settle_scroll``, a video stream's frames through
``Planner.sent_elsewhere``); a rectangle sent unrecorded would make a later COPY read pixels
the record does not describe. A COPY moves the viewer's pixels from one place to another;
:meth:`Held.scrolled` moves ``sent`` and the lossy flags the same way (a tile that receives any
row of a lossy tile becomes lossy), so the invariant holds after it too. Hence the one rule:
**a COPY may read only known tiles, and what it reads is ``sent``** — scroll detection
compares the new frame with ``sent`` (docs/adaptation.md, "Scrolling"), never with the last
capture. Pure numpy; no clock, no I/O.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Held"]

Box = tuple[int, int, int, int]


def tile_span(start: int, length: int, tile: int) -> slice:
    """The tile indices a pixel run ``[start, start + length)`` touches (``length`` > 0)."""
    return slice(start // tile, (start + length - 1) // tile + 1)


class Held:
    """The host's record of one viewer's picture (see the module docstring).

    :param tiles_shape: the screen's shape in tiles (rows, columns).
    :param tile: tile side in pixels.
    """

    def __init__(self, tiles_shape: tuple[int, int], tile: int) -> None:
        self.tile = tile
        #: Tiles sent at least once since the start or the last resize.
        self.known = np.zeros(tiles_shape, dtype=bool)
        #: Tiles the viewer holds lossy (their lossless refresh is owed).
        self.lossy = np.zeros(tiles_shape, dtype=bool)
        #: The pixels sent for each part of the screen (``None`` until the first send).
        #: Read-only for others: it may be a captured frame itself (see :meth:`scrolled`).
        self.sent: np.ndarray | None = None
        #: Whether ``sent`` is a frame shared with the capture (copied before any write).
        self._borrowed = False

    def reset(self, tiles_shape: tuple[int, int]) -> None:
        """The screen changed size: the viewer holds nothing the host knows of."""
        self.known = np.zeros(tiles_shape, dtype=bool)
        self.lossy = np.zeros(tiles_shape, dtype=bool)
        self.sent = None
        self._borrowed = False

    def tiles_of(self, box: Box) -> tuple[slice, slice]:
        """(rows, columns) of the tiles a pixel box touches."""
        x, y, w, h = box
        return tile_span(y, h, self.tile), tile_span(x, w, self.tile)

    def record(self, box: Box, frame: np.ndarray, lossy: bool) -> None:
        """``frame``'s pixels in ``box`` were sent (encoded exactly, or not: any lossy
        encoding, a video frame included, is recorded ``lossy``).

        ``box`` must cover whole tiles, or else the rest of each tile it touches must already
        be held exactly as ``frame`` has it (a rect trimmed against ``sent``, or a scroll's
        exposed strip), since every tile it touches becomes known, and exact unless ``lossy``.
        """
        if self.sent is None or self.sent.shape != frame.shape:
            self.sent, self._borrowed = np.zeros_like(frame), False
        elif self._borrowed:
            self.sent, self._borrowed = self.sent.copy(), False
        x, y, w, h = box
        self.sent[y : y + h, x : x + w] = frame[y : y + h, x : x + w]
        self._flag(box, lossy)

    def record_all(self, rects: list[tuple[Box, bool]], frame: np.ndarray) -> None:
        """:meth:`record` each of ``rects`` (box, lossy), which do not overlap. When they
        cover the whole screen (full-screen motion, a video frame), ``frame`` becomes the
        record itself instead of being copied into it, as in :meth:`scrolled`."""
        height, width = frame.shape[:2]
        if sum(w * h for (_, _, w, h), _ in rects) != width * height:
            for box, lossy in rects:
                self.record(box, frame, lossy)
            return
        for box, lossy in rects:
            self._flag(box, lossy)
        self.sent, self._borrowed = frame, True

    def _flag(self, box: Box, lossy: bool) -> None:
        rows, cols = self.tiles_of(box)
        self.known[rows, cols] = True
        if lossy:
            self.lossy[rows, cols] = True

    def refreshed(self, box: Box) -> None:
        """``box`` was re-sent exactly over whole tiles: they are no longer lossy."""
        rows, cols = self.tiles_of(box)
        self.lossy[rows, cols] = False

    def copyable(self, y: int, h: int) -> bool:
        """Whether every tile of the full-width band ``[y, y + h)`` is known: the only
        pixels a COPY may read."""
        if self.sent is None or h <= 0:
            return False
        return bool(self.known[tile_span(y, h, self.tile)].all())

    def scrolled(self, src_y: int, dst_y: int, height: int, rects: list[tuple[Box, bool]],
                 frame: np.ndarray) -> None:
        """A scroll was sent: the viewer copies the full-width band of ``height`` rows at
        ``src_y`` to ``dst_y``, which moves the flags with the pixels (a tile receiving any
        row of a lossy tile becomes lossy); then ``rects`` (box, lossy) encoded from
        ``frame``, which together make what was sent equal ``frame`` everywhere (what
        :func:`~rdesk.host.encoding.scrolls.plan_scroll` guarantees: outside the rects the
        copied record already equals ``frame``). ``frame`` is then the record itself, not a
        copy of it: a terminal scrolling on costs no pixel copies (it is copied before any later
        :meth:`record` writes to it). Raises ``ValueError`` if the source is not
        :meth:`copyable`: a COPY from pixels the host does not know the viewer holds."""
        self._move_flags(src_y, dst_y, height)
        for box, lossy in rects:
            self._flag(box, lossy)
        self.sent, self._borrowed = frame, True

    def _move_flags(self, src_y: int, dst_y: int, height: int) -> None:
        self.lossy, self.known = self.flags_after_copy(src_y, dst_y, height)

    def flags_after_copy(self, src_y: int, dst_y: int, height: int
                         ) -> tuple[np.ndarray, np.ndarray]:
        """(lossy, known) as they would be after copying the full-width band of ``height``
        rows at ``src_y`` to ``dst_y``; changes nothing. Raises ``ValueError`` if the source
        is not :meth:`copyable`."""
        if not self.copyable(src_y, height):
            raise ValueError(f"COPY from rows {src_y}..{src_y + height} the viewer does not hold")
        tile = self.tile
        lossy, known = self.lossy.copy(), self.known.copy()
        for r in range(dst_y // tile, (dst_y + height - 1) // tile + 1):
            top, bottom = max(r * tile, dst_y), min((r + 1) * tile, dst_y + height)
            source = tile_span(top - dst_y + src_y, bottom - top, tile)
            whole = top == r * tile and bottom == (r + 1) * tile
            moved = self.lossy[source].any(axis=0)
            if whole:
                lossy[r] = moved
                known[r] = True
            else:  # partly overwritten: it keeps its own rows, lossy if either part is
                lossy[r] = self.lossy[r] | moved
        return lossy, known
