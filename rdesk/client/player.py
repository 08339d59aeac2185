"""``rdesk play``: replay a session recording (:mod:`rdesk.recording.format`).

Frames are decoded with the viewer's own :class:`~rdesk.client.framebuffer.Framebuffer`, so a
recording replays exactly what the viewer saw — including its checks: a rectangle the viewer
would refuse stops the replay with :class:`~rdesk.recording.format.RecordingError`.

* :func:`frames` yields ``(t_seconds, framebuffer)`` after every screen change, headless.
* :func:`export_png` writes PNGs: one per update, or (``every=S``) the screen as it was at
  0, S, 2S, … seconds.
* :class:`Player` shows the recording in a Tk window at ``speed`` times real time;
  :func:`play_window` opens one and returns when it is closed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rdesk.client.framebuffer import Framebuffer
from rdesk.protocol import limits
from rdesk.protocol.codec import decode
from rdesk.protocol.errors import ProtocolError
from rdesk.protocol.messages import Update
from rdesk.recording.format import Kind, RecordingError, read_recording

if TYPE_CHECKING:  # Tk is imported only to show a window: export works without it
    import tkinter

    from PIL import ImageTk

__all__ = ["Player", "export_png", "frames", "play_window"]


def frames(path: Path | str) -> Iterator[tuple[float, Framebuffer]]:
    """Yield ``(t, framebuffer)`` after each SCREEN or UPDATE record (the same object each
    time: copy ``framebuffer.image`` to keep it). Stops quietly at a truncated record."""
    recording = read_recording(path)
    fb: Framebuffer | None = None
    for record in recording.records():
        t = record.t_us / 1_000_000
        if record.kind is Kind.SCREEN:
            info = record.json()
            width, height = info.get("width"), info.get("height")
            if not (
                isinstance(width, int) and isinstance(height, int)
                and 1 <= width <= limits.MAX_SCREEN_SIDE and 1 <= height <= limits.MAX_SCREEN_SIDE
            ):
                raise RecordingError(f"{path}: bad screen size record")
            if fb is None:
                fb = Framebuffer(width, height)
            else:
                fb.resize(width, height)
            yield t, fb
        elif record.kind is Kind.UPDATE:
            if fb is None:
                raise RecordingError(f"{path}: update before any screen size")
            try:
                message = decode(record.payload)
                if not isinstance(message, Update):
                    raise RecordingError(f"{path}: an update record holds no update")
                fb.apply(message)
            except ProtocolError as exc:
                raise RecordingError(f"{path}: bad update at {t:.3f} s: {exc.reason}") from None
            yield t, fb


def export_png(path: Path | str, out_dir: Path | str, *, every: float | None = None) -> list[Path]:
    """Write the recording's frames as PNGs into *out_dir*; return the files in order.

    Without *every*: ``frame-NNNNNN.png`` after every update. With *every*: ``t-NNNNNN.png``
    holding the screen as it was at time ``N * every`` seconds, up to the last record.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if every is None:
        for index, (_, fb) in enumerate(frames(path)):
            target = out / f"frame-{index:06d}.png"
            fb.image.save(target, format="PNG")
            written.append(target)
        return written
    if every <= 0:
        raise ValueError("every must be positive")
    next_index = 0
    last = None
    for t, fb in frames(path):
        # Frames due before this record show the state before it: write them first.
        while last is not None and next_index * every < t:
            target = out / f"t-{next_index:06d}.png"
            last.save(target, format="PNG")
            written.append(target)
            next_index += 1
        last = fb.image.copy()
    if last is not None:
        target = out / f"t-{next_index:06d}.png"
        last.save(target, format="PNG")
        written.append(target)
    return written


class Player:
    """Plays a recording into a Tk window (``root``) at ``speed`` × real time.

    Each record is shown once its time has come: the screen in a label, and under it the
    time, size and speed, or "end of recording", or the reason a damaged file stopped.
    :attr:`finished` is True once nothing more will be shown; :attr:`shown` is the time of
    the frame on screen. Raises ValueError for a speed that is not positive.
    """

    def __init__(self, root: tkinter.Tk, path: Path | str, *, speed: float = 1.0) -> None:
        import tkinter

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
        from PIL import ImageTk

        self.photo = ImageTk.PhotoImage(fb.image)
        self.screen.configure(image=self.photo)
        self.status.configure(text=f"{t:8.2f} s   {fb.size[0]}x{fb.size[1]}   x{self.speed:g}")
        self.shown = t
        self.root.after(1, self._step)

    def _end(self, why: str) -> None:
        self.status.configure(text=why)
        self.finished = True


def play_window(path: Path | str, *, speed: float = 1.0) -> None:  # pragma: no cover - GUI
    """Show the recording in a Tk window at *speed* × real time; returns when it is closed."""
    import tkinter

    root = tkinter.Tk()
    Player(root, path, speed=speed)
    root.mainloop()
