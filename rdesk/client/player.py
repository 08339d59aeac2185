"""``rdesk play``: replay a session recording (:mod:`rdesk.recording.format`).

Frames are decoded with the viewer's own :class:`~rdesk.client.framebuffer.Framebuffer`, so a
recording replays exactly what the viewer saw — including its checks: a rectangle the viewer
would refuse stops the replay with :class:`~rdesk.recording.format.RecordingError`.

* :func:`frames` yields ``(t_seconds, framebuffer)`` after every screen change, headless.
* :func:`export_png` writes PNGs: one per update, or (``every=S``) the screen as it was at
  0, S, 2S, … seconds.
* :func:`transfer_lines` lists the file transfers the recording notes (names, sizes,
  SHA-256, outcomes; never the bytes).
* :func:`clipboard_lines` lists the clipboard texts a recording made with
  ``--record-clipboard`` holds (none without it).

The Tk window that plays a recording is :mod:`rdesk.client.tk.player`; this module imports
no toolkit.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from pathlib import Path

from rdesk.client.framebuffer import Framebuffer
from rdesk.client.video import available as video_available
from rdesk.protocol import limits
from rdesk.protocol.codec import decode
from rdesk.protocol.errors import ProtocolError
from rdesk.protocol.updates import Update
from rdesk.recording.format import Kind, RecordingError, read_recording

__all__ = ["clipboard_lines", "export_png", "frames", "transfer_lines"]

#: The most of one clipboard text :func:`clipboard_lines` shows (characters).
CLIPBOARD_SHOWN = 200


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
                fb = Framebuffer(width, height, video=video_available())
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


def transfer_lines(path: Path | str) -> list[str]:
    """One line per file transfer the recording notes (``0:12.3 upload ok: a.txt (3 bytes,
    sha256 …)``), in order. Every value is the host's, escaped again for the terminal."""
    lines = []
    for record in read_recording(path).records():
        if record.kind is not Kind.TRANSFER:
            continue
        note = record.json()
        seconds = record.t_us / 1_000_000
        digest = f", sha256 {note.get('sha256')}" if note.get("sha256") else ""
        text = (f"{note.get('direction')} {note.get('result')}: {note.get('file')} "
                f"({note.get('size')} bytes{digest})")
        lines.append(f"{int(seconds // 60)}:{seconds % 60:04.1f} {ascii(text)[1:-1]}")
    return lines


def clipboard_lines(path: Path | str) -> list[str]:
    """One line per clipboard text the recording holds, when its last chunk came (``0:03.1
    viewer to host, clipboard, 11 bytes: hello``): who sent it, the selection, the size, and
    its first :data:`CLIPBOARD_SHOWN` characters, escaped for the terminal. A text whose
    chunks do not decode is shown as such; a recording without ``--record-clipboard`` has
    none."""
    lines = []
    open_offers: dict[tuple[object, object], tuple[str, int, bytearray]] = {}
    for record in read_recording(path).records():
        if record.kind is not Kind.CLIPBOARD:
            continue
        note = record.json()
        sender, message = note.get("from"), note.get("message")
        if not isinstance(message, dict):
            continue
        key = (sender, message.get("id"))
        if message.get("t") == "clip_offer" and isinstance(message.get("size"), int):
            open_offers[key] = (str(message.get("selection")), message["size"], bytearray())
        elif message.get("t") == "clip_data" and key in open_offers:
            selection, size, got = open_offers[key]
            try:
                got += base64.b64decode(str(message.get("data")), validate=True)
            except binascii.Error:
                got.clear()
                size = -1
            if len(got) < size:
                continue
            del open_offers[key]
            text = got.decode("utf-8", "replace") if size >= 0 else "(chunks not base64)"
            seconds = record.t_us / 1_000_000
            towards = "viewer to host" if sender == "viewer" else "host to viewer"
            shown = ascii(text[:CLIPBOARD_SHOWN])[1:-1] + ("…" if len(text) > CLIPBOARD_SHOWN
                                                           else "")
            lines.append(f"{int(seconds // 60)}:{seconds % 60:04.1f} {towards}, "
                         f"{ascii(selection)[1:-1]}, {len(got)} bytes: {shown}")
    return lines


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
