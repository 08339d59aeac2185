"""Changing an X screen's size through RandR (a viewer's ``resize`` of a virtual desktop).

What ``xrandr --newmode/--addmode`` and ``xrandr --fb WxH --output O --mode M`` do, as one
X client: a mode of exactly the asked size (made once, named ``rdesk-WxH``), added to the
screen's output, then the CRTC switched off, the screen (framebuffer) resized and the CRTC lit
again with the new mode, so the output, the monitor and the root window all end at that size.
The window manager sees RandR's screen change (a maximised window follows). Only a server that
lets RandR grow its framebuffer can do it (Xvnc; Xvfb's maximum is its start size).
"""

from __future__ import annotations

from typing import Any

__all__ = ["RandrError", "set_screen_size"]

#: Millimetres per pixel at 96 dpi: the physical size the screen reports (toolkits read it).
_MM_PER_PIXEL = 25.4 / 96


class RandrError(Exception):
    """The server would not take the size; ``str()`` is one line."""


def set_screen_size(display: str, width: int, height: int) -> tuple[int, int]:
    """Make ``display``'s screen ``width`` x ``height``; return the size it then has.

    Opens its own connection (the host's capture connection stays untouched; the capturers
    notice the new root size themselves). Raises :class:`RandrError` on an X error or a
    server without a usable output.
    """
    from Xlib import display as xdisplay

    try:
        conn = xdisplay.Display(display)
    except Exception as exc:  # no server: a one-line reason
        raise RandrError(f"cannot open {display}: {exc}") from None
    try:
        if not conn.has_extension("RANDR"):
            raise RandrError(f"{display} has no RandR")
        screen = conn.screen()
        if (screen.width_in_pixels, screen.height_in_pixels) == (width, height):
            return width, height
        root: Any = screen.root
        limits: Any = root.xrandr_get_screen_size_range()
        if not (limits.min_width <= width <= limits.max_width
                and limits.min_height <= height <= limits.max_height):
            raise RandrError(
                f"{width}x{height} is outside this X server's sizes "
                f"({limits.min_width}x{limits.min_height} to "
                f"{limits.max_width}x{limits.max_height})"
            )
        res: Any = root.xrandr_get_screen_resources()
        ts = res.config_timestamp
        output, info = _first_output(conn, res.outputs, ts)
        crtc = info.crtc or (info.crtcs[0] if info.crtcs else 0)
        if not crtc:
            raise RandrError(f"{display}'s output has no CRTC")
        old: Any = conn.xrandr_get_crtc_info(crtc, ts)
        old_size = (screen.width_in_pixels, screen.height_in_pixels)
        mode = _mode_of(conn, root, res, width, height)
        if mode not in info.modes:
            conn.xrandr_add_output_mode(output, mode)
        try:
            _switch(conn, root, crtc, ts, (width, height), mode, [output])
        except Exception:
            # Put the old size and mode back (best effort) rather than leave the output dark.
            _switch(conn, root, crtc, ts, old_size, old.mode, list(old.outputs))
            raise
        # The connection's screen record is from its setup: ask the server again.
        geom = root.get_geometry()
        return int(geom.width), int(geom.height)
    except RandrError:
        raise
    except Exception as exc:  # X errors (python-xlib raises some as other exceptions)
        raise RandrError(f"the X server refused {width}x{height}: {exc}") from None
    finally:
        conn.close()


def _switch(
    conn: Any, root: Any, crtc: int, ts: int, size: tuple[int, int], mode: int,
    outputs: list[int],
) -> None:
    """CRTC off, screen to ``size``, CRTC on with ``mode`` (off first: a CRTC larger than the
    new framebuffer would make the resize fail)."""
    from Xlib import X
    from Xlib.ext import randr

    conn.xrandr_set_crtc_config(crtc, ts, 0, 0, 0, randr.Rotate_0, [])
    width, height = size
    root.xrandr_set_screen_size(width, height, round(width * _MM_PER_PIXEL),
                                round(height * _MM_PER_PIXEL))  # fmt: skip
    if mode:
        conn.xrandr_set_crtc_config(crtc, ts, 0, 0, mode, randr.Rotate_0, outputs, X.CurrentTime)
    conn.sync()


def _first_output(conn: Any, outputs: list[int], ts: int) -> tuple[int, Any]:
    """The first connected output (a virtual server has one), and its info."""
    for output in outputs:
        info = conn.xrandr_get_output_info(output, ts)
        if info.connection == 0:  # RR_Connected
            return output, info
    if outputs:
        return outputs[0], conn.xrandr_get_output_info(outputs[0], ts)
    raise RandrError("the X server has no RandR output")


def _mode_of(conn: Any, root: Any, res: Any, width: int, height: int) -> int:
    """The id of a mode exactly ``width`` x ``height``: an existing one, else a new one."""
    for mode in res.modes:
        if (mode.width, mode.height) == (width, height):
            return int(mode.id)
    name = f"rdesk-{width}x{height}"
    info = {
        "id": 0, "width": width, "height": height, "dot_clock": width * height * 60,
        "h_sync_start": width, "h_sync_end": width, "h_total": width, "h_skew": 0,
        "v_sync_start": height, "v_sync_end": height, "v_total": height,
        "name_length": len(name), "flags": 0,
    }  # fmt: skip
    reply: Any = root.xrandr_create_mode(info, name)
    return int(reply.mode)
