"""The `rdesk play` window (Tk, on the session's Xvfb): every recorded screen is shown, in
order and pixel-exact, then "end of recording"; a damaged file stops with its reason."""

from __future__ import annotations

import time
import tkinter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from rdesk.client.tk.player import Player
from tests.recordings import record_session, same_pixels


@pytest.fixture
def root(tk_display: str) -> Iterator[tkinter.Tk]:
    tk = tkinter.Tk(screenName=tk_display)
    yield tk
    tk.destroy()


def _on_screen(player: Player) -> Image.Image:
    """The pixels of the photo the window shows, read back from Tk."""
    assert player.photo is not None
    name = str(player.photo)
    width, height = player.photo.width(), player.photo.height()
    image = Image.new("RGB", (width, height))
    for y in range(height):
        for x in range(width):
            r, g, b = (int(v) for v in player.root.tk.splitlist(
                player.root.tk.call(name, "get", x, y)))
            image.putpixel((x, y), (r, g, b))
    return image


def _play(player: Player) -> list[Image.Image]:
    """Run the window until the player is done; each distinct frame shown, in order."""
    seen: list[Image.Image] = []
    shown_at: float | None = None
    deadline = time.monotonic() + 30
    while not player.finished:
        assert time.monotonic() < deadline, "the player never finished"
        player.root.update()
        if player.photo is not None and player.shown != shown_at:
            shown_at = player.shown
            seen.append(_on_screen(player))
        time.sleep(0.001)
    return seen


def test_every_screen_is_shown_then_the_end(root: tkinter.Tk, tmp_path: Path) -> None:
    path, expected = record_session(tmp_path)
    player = Player(root, path, speed=4)  # frames >= 60 ms apart: each is read back in time
    seen = _play(player)
    assert player.status.cget("text") == "end of recording"
    assert len(seen) == len(expected)
    for got, want in zip(seen, expected, strict=True):
        assert same_pixels(got, want)
    assert root.title().startswith("rdesk play")


def test_a_damaged_file_stops_with_its_reason(root: tkinter.Tk, tmp_path: Path) -> None:
    bad = tmp_path / "x.rdrec"
    bad.write_bytes(b"hello world, not a recording")
    player = Player(root, bad)
    assert _play(player) == []
    assert player.status.cget("text").endswith("is not an rdesk recording")  # one line


def test_speed_must_be_positive(root: tkinter.Tk, tmp_path: Path) -> None:
    path, _ = record_session(tmp_path)
    with pytest.raises(ValueError, match="speed"):
        Player(root, path, speed=0)
