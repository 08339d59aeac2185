"""``rdesk watch``: a headless viewer that reports, once a second, what the link delivers.

It keeps a live framebuffer (the :class:`~rdesk.client.connection.Connection` does) and prints
one line per second: updates/s, bytes/s, round-trip time and queueing delay (measured with
protocol pings: current minus smallest seen), and the JPEG quality and scale of the last
update — inferred from the update itself: the scale from the JPEG's size versus its
rectangle's, the quality from the JPEG's luminance quantisation table (libjpeg's standard
scaling, as Pillow writes it).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable

from PIL import Image

from rdesk.client.connection import Connection
from rdesk.protocol.encodings import Encoding
from rdesk.protocol.updates import Update

__all__ = ["estimate_jpeg_quality", "inspect_update", "watch"]

# The JPEG standard's luminance table (Annex K), whose scaled versions libjpeg writes.
_STD_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)


def _table_sum(quality: int) -> int:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return sum(min(255, max(1, (q * scale + 50) // 100)) for q in _STD_LUMA)


_SUMS = {q: _table_sum(q) for q in range(1, 101)}


def estimate_jpeg_quality(table: list[int] | tuple[int, ...]) -> int:
    """The libjpeg quality whose scaled standard table best matches ``table`` (order-free)."""
    total = sum(table)
    return min(_SUMS, key=lambda q: (abs(_SUMS[q] - total), -q))


def inspect_update(update: Update) -> tuple[int | None, float | None]:
    """(JPEG quality, scale) of the largest JPEG rectangle of ``update``, or ``None``s."""
    jpegs = [r for r in update.rects if r.encoding is Encoding.JPEG]
    if not jpegs:
        return None, None
    rect = max(jpegs, key=lambda r: r.w * r.h)
    try:
        with Image.open(io.BytesIO(rect.payload), formats=["JPEG"]) as image:
            scale = image.size[0] / rect.w
            tables = getattr(image, "quantization", None) or {}
            quality = estimate_jpeg_quality(tables[0]) if 0 in tables else None
    except Exception:  # a face reports, it does not judge: the Connection validates
        return None, None
    return quality, round(scale, 3)


async def watch(conn: Connection, duration: float | None, as_json: bool,
                out: Callable[[str], None]) -> None:
    """Print one line per second until ``duration`` seconds pass or the connection ends."""
    start = time.monotonic()
    last_updates, last_bytes, last_at = conn.stats.updates, conn.stats.bytes, start
    quality: int | None = None
    scale: float | None = None
    while duration is None or time.monotonic() - start < duration:
        await conn.ping()
        done, _ = await asyncio.wait([conn.closed], timeout=1.0)
        if done:
            raise conn.closed.result()
        now = time.monotonic()
        stats = conn.stats
        if stats.last_update is not None:
            q, s = inspect_update(stats.last_update)
            quality = q if q is not None else quality
            scale = s if s is not None else scale
        span = max(now - last_at, 1e-6)
        rtt = stats.rtt
        queue = rtt - stats.min_rtt if rtt is not None and stats.min_rtt is not None else None
        line = {
            "t": round(now - start, 2),
            "updates_per_s": round((stats.updates - last_updates) / span, 1),
            "bytes_per_s": round((stats.bytes - last_bytes) / span),
            "rtt_ms": None if rtt is None else round(rtt * 1000, 1),
            "queue_ms": None if queue is None else round(queue * 1000, 1),
            "quality": quality,
            "scale": scale,
            "exact": conn.framebuffer.exact,
        }
        last_updates, last_bytes, last_at = stats.updates, stats.bytes, now
        if as_json:
            out(json.dumps(line))
        else:
            out(
                f"{line['t']:7.1f}s  {line['updates_per_s']:5.1f} upd/s  "
                f"{_rate(line['bytes_per_s'])}  rtt {_ms(line['rtt_ms'])}  "
                f"queue {_ms(line['queue_ms'])}  quality {quality or 'n/a'}  "
                f"scale {scale if scale is not None else 'n/a'}"
                + ("  exact" if line["exact"] else "")
            )


def _ms(value: object) -> str:
    return "n/a" if value is None else f"{value} ms"


def _rate(bytes_per_s: object) -> str:
    bits = float(bytes_per_s) * 8  # type: ignore[arg-type]
    if bits >= 1e6:
        return f"{bits / 1e6:6.2f} Mbit/s"
    return f"{bits / 1e3:6.1f} kbit/s"
