"""How the host cuts one round into updates (rdesk/host/serve/viewer.py ``batches``): by bytes,
by rect count, and by the pixels touched, which a viewer refuses past MAX_UPDATE_SCREENS
screens (``TOO_BIG``) — several units of one full-screen video stream (a shared encoder's
backlog) would touch more."""

from __future__ import annotations

from rdesk.client.framebuffer import UPDATE_BUDGET as VIEWER_SCREENS
from rdesk.host.encoding.encode import EncodedRect
from rdesk.host.serve.batches import UPDATE_BUDGET, batches
from rdesk.protocol import limits
from rdesk.protocol.encodings import Encoding

SCREEN = (640, 480)


def rect(w: int = 640, h: int = 480, nbytes: int = 100, encoding: Encoding = Encoding.H264
         ) -> EncodedRect:
    return EncodedRect(0, 0, w, h, encoding, b"x" * nbytes, exact=False)


def screens(rects: list[EncodedRect]) -> float:
    return sum(r.w * r.h for r in rects) / (SCREEN[0] * SCREEN[1])


def test_a_video_backlog_is_cut_to_what_a_viewer_takes() -> None:
    assert VIEWER_SCREENS == limits.MAX_UPDATE_SCREENS  # the viewer's own limit
    units = [rect() for _ in range(6)] + [rect(64, 64, encoding=Encoding.JPEG)]
    out = list(batches(units, SCREEN))
    assert [len(b) for b, _ in out] == [3, 3, 1]
    assert all(screens(b) <= limits.MAX_UPDATE_SCREENS for b, _ in out)
    assert [last for _, last in out] == [False, False, True]
    assert [r for b, _ in out for r in b] == units  # in order, nothing lost


def test_small_rounds_stay_one_update() -> None:
    tiles = [rect(64, 64, encoding=Encoding.JPEG) for _ in range(40)]
    assert [len(b) for b, _ in batches(tiles, SCREEN)] == [40]
    assert list(batches([], SCREEN)) == []


def test_bytes_and_counts_still_cut() -> None:
    big = [rect(8, 8, UPDATE_BUDGET // 2 + 1, Encoding.JPEG) for _ in range(4)]
    assert [len(b) for b, _ in batches(big, SCREEN)] == [2, 2]
    many = [rect(1, 1, 1, Encoding.JPEG) for _ in range(limits.MAX_RECTS_PER_UPDATE + 1)]
    assert [len(b) for b, _ in batches(many, SCREEN)] == [limits.MAX_RECTS_PER_UPDATE, 1]
