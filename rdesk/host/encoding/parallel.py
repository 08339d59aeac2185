"""Encoding one round's rectangles on several cores.

simplejpeg and Pillow release the GIL while they encode, so a full-screen round's bands are
encoded side by side: the calling thread takes one share and helper threads the others.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rdesk.host.encoding.encode import EncodeCache, EncodedRect
from rdesk.host.encoding.jobs import Job
from rdesk.host.encoding.tiles import changed_box

__all__ = ["ENCODE_WORKERS", "encode_round", "share_out"]

#: Threads one round's rectangles are encoded on side by side.
ENCODE_WORKERS = max(1, min(4, os.cpu_count() or 1))
#: The threads that encode a round's other groups beside the thread running the round.
_HELPERS = ThreadPoolExecutor(max(1, ENCODE_WORKERS - 1), thread_name_prefix="rdesk-encode")


def share_out(jobs: list[Job], parts: int) -> list[list[int]]:
    """Indices of ``jobs`` dealt into at most ``parts`` groups of about equal pixel area."""
    groups: list[list[int]] = [[] for _ in range(min(parts, len(jobs)))]
    loads = [0] * len(groups)
    for i in sorted(range(len(jobs)), key=lambda i: -jobs[i][0][2] * jobs[i][0][3]):
        lightest = loads.index(min(loads))
        groups[lightest].append(i)
        loads[lightest] += jobs[i][0][2] * jobs[i][0][3]
    return groups


def encode_round(
    cache: EncodeCache,
    frame: np.ndarray,
    frame_id: int,
    jobs: list[Job],
    *,
    quality: int,
    scale: float,
    base: np.ndarray | None = None,
    trim: list[bool] | None = None,
    exact_if_flat: bool = False,
) -> list[EncodedRect]:
    """Encode ``jobs`` (rect, lossless); the results in the jobs' order. Blocks: call it in an
    executor thread (one per round, so the event loop is woken once per round).

    With ``base``, pixels the viewer is known to hold exactly in the lossless jobs ``trim``
    flags (all of them if ``trim`` is None), each of those rects is first trimmed to where
    ``frame`` differs from ``base``, and left out if it does nowhere. Lossy jobs are never
    left out, so they come first in the result if they come first in ``jobs``; with
    ``exact_if_flat`` those of flat content come out exact (``encode_rect``).
    """

    def encode(indices: list[int]) -> list[tuple[int, EncodedRect]]:
        out = []
        for i in indices:
            rect: tuple[int, int, int, int] | None = jobs[i][0]
            lossless = jobs[i][1]
            if lossless and base is not None and (trim is None or trim[i]):
                rect = changed_box(base, frame, jobs[i][0])
            if rect is not None:
                out.append((i, cache.get(frame_id, frame, rect, lossless=lossless,
                                         quality=quality, scale=1.0 if lossless else scale,
                                         exact_if_flat=exact_if_flat)))
        return out

    groups = share_out(jobs, ENCODE_WORKERS)
    helpers = [_HELPERS.submit(encode, g) for g in groups[1:]]
    try:
        done = encode(groups[0]) if groups else []
    finally:
        parts = [f.result() for f in helpers]  # never leave a helper running alone
    results = done + [p for part in parts for p in part]
    return [enc for _, enc in sorted(results, key=lambda p: p[0])]
