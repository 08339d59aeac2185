"""Recordings: written as sent, survive truncation, replay to the exact recorded pixels."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from rdesk.cli import main
from rdesk.client.player import clipboard_lines, export_png, frames
from rdesk.protocol.clipboard import ClipResult, chunks
from rdesk.protocol.codec import encode
from rdesk.protocol.messages import Screen, Welcome
from rdesk.recording.format import Kind, Recorder, RecordingError, read_recording
from tests.recordings import record_session, same_pixels


def test_round_trip_and_no_input_by_default(tmp_path: Path) -> None:
    path, expected = record_session(tmp_path / "rec")
    assert path.parent == tmp_path / "rec" and "/" not in path.name[:-6].replace("_", "")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    recording = read_recording(path)
    kinds = [r.kind for r in recording.records()]
    assert kinds == [Kind.SCREEN, Kind.UPDATE, Kind.UPDATE, Kind.UPDATE, Kind.SCREEN, Kind.END]
    assert not recording.truncated and recording.header["record_input"] is False
    times = [r.t_us for r in read_recording(path).records()]
    assert times == sorted(times)
    images = [fb.image.copy() for _, fb in frames(path)]
    assert all(same_pixels(a, b) for a, b in zip(images, expected, strict=True))


def test_the_starting_screen_is_in_the_file_from_its_creation(tmp_path: Path) -> None:
    """A host killed between a recording's creation and the viewer's welcome still leaves a
    recording that opens on its screen; the welcome's same size is then not kept twice, a
    new size is."""
    rec = Recorder(tmp_path, "s", screen=(640, 480))
    path = rec.path
    early = read_recording(path)  # what a kill right now would leave
    assert [(r.kind, r.json()) for r in early.records()] == [
        (Kind.SCREEN, {"width": 640, "height": 480})]
    assert not early.truncated
    rec.sent(str(encode(Welcome("control", 1, 640, 480, "lab"))))
    rec.sent(str(encode(Screen(800, 600))))
    rec.close("bye")
    kinds = [(r.kind, r.t_us == 0) for r in read_recording(path).records()]
    assert [kind for kind, _ in kinds] == [Kind.SCREEN, Kind.SCREEN, Kind.END]
    assert kinds[0][1]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_input_only_when_asked(tmp_path: Path) -> None:
    path, _ = record_session(tmp_path, record_input=True)
    inputs = [r for r in read_recording(path).records() if r.kind is Kind.INPUT]
    assert len(inputs) == 3 and json.loads(inputs[0].payload)["t"] == "key"


def test_truncated_file_replays_up_to_last_completerecord_session(tmp_path: Path) -> None:
    path, expected = record_session(tmp_path)
    data = path.read_bytes()
    offsets = []
    recording = read_recording(path)
    pos = recording._offset
    for record in recording.records():
        pos += 13 + len(record.payload)
        offsets.append(pos)
    # cut in the middle of the third update (the fourth record)
    cut = offsets[2] + (offsets[3] - offsets[2]) // 2
    path.write_bytes(data[:cut])
    out = tmp_path / "png"
    written = export_png(path, out)
    assert len(written) == 3  # screen + two updates
    for file, want in zip(written, expected[:3], strict=True):
        with Image.open(file) as got:
            assert same_pixels(got.convert("RGB"), want)
    truncated = read_recording(path)
    list(truncated.records())
    assert truncated.truncated


def test_cli_play_export_every(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, expected = record_session(tmp_path)
    out = tmp_path / "every"
    assert main(["--config-dir", str(tmp_path), "play", str(path), "--export-png", str(out),
                 "--every", "0.5"]) == 0
    files = sorted(out.glob("t-*.png"))
    assert files and "PNG frames" in capsys.readouterr().out
    with Image.open(files[-1]) as last:
        assert same_pixels(last.convert("RGB"), expected[-1])


def test_not_a_recording(tmp_path: Path) -> None:
    bad = tmp_path / "x.rdrec"
    bad.write_bytes(b"hello world, not a recording")
    with pytest.raises(RecordingError):
        read_recording(bad)
    assert main(["--config-dir", str(tmp_path), "play", str(bad), "--export-png",
                 str(tmp_path / "o")]) == 1


def test_play_without_a_display_is_one_line(tmp_path: Path) -> None:
    """``rdesk play`` with no display to open its window on says so in one line (it was a
    Tk traceback), and names the way without one."""
    path, _ = record_session(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "rdesk", "play", str(path)], env=env,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "rdesk: error: cannot open a window: no display name and no $DISPLAY environment "
        "variable (--export-png DIR needs none)"], result.stderr


def _clipboard_exchange(rec: Recorder) -> None:
    """A viewer's text to the host, and the host's text to the viewer, as the messages go."""
    viewer, host = "a secret pasted in ✓", "copied on the host"
    for offer_id, text, feed, answer in ((1, viewer, rec.received, rec.sent),
                                         (1 << 31, host, rec.sent, rec.received)):
        for message in chunks(offer_id, text):  # the offer, then its chunks
            feed(str(encode(message)))
        answer(str(encode(ClipResult(offer_id, True, ""))))


def test_clipboard_texts_only_when_asked(tmp_path: Path) -> None:
    """By default a recording keeps no clipboard message (a clipboard may hold a password);
    with ``record_clipboard`` it keeps them all, and ``clipboard_lines`` shows both texts."""
    plain = Recorder(tmp_path / "plain", "s", record_input=True)
    _clipboard_exchange(plain)
    plain.close()
    assert Kind.CLIPBOARD not in {r.kind for r in read_recording(plain.path).records()}
    raw = plain.path.read_bytes()
    assert b"clip_" not in raw and b"c2VjcmV0" not in raw  # base64 of "secret"
    assert clipboard_lines(plain.path) == []

    asked = Recorder(tmp_path / "asked", "s", record_clipboard=True)
    _clipboard_exchange(asked)
    asked.close()
    recording = read_recording(asked.path)
    assert recording.header["record_clipboard"] is True
    notes = [r.json() for r in recording.records() if r.kind is Kind.CLIPBOARD]
    assert [(n["from"], n["message"]["t"]) for n in notes] == [  # type: ignore[index]
        ("viewer", "clip_offer"), ("viewer", "clip_data"), ("host", "clip_result"),
        ("host", "clip_offer"), ("host", "clip_data"), ("viewer", "clip_result")]
    assert [line.split(" ", 1)[1] for line in clipboard_lines(asked.path)] == [
        "viewer to host, clipboard, 22 bytes: a secret pasted in \\u2713",
        "host to viewer, clipboard, 18 bytes: copied on the host"]
