"""``rdesk play``'s window: a recording replayed in Tk at ``speed`` times real time.

* :class:`Player` shows the recording in a Tk window, frame after frame as their time comes;
* :func:`play_window` opens one and returns when it is closed.

Frames come from :func:`rdesk.client.player.frames` (the headless replay), so the window
shows exactly what :func:`~rdesk.client.player.export_png` writes.
"""

from __future__ import annotations

import time
import tkinter
from pathlib import Path

from PIL import ImageTk

from rdesk.client.framebuffer import Framebuffer
from rdesk.client.player import frames
from rdesk.recording.format import RecordingError

__all__ = ["Player", "play_window"]


class Player:
    """Plays a recording into a Tk window (``root``) at ``speed`` × real time.

    Each record is shown once its time has come: the screen in a label, and under it the
    time, size and speed, or "end of recording", or the reason a damaged file stopped.
    :attr:`finished` is True once nothing more will be shown; :attr:`shown` is the time of
    the frame on screen. Raises ValueError for a speed that is not positive.
    """

    def __init__(self, root: tkinter.Tk, path: Path | str, *, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.root = root
        self.speed = speed
        self.finished = False
        self.shown: float | None = None
        root.title(f"rdesk play — {Path(path).name}")
        self.screen = tkinter.Label(root, bd=0)
        self.screen.pack()
        self.status = tkinter.Label(root, anchor="w")
        self.status.pack(fill="x")
        self.photo: ImageTk.PhotoImage | None = None  # Tk keeps no reference of its own
        self._stream = frames(path)
        self._start = time.monotonic()
        root.after(1, self._step)

    def _step(self) -> None:
        try:
            t, fb = next(self._stream)  # applies the record; shown once its time has come
        except StopIteration:
            self._end("end of recording")
            return
        except RecordingError as exc:
            self._end(str(exc))
            return
        delay = self._start + t / self.speed - time.monotonic()
        self.root.after(max(1, int(delay * 1000)), lambda: self._show(t, fb))

    def _show(self, t: float, fb: Framebuffer) -> None:
        self.photo = ImageTk.PhotoImage(fb.image)
        self.screen.configure(image=self.photo)
        self.status.configure(text=f"{t:8.2f} s   {fb.size[0]}x{fb.size[1]}   x{self.speed:g}")
        self.shown = t
        self.root.after(1, self._step)

    def _end(self, why: str) -> None:
        self.status.configure(text=why)
        self.finished = True


def play_window(path: Path | str, *, speed: float = 1.0) -> None:  # pragma: no cover - GUI
    """Show the recording in a Tk window at *speed* × real time; returns when it is closed.

    No display to open the window on is a one-line :class:`RecordingError` (as ``rdesk
    connect`` says it), not a traceback: ``--export-png`` is the way without one."""
    try:
        root = tkinter.Tk()
    except tkinter.TclError as exc:
        raise RecordingError(f"cannot open a window: {exc} (--export-png DIR needs none)"
                             ) from None
    Player(root, path, speed=speed)
    root.mainloop()
