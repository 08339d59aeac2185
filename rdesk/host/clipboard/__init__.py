"""The host's clipboard: X selections owned and watched (``xselection.py``), the policy
(``policy.py``), the hub every viewer shares (``hub.py``) and each viewer's link (``link.py``).

python-xlib is imported only by :func:`start_clipboard`'s X side, when a host starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from rdesk.host.clipboard.hub import ClipboardHub
from rdesk.host.settings import HostSettings

__all__ = ["ClipboardHub", "bind_selections", "start_clipboard"]

log = logging.getLogger(__name__)


def start_clipboard(
    settings: HostSettings, display: str, event: Callable[..., None]
) -> ClipboardHub:
    """The host's hub for ``settings.clipboard``, watching and owning ``display``'s selections.

    Call on the running loop. With ``--clipboard off`` (or no usable X clipboard, said once in
    the log) the hub has no X side and answers every viewer with the reason. Close it with
    :meth:`ClipboardHub.close`.
    """
    selections = ("clipboard", "primary") if settings.clipboard_primary else ("clipboard",)
    hub = ClipboardHub(settings.clipboard, settings.clipboard_max, selections, event)
    if settings.clipboard != "off":
        bind_selections(hub, display)
    return hub


def bind_selections(hub: ClipboardHub, display: str) -> bool:
    """Give ``hub`` its X side: own and watch ``display``'s selections (on the running loop).

    ``False`` (said in the log) when the display has no usable X clipboard: the hub then
    answers every viewer with the reason.
    """
    from rdesk.host.clipboard.xselection import XSelections, XSelectionsUnavailable

    try:
        sink = XSelections(
            display, hub.selections, hub.cap, hub.host_text_threadsafe, hub.host_refused_threadsafe,
        )  # fmt: skip
    except XSelectionsUnavailable as exc:
        log.warning("%s; clipboard disabled", exc)
        return False
    hub.bind(sink, asyncio.get_running_loop())
    return True
