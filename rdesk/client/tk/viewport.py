"""Where the host's screen sits in the viewer window, and the way back to host pixels.

Pure logic, no toolkit: the desktop window asks a :class:`Viewport` where to draw the
(possibly scaled) screen and which host pixel lies under the pointer.

Two modes:

- ``fit``: the screen is scaled (up or down) to the largest size that fits the window and
  keeps the aspect ratio, centred, with bars around it;
- ``1``: one host pixel per window pixel; a screen larger than the window scrolls (the
  :attr:`Viewport.scroll_x`/``scroll_y`` offsets), a smaller one is centred.

The mapping is the one nearest-neighbour and box resampling use: window pixel ``d`` of a
displayed width ``D`` showing a host width ``H`` samples the host pixel
``floor((d + 0.5) * H / D)``, the pixel under its centre. :meth:`Viewport.window_to_host`
returns exactly that pixel, so a click lands on the host pixel that is drawn where the user
clicked, under every scale. :meth:`Viewport.host_to_window` is its inverse: the first window
pixel that maps to a host pixel (when the screen is scaled up or shown 1:1 every host pixel
has one), and :meth:`Viewport.host_to_window_exact` the centre of a host pixel in fractional
window coordinates, which maps back to that pixel under any scale.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

__all__ = ["FIT", "ONE_TO_ONE", "Mode", "Viewport"]

Mode = Literal["fit", "1"]
FIT: Mode = "fit"
ONE_TO_ONE: Mode = "1"


def _span_to_display(lo: int, hi: int, host: int, disp: int) -> tuple[int, int]:
    """Display pixels [a, b) whose sampled host pixel lies in [lo, hi)."""
    # d samples floor((2d + 1) * host / (2 * disp)) >= lo  <=>  d >= (2*lo*disp - host) / (2*host)
    a = -((host - 2 * lo * disp) // (2 * host))
    b = -((host - 2 * hi * disp) // (2 * host))
    return max(0, a), min(disp, b)


@dataclasses.dataclass(frozen=True)
class Viewport:
    """The screen of ``host_w × host_h`` shown in a window of ``win_w × win_h``.

    Immutable: :meth:`resized`, :meth:`with_mode`, :meth:`scrolled` return new viewports.
    """

    host_w: int
    host_h: int
    win_w: int
    win_h: int
    mode: Mode = FIT
    scroll_x: int = 0
    scroll_y: int = 0

    def __post_init__(self) -> None:
        if self.host_w < 1 or self.host_h < 1:
            raise ValueError("the host screen must be at least 1x1")
        if self.win_w < 1 or self.win_h < 1:
            raise ValueError("the window must be at least 1x1")
        if self.mode not in (FIT, ONE_TO_ONE):
            raise ValueError(f"unknown scale mode {self.mode!r}")
        # Clamp the scroll offsets into range (only meaningful 1:1).
        object.__setattr__(self, "scroll_x", max(0, min(self.scroll_x, self.max_scroll[0])))
        object.__setattr__(self, "scroll_y", max(0, min(self.scroll_y, self.max_scroll[1])))

    # --- geometry --------------------------------------------------------------------------------

    @property
    def display_size(self) -> tuple[int, int]:
        """Size in window pixels of the screen as drawn (the scaled image's size)."""
        if self.mode == ONE_TO_ONE:
            return self.host_w, self.host_h
        # The largest size that fits, keeping the aspect ratio; integer arithmetic so that
        # the limiting side matches the window exactly.
        if self.win_w * self.host_h <= self.win_h * self.host_w:
            w = self.win_w
            h = max(1, (self.host_h * self.win_w + self.host_w // 2) // self.host_w)
            h = min(h, self.win_h)
        else:
            h = self.win_h
            w = max(1, (self.host_w * self.win_h + self.host_h // 2) // self.host_h)
            w = min(w, self.win_w)
        return w, h

    @property
    def scale(self) -> float:
        """Window pixels per host pixel (horizontally)."""
        return self.display_size[0] / self.host_w

    @property
    def max_scroll(self) -> tuple[int, int]:
        if self.mode != ONE_TO_ONE:
            return 0, 0
        return max(0, self.host_w - self.win_w), max(0, self.host_h - self.win_h)

    @property
    def origin(self) -> tuple[int, int]:
        """Window position of the drawn screen's top-left pixel (negative when scrolled)."""
        dw, dh = self.display_size
        x = -self.scroll_x if dw > self.win_w else (self.win_w - dw) // 2
        y = -self.scroll_y if dh > self.win_h else (self.win_h - dh) // 2
        return x, y

    @property
    def scaled(self) -> bool:
        """Whether the drawn screen differs in size from the host's."""
        return self.display_size != (self.host_w, self.host_h)

    # --- mapping ---------------------------------------------------------------------------------

    def window_to_host(self, wx: float, wy: float) -> tuple[int, int]:
        """The host pixel drawn at window point (wx, wy), clamped to the screen.

        Integer points are window pixels; fractional points are positions within them (a
        window pixel ``d`` spans ``[d - 0.5, d + 0.5)`` around its centre ``d``).
        """
        dw, dh = self.display_size
        ox, oy = self.origin
        return (
            self._axis_to_host(wx - ox, self.host_w, dw),
            self._axis_to_host(wy - oy, self.host_h, dh),
        )

    @staticmethod
    def _axis_to_host(d: float, host: int, disp: int) -> int:
        if isinstance(d, int):
            h = ((2 * d + 1) * host) // (2 * disp)
        else:
            h = int(((d + 0.5) * host) // disp)
        return max(0, min(host - 1, h))

    def host_to_window(self, hx: int, hy: int) -> tuple[int, int]:
        """The first window pixel drawing host pixel (hx, hy).

        When the screen is scaled down some host pixels are drawn nowhere; this then returns
        the window pixel drawing the nearest host pixel at or after it.
        """
        dw, dh = self.display_size
        ox, oy = self.origin
        ax, _ = _span_to_display(hx, hx + 1, self.host_w, dw)
        ay, _ = _span_to_display(hy, hy + 1, self.host_h, dh)
        return ox + min(ax, dw - 1), oy + min(ay, dh - 1)

    def host_to_window_exact(self, hx: int, hy: int) -> tuple[float, float]:
        """The centre of host pixel (hx, hy) in fractional window coordinates."""
        dw, dh = self.display_size
        ox, oy = self.origin
        return (
            ox + (hx + 0.5) * dw / self.host_w - 0.5,
            oy + (hy + 0.5) * dh / self.host_h - 0.5,
        )

    def host_rect_to_display(
        self, x: int, y: int, w: int, h: int
    ) -> tuple[int, int, int, int]:
        """The drawn-image pixels (x0, y0, x1, y1) that sample host rect (x, y, w, h).

        Coordinates are in the scaled image, not the window (add :attr:`origin`). The box may
        be empty (x0 == x1) when a thin rectangle falls between samples of a downscale.
        """
        dw, dh = self.display_size
        x0, x1 = _span_to_display(x, x + w, self.host_w, dw)
        y0, y1 = _span_to_display(y, y + h, self.host_h, dh)
        return x0, y0, max(x0, x1), max(y0, y1)

    def display_to_host_box(
        self, x0: int, y0: int, x1: int, y1: int
    ) -> tuple[float, float, float, float]:
        """The host area (fractional) that drawn pixels [x0, x1) × [y0, y1) cover.

        For ``Image.resize(..., box=...)``: resampling that box gives exactly those pixels of
        the whole scaled image.
        """
        dw, dh = self.display_size
        return (
            x0 * self.host_w / dw,
            y0 * self.host_h / dh,
            x1 * self.host_w / dw,
            y1 * self.host_h / dh,
        )

    # --- changes ---------------------------------------------------------------------------------

    def resized(self, win_w: int, win_h: int) -> Viewport:
        return dataclasses.replace(self, win_w=max(1, win_w), win_h=max(1, win_h))

    def with_host(self, host_w: int, host_h: int) -> Viewport:
        return dataclasses.replace(self, host_w=host_w, host_h=host_h)

    def with_mode(self, mode: Mode) -> Viewport:
        return dataclasses.replace(self, mode=mode, scroll_x=0, scroll_y=0)

    def scrolled(self, x: int, y: int) -> Viewport:
        """Scroll to offsets (x, y), clamped into range."""
        return dataclasses.replace(self, scroll_x=x, scroll_y=y)

    def scroll_fractions(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((first, last), (first, last))`` of the visible part, as Tk scrollbars want."""
        dw, dh = self.display_size
        fx = (self.scroll_x / dw, min(1.0, (self.scroll_x + self.win_w) / dw))
        fy = (self.scroll_y / dh, min(1.0, (self.scroll_y + self.win_h) / dh))
        return fx, fy
