"""Cutting one round of encoded rects into updates a viewer accepts (the host's side of the
protocol's limits on one update: docs/protocol.md)."""

from __future__ import annotations

from collections.abc import Iterator

from rdesk.host.encoding.encode import EncodedRect
from rdesk.protocol import limits

__all__ = ["UPDATE_BUDGET", "batches"]

#: Bytes of payload per update before the rest goes into another update.
UPDATE_BUDGET = limits.MAX_UPDATE_MESSAGE // 2


def batches(encoded: list[EncodedRect], screen: tuple[int, int]
            ) -> Iterator[tuple[list[EncodedRect], bool]]:
    """``encoded`` cut into updates, in order, each with whether it is the last: at most
    :data:`UPDATE_BUDGET` bytes of payload (one rect may be larger), at most
    ``MAX_RECTS_PER_UPDATE`` rects, and rects touching at most ``MAX_UPDATE_SCREENS`` screens of
    ``screen`` (w, h) — a viewer refuses more, and several units of one full-screen video
    stream would touch more."""
    max_area = limits.MAX_UPDATE_SCREENS * screen[0] * screen[1]
    batch: list[EncodedRect] = []
    size = area = 0
    for i, enc in enumerate(encoded):
        batch.append(enc)
        size += len(enc.payload)
        area += enc.w * enc.h
        last = i == len(encoded) - 1
        if (last or size >= UPDATE_BUDGET or len(batch) >= limits.MAX_RECTS_PER_UPDATE
                or area + encoded[i + 1].w * encoded[i + 1].h > max_area):
            yield batch, last
            batch, size, area = [], 0, 0

