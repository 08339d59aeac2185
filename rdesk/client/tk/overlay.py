"""The viewer window's statistics overlay (F9): what it says, computed from counters.

Pure: :class:`OverlayRates` is given the time and the running counters at each refresh and
turns the differences into rates; no toolkit, no clock.
"""

from __future__ import annotations

__all__ = ["OverlayRates", "human_rate"]


class OverlayRates:
    """Paints/s, updates/s and bytes/s between two refreshes of the overlay."""

    def __init__(self, now: float) -> None:
        self._sample: tuple[float, int, int, int] = (now, 0, 0, 0)

    def lines(
        self,
        now: float,
        paints: int,
        updates: int,
        nbytes: int,
        *,
        rtt: float | None,
        exact: bool,
        size: tuple[int, int],
        scale: float,
    ) -> str:
        """The overlay's text for counters ``paints``/``updates``/``nbytes`` at ``now``.

        Rates are over the time since the previous call (or creation); counters that went
        backwards (a new connection starts at zero) count as no progress.
        """
        then, last_paints, last_updates, last_bytes = self._sample
        self._sample = (now, paints, updates, nbytes)
        span = max(now - then, 1e-3)
        fps = max(0, paints - last_paints) / span
        ups = max(0, updates - last_updates) / span
        rate = max(0, nbytes - last_bytes) / span
        round_trip = f"{rtt * 1000:.1f} ms" if rtt is not None else "—"
        quality = "lossless (exact)" if exact else "lossy (JPEG)"
        return (
            f"{fps:5.1f} fps ({ups:.1f} updates/s)\n"
            f"round trip {round_trip}\n"
            f"{human_rate(rate)}\n"
            f"image {quality}\n"
            f"{size[0]}x{size[1]} at {scale * 100:.0f}%"
        )

    def idle(self, now: float, paints: int) -> str:
        """The text while disconnected; the counters restart from here."""
        self._sample = (now, paints, 0, 0)
        return "disconnected"


def human_rate(bytes_per_s: float) -> str:
    """``bytes_per_s`` as bits per second with a unit: ``"1.5 Mbit/s"``."""
    bits = bytes_per_s * 8
    for unit, size in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= size:
            return f"{bits / size:.1f} {unit}"
    return f"{bits:.0f} bit/s"
